"""Opening a store: which URL, the schema on first use (:mod:`arl.store.migrate`), and
SQLite tuned for one writer and many readers."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from arl.errors import ArlError
from arl.store.location import DEFAULT_URL, URL_ENV_VAR, store_url  # noqa: F401 - re-exported
from arl.store.migrate import ensure_schema

BUSY_TIMEOUT_MS = 5000
SQLITE_PRAGMAS = (f"busy_timeout={BUSY_TIMEOUT_MS}", "journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL")
"""WAL lets readers (a live dashboard, a query) run while the writer commits; the busy
timeout makes a second writer (marking a dead run) wait instead of failing; NORMAL sync is
durable across process crashes in WAL mode and much faster than FULL."""


def open_store(url: str) -> Engine:
    """An engine on the store at ``url``; an empty database gets the schema first.

    The caller disposes the engine. Raises :class:`ArlError` naming the store (password
    masked) when the URL is malformed, the database cannot be opened, or it holds
    another schema revision than this arl's (the message says what to do).
    """
    where = describe_location(url)
    try:
        parsed = make_url(url)
        engine = _create_engine(parsed)
    except (ArgumentError, SQLAlchemyError, ImportError, OSError) as exc:
        raise ArlError(f"cannot open the store {where}: {exc}") from exc
    try:
        ensure_schema(engine, where)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ArlError(f"cannot open the store {where}: {exc}") from exc
    except BaseException:
        engine.dispose()
        raise
    return engine


def connect_engine(url: str) -> Engine:
    """An engine on ``url`` as :func:`open_store` makes it (SQLite's pragmas included),
    the schema neither checked nor created: for ``arl-run db``. Raises :class:`ArlError`."""
    try:
        return _create_engine(make_url(url))
    except (ArgumentError, SQLAlchemyError, ImportError, OSError) as exc:
        raise ArlError(f"cannot open the store {describe_location(url)}: {exc}") from exc


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


def short_error(exc: BaseException) -> str:
    """The database's own message, without SQLAlchemy's statement and parameters (which
    for a batch of steps would fill a screen)."""
    orig = getattr(exc, "orig", None)
    cause = orig if isinstance(orig, BaseException) else exc
    return f"{type(cause).__name__}: {cause}"


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
            if pragma.startswith("journal_mode"):
                _retry_while_locked(cursor, f"PRAGMA {pragma}")
            else:
                cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _retry_while_locked(cursor: Any, sql: str) -> None:
    """Execute ``sql``, retrying for up to the busy timeout while the database is locked.

    Switching a new file to WAL takes an exclusive lock and fails at once, without the
    busy handler, while another connection holds any lock: as when several processes
    open a new store together. Once one has switched it, the file stays in WAL mode and
    the others' pragma succeeds without a lock."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)
