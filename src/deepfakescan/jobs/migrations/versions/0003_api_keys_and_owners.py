"""API keys, and the key that owns each scan.

Keys are stored as SHA-256 digests with a label and an admin flag; revoking sets
``revoked_at`` (rows stay). Scans get the id of the key that uploaded them; scans made before
keys existed have none and are seen by admin keys only.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DOUBLE = sa.Float().with_variant(sa.REAL(), "sqlite")  # frozen copy of schema.DOUBLE


def upgrade() -> None:
    op.add_column("scans", sa.Column("owner", sa.Text))
    op.create_index("scans_owner", "scans", ["owner", "created_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("key_hash", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", DOUBLE, nullable=False),
        sa.Column("revoked_at", DOUBLE),
        sa.UniqueConstraint("key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("scans_owner", table_name="scans")
    # not batch mode: recreating ``scans`` on SQLite would cascade-delete every artifact
    op.drop_column("scans", "owner")
