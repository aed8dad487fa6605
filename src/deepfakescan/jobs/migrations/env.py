"""Alembic's entry point for the job store: migrations run on the connection the store hands in.

The store (``jobs/migrate.py``) configures Alembic in code and passes an open connection in
``config.attributes["connection"]``, already inside the transaction that holds the migration
lock; no ``alembic.ini`` and no URL is read here.
"""

from __future__ import annotations

from alembic import context

from deepfakescan.jobs.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the job store's migrations run through deepfakescan.jobs.migrate.upgrade(engine),"
        " which hands Alembic its connection"
    )
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
