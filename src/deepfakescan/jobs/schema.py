"""The job store's tables as SQLAlchemy Core objects: one schema for SQLite and PostgreSQL.

This is the schema at the newest migration (``HEAD``); the migrations under ``migrations/``
build it step by step, and a test checks that the two agree on both databases. Change a table
here only together with a new migration.

Types are chosen to mean the same on both: times are seconds since the epoch as ``DOUBLE``,
reports are JSON text, artifacts are ``LargeBinary`` (BLOB / BYTEA).
"""

from __future__ import annotations

import sqlalchemy as sa

HEAD = "0003"
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
    sa.Column("owner", sa.Text),
    sa.Index("scans_status", "status", "created_at"),
    sa.Index("scans_owner", "owner", "created_at"),
)
"""One row per scan. ``worker`` holds a running scan, ``heartbeat_at`` is its last sign of life
(a stale one may be taken over), ``queued_at`` is when it last entered the queue. ``owner`` is
the id of the API key that uploaded it (null without keys): only that key, or an admin key,
sees it."""
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

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("key_hash", sa.Text, nullable=False, unique=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", DOUBLE, nullable=False),
    sa.Column("revoked_at", DOUBLE),
)
"""API keys: only the SHA-256 of each key is kept (the key is shown once, when made); ``id``
is the public handle that ``keys list`` shows and ``keys revoke`` takes. Rows are never
deleted, so a revoked key stays revoked and the server stays closed once it had keys."""
