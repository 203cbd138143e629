"""Schema revisions: which one a store is at, creating a new store, upgrading an old one.

A store's revision is the row of Alembic's ``alembic_version`` table. Opening a store
reads it with one query and without importing Alembic; Alembic runs only to create a
new store (the migrations from nothing to :data:`HEAD`, the same path an upgrade takes,
so the first revision is exercised by every new store) and for ``arl-run db upgrade``.
Both hold a lock while they look and migrate, so that two processes opening a new store
at once create it once: SQLite's write lock (``BEGIN IMMEDIATE``), PostgreSQL's
transaction-scoped advisory lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect, text

from arl.errors import ArlError
from arl.store.schema import Base

if TYPE_CHECKING:
    from alembic.config import Config

REVISIONS = ("0001", "0002", "0003", "0004")
"""Every revision in ``migrations/versions``, oldest first (a test checks it against them)."""

HEAD = REVISIONS[-1]
"""The revision this arl's :mod:`arl.store.schema` is."""

VERSION_TABLE = "alembic_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCK_KEY = 0x61726C5F73746F72  # "arl_stor": PostgreSQL's advisory lock while migrating

UPGRADE_ADVICE = "Back it up, then run `arl-run db upgrade` on it (the same --store or $ARL_STORE_URL)."


@dataclasses.dataclass(frozen=True, slots=True)
class SchemaState:
    """What a database holds of arl's store."""

    revision: str | None  # None: no alembic_version row
    tables: frozenset[str]  # which of arl's tables exist

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.tables

    @property
    def current(self) -> bool:
        return self.revision == HEAD


def schema_state(conn: Connection) -> SchemaState:
    names = set(inspect(conn).get_table_names())
    revision = None
    if VERSION_TABLE in names:
        revision = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    return SchemaState(revision, frozenset(names & Base.metadata.tables.keys()))


def check(state: SchemaState, where: str) -> None:
    """Raise :class:`ArlError` with advice unless ``state`` is a store this arl can use."""
    if state.current:
        return
    if state.revision is None:
        if state.empty:
            raise ArlError(f"the store {where} has no tables yet: run `arl-run db init` on it")
        raise ArlError(
            f"the store {where} has arl's tables ({', '.join(sorted(state.tables))}) but no schema revision: "
            "it was made before arl kept revisions, or by something else. Move it aside and start a new store."
        )
    if state.revision not in REVISIONS:
        raise ArlError(
            f"the store {where} is at schema revision {state.revision}, which this arl does not know "
            f"(its newest is {HEAD}): it was written by a newer arl. Use that arl, or a new store."
        )
    raise ArlError(f"the store {where} is at schema revision {state.revision}, this arl needs {HEAD}. {UPGRADE_ADVICE}")


def create(engine: Engine) -> tuple[SchemaState, SchemaState]:
    """Give an empty database the schema of :data:`HEAD`; a database that is not empty
    (another process may just have created it) is left as it is. Returns the states
    before and after, both read under the lock.

    The tables come from the models at once, stamped :data:`HEAD` as Alembic stamps a
    database: what running every migration makes (a test holds the migrations to the
    models), without importing Alembic and replaying each revision, which cost a new
    run's start some 0.1 s. Stores that exist are upgraded through the migrations."""
    with _locked(engine) as conn:
        before = after = schema_state(conn)
        if before.empty:
            Base.metadata.create_all(conn)
            version = Table(
                VERSION_TABLE,
                MetaData(),
                Column("version_num", String(32), nullable=False),
                PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),  # as Alembic names it
            )
            version.create(conn)
            conn.execute(version.insert().values(version_num=HEAD))
            after = schema_state(conn)
    return before, after


def upgrade(engine: Engine, where: str) -> tuple[str | None, str]:
    """Migrate to :data:`HEAD` from an empty database or any older revision; returns the
    revisions before and after. Raises :class:`ArlError` for a database this arl cannot
    migrate (tables without a revision, or a newer revision)."""
    with _locked(engine) as conn:
        before = schema_state(conn)
        if not before.empty and before.revision not in REVISIONS:
            check(before, where)  # raises: nothing to upgrade from
        if not before.current:
            _alembic_upgrade(conn)
        after = schema_state(conn)
    assert after.revision is not None
    return before.revision, after.revision


@contextlib.contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the store's schema lock; committed when
    the block ends without an exception, rolled back when it raises."""
    with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            # The driver begins transactions only before DML; take the write lock up front
            # (waiting out the busy timeout) so the DDL and the version row commit as one.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        yield conn
        conn.commit()


def _alembic_upgrade(conn: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(conn), "head")


def alembic_config(conn: Connection | None = None) -> Config:
    """Alembic's configuration for the packaged migrations, with no ``alembic.ini``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if conn is not None:
        config.attributes["connection"] = conn
    return config
