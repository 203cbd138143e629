"""What keeps the writer honest about its store: the SQLite file it writes must still be
the one at the store's path, and a busy SQLite is waited out, not a reason to fail."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from arl.errors import ArlError
from arl.store.location import PATIENCE

log = logging.getLogger("arl.store")

T = TypeVar("T")

FIRST_BACKOFF = 0.01
"""Seconds before the first retry of a write SQLite refused as busy; doubled each time."""

MAX_BACKOFF = 1.0
"""The longest pause between two retries."""


class StoreFileGone(ArlError):
    """The SQLite file a writer has open is no longer the file at the store's path: it was
    deleted, moved or replaced, so what the writer commits reaches nobody."""


class StoreFile:
    """The SQLite file a writer opened, told apart from any other by device and inode.

    A file deleted while a connection has it open stays writable to that connection, and
    every commit succeeds into a file nobody can open again; a file replaced (a copy moved
    over it) takes the new file's place for everyone else. :meth:`check` costs one
    ``stat`` and is made at every commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._identity = self._stat()
        if self._identity is None:
            raise StoreFileGone(f"the store file {path} vanished as it was opened")

    def _stat(self) -> tuple[int, int] | None:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        return found.st_dev, found.st_ino

    def check(self) -> None:
        """Raise :class:`StoreFileGone` unless the file at the path is still the one opened."""
        now = self._stat()
        if now == self._identity:
            return
        what = "deleted (or moved away)" if now is None else "replaced by another file"
        raise StoreFileGone(
            f"the store file {self.path} was {what} while this run wrote to it, so the rows stored since "
            "are lost. Keep a store's file in place while a run writes to it."
        )


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds the lock it needs."""
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)


class Patience:
    """Waits out a busy SQLite for up to ``patience`` seconds in all.

    Each connection's busy timeout (the same ``patience``) already makes SQLite itself
    retry, with growing pauses, while another connection holds the write lock. Some busy
    answers come at once, without that wait: a transaction whose snapshot went stale while
    it waited. So a write refused as busy is retried here, after rolling back, with pauses
    from :data:`FIRST_BACKOFF` doubling to :data:`MAX_BACKOFF`, until ``patience`` seconds
    have passed since its first try. Only a write that began the transaction is retried:
    it wrote nothing that a rollback would lose. PostgreSQL waits for locks on the server
    and is never busy in this sense."""

    def __init__(self, patience: float = PATIENCE) -> None:
        self.patience = patience
        self.retries = 0  # how many busy writes were tried again, for tests and logs

    def run(self, conn: Connection, write: Callable[[], T]) -> T:
        """``write()``, retried as above; its exception once patience is spent, or at once
        for any other error, or when the transaction held earlier writes."""
        started = time.monotonic()
        pause = FIRST_BACKOFF
        while True:
            fresh = not _driver_in_transaction(conn)
            try:
                return write()
            except OperationalError as exc:
                if not (fresh and is_busy(exc)):
                    raise
                if time.monotonic() + pause - started > self.patience:
                    raise
                conn.rollback()  # lets go of the stale snapshot; the transaction held nothing
                if self.retries == 0:
                    log.warning("store: the database is busy (another writer holds it); waiting for it")
                self.retries += 1
            time.sleep(pause)
            pause = min(2 * pause, MAX_BACKOFF)


def _driver_in_transaction(conn: Connection) -> bool:
    """Whether the driver has a transaction open that a write went into (SQLite only;
    elsewhere True, which retries nothing)."""
    if conn.dialect.name != "sqlite":
        return True
    driver = conn.connection.driver_connection
    return bool(getattr(driver, "in_transaction", True))
