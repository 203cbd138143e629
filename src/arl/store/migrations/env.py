"""Alembic's entry point for arl's store: it migrates the connection arl hands it in
``config.attributes["connection"]``, inside that connection's transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from arl.store.schema import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("arl's migrations run through arl.store.migrate (arl-run db upgrade), not the alembic command")

# render_as_batch: SQLite alters a table by copying it, which Alembic's batch mode does.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
