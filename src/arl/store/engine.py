"""Opening a store: which URL, the schema on first use, and SQLite tuned for one writer
and many readers."""

from __future__ import annotations

import os
import re
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from arl.errors import ArlError
from arl.store.location import DEFAULT_URL, URL_ENV_VAR, store_url  # noqa: F401 - re-exported
from arl.store.schema import Base

SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=5000", "foreign_keys=ON", "synchronous=NORMAL")
"""WAL lets readers (a live dashboard, a query) run while the writer commits; the busy
timeout makes a second writer (marking a dead run) wait instead of failing; NORMAL sync is
durable across process crashes in WAL mode and much faster than FULL."""


def open_store(url: str) -> Engine:
    """An engine on the store at ``url``, its tables created if missing.

    The caller disposes the engine. Raises :class:`ArlError` naming the store (password
    masked) when the URL is malformed or the database cannot be opened.
    """
    try:
        parsed = make_url(url)
        engine = _create_engine(parsed)
    except (ArgumentError, SQLAlchemyError, ImportError, OSError) as exc:
        raise ArlError(f"cannot open the store {describe_location(url)}: {exc}") from exc
    try:
        _create_schema(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ArlError(f"cannot open the store {describe_location(url)}: {exc}") from exc
    return engine


def describe_location(url: str) -> str:
    """Where the store is, for messages: an absolute file path for SQLite, else the URL
    with any password masked."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
    if parsed.get_backend_name() == "sqlite":
        if _is_sqlite_memory(parsed):
            return "an in-memory SQLite database"
        return os.path.abspath(os.path.expanduser(parsed.database or ""))
    return parsed.render_as_string(hide_password=True)


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    options: dict[str, Any] = {}
    if _is_sqlite_memory(url):
        # Each connection would get its own empty database; share one across threads.
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        directory = os.path.dirname(os.path.abspath(os.path.expanduser(url.database or "")))
        os.makedirs(directory, exist_ok=True)
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Runs on every new connection: pragmas are per connection, not per database."""
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _create_schema(engine: Engine) -> None:
    """Create missing tables. Two processes opening a new SQLite file at once can race
    between "table missing" and "create table"; the loser tries once more."""
    try:
        Base.metadata.create_all(engine)
    except OperationalError as exc:
        if "already exists" not in str(exc):
            raise
        Base.metadata.create_all(engine)
