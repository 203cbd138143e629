"""Copying a SQLite store's write-ahead log into its database file from a thread of its
own, so that the writer's commits do not wait for it.

In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them into
the database file and syncs both, and SQLite runs one inside the commit that finds 1,000
pages in the log. That commit then takes 15 to 20 ms instead of half a millisecond
(measured here, most of it waiting for the disk): about a fifth of the writer thread's
time at 100,000 rows a second. A checkpoint needs no lock the writer holds (``PASSIVE``
copies what is committed, next to a writer appending more), so :class:`WalCheckpointer`
runs it on a second connection in a thread that waits on the disk instead; the sqlite3
module lets go of the GIL meanwhile. The writer's own connection keeps SQLite's automatic
checkpoint as a backstop, at :data:`BACKSTOP_PAGES`, which bounds the log should this
thread fall behind or stop.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("arl.store")

CHECKPOINT_INTERVAL = 0.1
"""Seconds between two checkpoints at most; one runs only after a commit. At 100,000 rows
a second that is some 1,000 pages a checkpoint, SQLite's own cadence."""

BACKSTOP_PAGES = 10_000
"""The writer's connection checkpoints by itself once the log holds this many pages (40
MiB): only if the checkpointer fell that far behind, or stopped."""


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection to the store, at most
    every ``interval`` seconds, after :meth:`committed` says the writer committed.

    A failed checkpoint is logged and ends the thread; the writer goes on, its connection
    checkpointing by itself (:func:`keep_backstop`). A checkpoint that finds another
    connection checkpointing returns at once and is tried again at the next commit.
    """

    def __init__(self, engine: Engine, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._engine = engine
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="arl-store-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def committed(self) -> None:
        """The writer committed: the log has pages to copy."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first) and close its connection."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _main(self) -> None:
        try:
            raw = self._engine.raw_connection()  # opened in this thread, which alone uses it
        except (SQLAlchemyError, sqlite3.Error) as exc:  # a connection's pragmas raise sqlite3's own
            log.warning("store: no connection for checkpoints (%s); the writer checkpoints by itself", exc)
            return
        try:
            cursor = raw.cursor()
            while self._wake.wait() and not self._stop.is_set():
                self._wake.clear()
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cursor.fetchall()
                if self._stop.wait(self.interval):
                    return
        except sqlite3.Error as exc:
            log.warning("store: a checkpoint failed (%s); the writer checkpoints by itself from now on", exc)
        finally:
            raw.detach()  # out of the pool: closed here, in the thread that opened it
            raw.close()


def keep_backstop(conn: Connection) -> None:
    """Let ``conn``, the writer's connection, checkpoint by itself only at
    :data:`BACKSTOP_PAGES`, leaving the rest to a :class:`WalCheckpointer`."""
    conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    conn.commit()  # SQLAlchemy began a transaction for the pragma; SQLite did not
