"""The schema of deepfakescan 0.1.0: scans and their artifacts.

Exactly what the hand-written DDL of 0.1.0 created, so that a history made by it is stamped at
this revision and upgraded from here. Frozen: later changes go into new revisions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DOUBLE = sa.Float().with_variant(sa.REAL(), "sqlite")  # frozen copy of schema.DOUBLE


def upgrade() -> None:
    op.create_table(
        "scans",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("progress", DOUBLE, nullable=False, server_default=sa.text("0")),
        sa.Column("stage", sa.Text, nullable=False, server_default="queued"),
        sa.Column("source_name", sa.Text, nullable=False),
        sa.Column("declared_kind", sa.Text),
        sa.Column("media_type", sa.Text),
        sa.Column("upload_path", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("verdict", sa.Text),
        sa.Column("fake_probability", DOUBLE),
        sa.Column("report", sa.Text),
        sa.Column("error_code", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("error_status", sa.Integer),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.Column("started_at", DOUBLE),
        sa.Column("finished_at", DOUBLE),
    )
    op.create_index("scans_created", "scans", [sa.column("created_at").desc()])
    op.create_table(
        "artifacts",
        sa.Column(
            "scan_id", sa.Text, sa.ForeignKey("scans.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("media_type", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.PrimaryKeyConstraint("scan_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("artifacts")
    op.drop_index("scans_created", table_name="scans")
    op.drop_table("scans")
