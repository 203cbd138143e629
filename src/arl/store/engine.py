"""Opening a store: which URL, the schema on first use (:mod:`arl.store.migrate`), and
SQLite tuned for one writer and many readers."""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from arl.errors import ArlError
from arl.store import migrate
from arl.store.jsontext import to_json_text
from arl.store.location import PATIENCE

SQLITE_PRAGMAS = ("foreign_keys=ON", "synchronous=NORMAL")
"""Set on every connection, in this order, after ``busy_timeout`` (the patience the
engine was opened with, :data:`arl.store.location.PATIENCE` unless told): a second writer
(another run on the same file, ending a dead run) waits instead of failing. SQLite checks
foreign keys only when asked; NORMAL sync is durable across process crashes in WAL mode
and much faster than FULL."""
JOURNAL_MODE = "journal_mode=WAL"
"""Set after :data:`SQLITE_PRAGMAS` (see :func:`_retry_while_locked`): WAL lets readers
(a live dashboard, a query) run while the writer commits."""

MEMORY_ADVICE = "Give a file to keep them in, such as sqlite:///arl.db, with --store or $ARL_STORE_URL."


class StoreNotFound(ArlError):
    """There is no store at ``location``, and it was opened to read, not to create."""

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__(f"no store at {location}")


def open_store(url: str, *, create: bool = True, patience: float = PATIENCE) -> Engine:
    """An engine on the store at ``url``, its schema checked; with ``create``, an empty
    database gets the schema first. On SQLite each connection waits up to ``patience``
    seconds for a lock another connection holds.

    The caller disposes the engine. Raises :class:`StoreNotFound` when ``create`` is
    False and the SQLite file does not exist or the database has no tables yet (nothing
    is created then), and :class:`ArlError` naming the store (password masked) when the
    URL is empty, malformed or names a store that keeps nothing (in-memory SQLite), the
    database cannot be opened, or it holds another schema revision than this arl's (the
    message says what to do).
    """
    engine = connect_engine(url, create=create, patience=patience)
    where = describe_location(url)
    try:
        _ensure_schema(engine, where, create=create)
    except BaseException as exc:
        engine.dispose()
        if isinstance(exc, SQLAlchemyError):
            raise _cannot_open(where, exc) from exc
        raise
    return engine


def connect_engine(url: str, *, create: bool = True, patience: float = PATIENCE) -> Engine:
    """An engine on ``url`` as :func:`open_store` makes it (SQLite's pragmas included),
    the schema neither checked nor created: for ``arl-run db``. Raises :class:`ArlError`
    (see :func:`refuse_unkept`); with ``create`` False, :class:`StoreNotFound` for a
    SQLite file that does not exist (rather than creating it)."""
    refuse_unkept(url)
    if not create:
        path = sqlite_path(url)
        if path is not None and not os.path.exists(path):
            raise StoreNotFound(path)
    try:
        return _create_engine(make_url(url), patience)
    except (ArgumentError, SQLAlchemyError, ImportError, OSError) as exc:
        raise _cannot_open(describe_location(url), exc) from exc


def refuse_unkept(url: str) -> None:
    """Raise :class:`ArlError` when ``url`` names no store, or one that keeps nothing: an
    empty URL (``--store ""``), or an in-memory SQLite database (``sqlite://``,
    ``sqlite:///``, ``sqlite:///:memory:``, ``mode=memory``), which would live and die
    with the one process that writes a run, so that every row was thrown away."""
    if not url.strip():
        raise ArlError("the store URL is empty. Give a SQLAlchemy URL with --store or $ARL_STORE_URL.")
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # opening it says what is wrong
    if parsed.get_backend_name() == "sqlite" and _is_sqlite_memory(parsed):
        raise ArlError(
            f"the store {url} is an in-memory SQLite database: the rows of a run would be thrown away "
            f"when its process ends. {MEMORY_ADVICE}"
        )


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
    if isinstance(cause, ArlError):  # arl's own messages say what happened without a class name
        return str(cause)
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


def _create_engine(url: URL, patience: float) -> Engine:
    # Every JSON column the ORM or Core writes (a run's document, an event's detail) is
    # encoded as the writer encodes steps: numpy data made plain, NaN and infinity null.
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, json_serializer=to_json_text)
    path = sqlite_path(url)
    assert path is not None, "refuse_unkept lets no in-memory database through"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    engine = create_engine(url, json_serializer=to_json_text)
    event.listen(engine, "connect", functools.partial(_set_sqlite_pragmas, patience))
    return engine


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _set_sqlite_pragmas(patience: float, dbapi_connection: Any, _record: Any) -> None:
    """Runs on every new connection: pragmas are per connection, not per database."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={round(patience * 1000)}")
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        _retry_while_locked(cursor, f"PRAGMA {JOURNAL_MODE}", patience)
    finally:
        cursor.close()


def _retry_while_locked(cursor: Any, sql: str, patience: float) -> None:
    """Execute ``sql``, retrying for up to ``patience`` seconds while the database is locked.

    Switching a new file to WAL takes an exclusive lock and fails at once, without the
    busy handler, while another connection holds any lock: as when several processes
    open a new store together. Once one has switched it, the file stays in WAL mode and
    the others' pragma succeeds without a lock."""
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)
