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
from arl.store import migrate
from arl.store.jsontext import to_json_text

BUSY_TIMEOUT_MS = 5000
SQLITE_PRAGMAS = (f"busy_timeout={BUSY_TIMEOUT_MS}", "foreign_keys=ON", "synchronous=NORMAL")
"""Set on every connection, in this order. The busy timeout makes a second writer
(marking a dead run) wait instead of failing; SQLite checks foreign keys only when asked;
NORMAL sync is durable across process crashes in WAL mode and much faster than FULL."""
JOURNAL_MODE = "journal_mode=WAL"
"""Set after :data:`SQLITE_PRAGMAS` (see :func:`_retry_while_locked`): WAL lets readers
(a live dashboard, a query) run while the writer commits."""


class StoreNotFound(ArlError):
    """There is no store at ``location``, and it was opened to read, not to create."""

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__(f"no store at {location}")


def open_store(url: str, *, create: bool = True) -> Engine:
    """An engine on the store at ``url``, its schema checked; with ``create``, an empty
    database gets the schema first.

    The caller disposes the engine. Raises :class:`StoreNotFound` when ``create`` is
    False and the SQLite file does not exist or the database has no tables yet (nothing
    is created then), and :class:`ArlError` naming the store (password masked) when the
    URL is malformed, the database cannot be opened, or it holds another schema revision
    than this arl's (the message says what to do).
    """
    engine = connect_engine(url, create=create)
    where = describe_location(url)
    try:
        _ensure_schema(engine, where, create=create)
    except BaseException as exc:
        engine.dispose()
        if isinstance(exc, SQLAlchemyError):
            raise _cannot_open(where, exc) from exc
        raise
    return engine


def connect_engine(url: str, *, create: bool = True) -> Engine:
    """An engine on ``url`` as :func:`open_store` makes it (SQLite's pragmas included),
    the schema neither checked nor created: for ``arl-run db``. Raises :class:`ArlError`;
    with ``create`` False, :class:`StoreNotFound` for a SQLite file that does not exist
    (rather than creating it)."""
    if not create:
        path = sqlite_path(url)
        if path is not None and not os.path.exists(path):
            raise StoreNotFound(path)
    try:
        return _create_engine(make_url(url))
    except (ArgumentError, SQLAlchemyError, ImportError, OSError) as exc:
        raise _cannot_open(describe_location(url), exc) from exc


def sqlite_path(url: str | URL) -> str | None:
    """The absolute path of the SQLite file ``url`` names; None for an in-memory SQLite
    database, another backend, or a URL that does not parse."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or _is_sqlite_memory(parsed):
        return None
    return os.path.abspath(os.path.expanduser(parsed.database or ""))


def describe_location(url: str) -> str:
    """Where the store is, for messages: an absolute file path for SQLite, else the URL
    with any password masked."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)
    path = sqlite_path(parsed)
    if path is not None:
        return path
    if parsed.get_backend_name() == "sqlite":
        return "an in-memory SQLite database"
    return parsed.render_as_string(hide_password=True)


def short_error(exc: BaseException) -> str:
    """The database's own message, without SQLAlchemy's statement and parameters (which
    for a batch of steps would fill a screen)."""
    orig = getattr(exc, "orig", None)
    cause = orig if isinstance(orig, BaseException) else exc
    return f"{type(cause).__name__}: {cause}"


def _cannot_open(where: str, exc: BaseException) -> ArlError:
    return ArlError(f"cannot open the store {where}: {short_error(exc)}")


def _ensure_schema(engine: Engine, where: str, *, create: bool) -> None:
    """Create the schema in an empty database (with ``create``, else raise
    :class:`StoreNotFound`); raise :class:`ArlError` with advice when the database holds
    another revision than :data:`migrate.HEAD`."""
    with engine.connect() as conn:
        state = migrate.schema_state(conn)
    if state.empty:
        if not create:
            raise StoreNotFound(where)
        _, state = migrate.create(engine)
    migrate.check(state, where)


def _create_engine(url: URL) -> Engine:
    # Every JSON column the ORM or Core writes (a run's document, an event's detail) is
    # encoded as the writer encodes steps: numpy data made plain, NaN and infinity null.
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, json_serializer=to_json_text)
    options: dict[str, Any] = {}
    path = sqlite_path(url)
    if path is None:
        # Each connection would get its own empty database; share one across threads.
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    engine = create_engine(url, json_serializer=to_json_text, **options)
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
        _retry_while_locked(cursor, f"PRAGMA {JOURNAL_MODE}")
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
