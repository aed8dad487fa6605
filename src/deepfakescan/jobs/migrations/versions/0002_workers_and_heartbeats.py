"""Scale-out: which worker holds a running scan, its heartbeat, and the workers table.

A scan left ``running`` by a worker that died is taken over once its heartbeat is stale, and a
reconciler re-sends scans queued for too long; ``scans_status`` serves both of its queries.
Rows already there get the values the new code would have written: ``queued_at`` from
``created_at``, and running scans a heartbeat from ``started_at``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DOUBLE = sa.Float().with_variant(sa.REAL(), "sqlite")  # frozen copy of schema.DOUBLE


def upgrade() -> None:
    op.add_column("scans", sa.Column("worker", sa.Text))
    op.add_column("scans", sa.Column("heartbeat_at", DOUBLE))
    op.add_column("scans", sa.Column("queued_at", DOUBLE))
    op.execute("UPDATE scans SET queued_at = created_at")
    op.execute("UPDATE scans SET heartbeat_at = started_at WHERE status = 'running'")
    op.create_index("scans_status", "scans", ["status", "created_at"])
    op.create_table(
        "workers",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("info", sa.Text, nullable=False),
        sa.Column("last_seen", DOUBLE, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index("scans_status", table_name="scans")
    # not batch mode: recreating ``scans`` on SQLite would cascade-delete every artifact
    for column in ("queued_at", "heartbeat_at", "worker"):
        op.drop_column("scans", column)
