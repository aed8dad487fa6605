"""The job store's tables as SQLAlchemy Core objects: one schema for SQLite and PostgreSQL.

This is the schema at the newest migration (``HEAD``); the migrations under ``migrations/``
build it step by step, and a test checks that the two agree on both databases. Change a table
here only together with a new migration.

Types are chosen to mean the same on both: times are seconds since the epoch as ``DOUBLE``,
reports are JSON text, artifacts are ``LargeBinary`` (BLOB / BYTEA).
"""

from __future__ import annotations

import sqlalchemy as sa

HEAD = "0002"
"""The newest migration: a store already there opens without loading Alembic at all."""

DOUBLE = sa.Float().with_variant(sa.REAL(), "sqlite")
"""An 8-byte float on both: REAL on SQLite (as 0.1.0 declared it), double precision on
PostgreSQL (whose own REAL has 4 bytes, too few for seconds since the epoch)."""

metadata = sa.MetaData()

scans = sa.Table(
    "scans",
    metadata,
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
    sa.Column("worker", sa.Text),
    sa.Column("heartbeat_at", DOUBLE),
    sa.Column("queued_at", DOUBLE),
    sa.Index("scans_status", "status", "created_at"),
)
"""One row per scan. ``worker`` holds a running scan, ``heartbeat_at`` is its last sign of life
(a stale one may be taken over), ``queued_at`` is when it last entered the queue."""
sa.Index("scans_created", scans.c.created_at.desc())

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("scan_id", sa.Text, sa.ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", DOUBLE, nullable=False),
)
"""Evidence kept with a report, keyed by (scan id, name): no name ever becomes a path."""

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("info", sa.Text, nullable=False),
    sa.Column("last_seen", DOUBLE, nullable=False),
)
"""Scan workers and when each last said it was alive (``info`` is JSON: host, pid, ...)."""
