"""Bring a job store's database to the newest schema, once, whoever opens it first.

Alembic is configured here in code (``script_location`` points into the package), so an
installed wheel needs no ``alembic.ini``. A history written by deepfakescan 0.1.0 has the tables
but no ``alembic_version``: it is stamped at revision 0001 (its schema exactly) and upgraded
from there, keeping its rows.

Several processes may open the same database at once (web nodes and workers starting
together). The upgrade runs under a lock that the database itself holds: a PostgreSQL advisory
lock, or SQLite's write lock (``BEGIN IMMEDIATE``, the store's write transactions); whoever
waits re-reads the version and finds nothing left to do.

A new revision: a file in ``migrations/versions/`` shaped like the others (``revision`` =
the next number, ``down_revision`` = the last), the same change in ``schema.py``, and
``schema.HEAD`` moved on; ``tests/test_store.py`` checks that the three agree on both
databases. On SQLite, prefer ``op.add_column``/``op.drop_column`` to batch mode: recreating
``scans`` with foreign keys on would cascade-delete every artifact.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .schema import HEAD

SCRIPT_LOCATION = "deepfakescan.jobs:migrations"
FIRST = "0001"
"""The revision whose schema is what deepfakescan 0.1.0 created without Alembic."""
LOCK_KEY = 0x6466_7363_616E
"""PostgreSQL advisory lock key of the migration ("dfscan"); any constant shared by all nodes."""


def current_revision(conn: Connection) -> str | None:
    """The stamped revision, or None for an empty database or a 0.1.0 history."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def is_current(engine: Engine) -> bool:
    """True when the schema is at ``HEAD``: the cheap check done before any lock is taken."""
    with engine.connect() as conn:
        return current_revision(conn) == HEAD


def upgrade(engine: Engine) -> None:
    """Migrate to ``HEAD`` under the database's lock; a no-op when another process did it."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
            conn.commit()
            try:
                with conn.begin():
                    _upgrade_locked(conn)
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                conn.commit()
        else:
            # the store's SQLite engine begins write transactions IMMEDIATE: one writer at a time
            with conn.execution_options(sqlite_begin="IMMEDIATE").begin():
                _upgrade_locked(conn)


def _upgrade_locked(conn: Connection) -> None:
    from alembic import command  # only when a migration is due: opening stays fast

    revision = current_revision(conn)
    if revision == HEAD:
        return
    config = alembic_config(conn)
    if revision is None and sa.inspect(conn).has_table("scans"):
        command.stamp(config, FIRST)  # a history written by 0.1.0's hand-written DDL
    command.upgrade(config, "head")


def alembic_config(conn: Connection | None = None):
    """Alembic's configuration for the store's migrations, without an ini file on disk.

    With ``conn``, migrations run on it (inside the caller's transaction); without, the
    configuration serves tools that only read the scripts (the head revision, history).
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    if conn is not None:
        config.attributes["connection"] = conn
    return config
