"""The single writer of a run's records: a thread that owns a zmq PULL socket and the
only database connection that writes the run.

Producers in other processes connect PUSH sockets to the writer's ipc endpoint; the
owner (the governor's asyncio thread) submits through an inproc PUSH to the same PULL,
so the owner's records travel one ordered pipe. This module is the thread and its
sockets; :mod:`arl.store.recorder` turns records into rows, :mod:`arl.store.bulk`
inserts them, :mod:`arl.store.guard` checks the store's file and waits out a busy SQLite.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import zmq
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from arl.codec import MAX_FRAME_BYTES, encode
from arl.errors import ArlError, RequestTimeout, StartTimeout
from arl.messages import store as rec
from arl.store.checkpoint import WalCheckpointer, keep_backstop
from arl.store.engine import describe_location, open_store, short_error, sqlite_path
from arl.store.guard import Patience, StoreFile
from arl.store.location import PATIENCE
from arl.store.query import interrupt_dead_runs
from arl.store.recorder import COUNTED, RECORD_TYPES, Recorder, WorkerProgress

log = logging.getLogger("arl.store")

START_TIMEOUT = 10.0
"""How long :meth:`StoreWriter.start` waits for the database and the socket, beyond the
store's patience (opening a busy SQLite store waits for it)."""

COMMIT_MARGIN = 10.0
"""Seconds a flush or drain waits by default beyond the store's patience: a commit that
waited out a busy store still answers in time."""

QUIET = 0.1
"""Seconds without a new record that end a drain: records a producer sent just before it
exited may still be crossing the ipc socket when the owner asks for them."""

IDLE_TICK_MS = 100
"""The longest the writer thread sleeps in poll; bounds how late it notices a stop."""

SEND_TICK_MS = 200
"""The owner's sends block at most this long before checking the writer is still alive."""

HIGH_WATER_MARK = 100_000
"""Records queued per pipe before producers block: absorbs a commit's pause."""

CLOCK_EVERY = 256
"""Frames taken off a queue that never runs empty between looks at the commit timer."""

_STOP = b""  # wakes the writer thread for close(); no codec frame is empty


class StoreWriteFailed(ArlError):
    """Writing to the store failed (a full disk, a server gone): the message names the
    store and carries the database's own words; the cause is the database's error."""


class StoreWriter:
    """The single writer of one run's records into the store at ``url``.

    ``start`` it, ``submit`` the owner's records, let producers in other processes PUSH
    ``arl.codec.encode(record)`` frames to ``endpoint``, ``flush`` when rows must be
    visible, and ``close`` it. Rows are committed every ``batch_rows`` steps and actions,
    or ``flush_interval`` seconds after the first uncommitted write, so a live query sees a
    run progress without a commit per step. The run's row records this process (pid and
    start time); opening the store ends, as INTERRUPTED, this host's unfinished runs whose
    process is gone (:func:`arl.store.query.interrupt_dead_runs`).

    ``counts`` holds the rows committed so far, and ``dropped`` records (malformed, or
    naming an unknown phase or episode: bugs upstream, logged to ``arl.store``).
    ``received`` is the number of frames taken off the socket.

    ``patience`` is how long a busy SQLite store is waited for, in all, before a write
    fails (:class:`arl.store.guard.Patience`); the writer fails, too, when a SQLite
    store's file is deleted or replaced under it (:class:`arl.store.guard.StoreFile`).
    """

    def __init__(
        self,
        url: str,
        endpoint: str,
        *,
        batch_rows: int = 2000,
        flush_interval: float = 0.25,
        on_failure: Callable[[BaseException], None] | None = None,
        patience: float = PATIENCE,
    ) -> None:
        """``on_failure`` is called from the writer's thread if it dies, with the cause."""
        if batch_rows < 1 or flush_interval <= 0 or patience < 0:
            raise ValueError("batch_rows must be at least 1, flush_interval positive, patience not negative")
        self.patience = patience
        self.on_failure = on_failure
        self.url = url
        self.endpoint = endpoint
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.counts: dict[str, int] = dict.fromkeys(COUNTED, 0)
        self.error: BaseException | None = None
        self.received = 0
        self._inproc = f"inproc://arl-store-writer-{secrets.token_hex(8)}"
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._push: zmq.Socket[bytes] | None = None
        self._send_lock = threading.Lock()  # flush runs in a worker thread, submit in the loop
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._start_error: BaseException | None = None
        self._closed = False
        self._final_drain_until = 0.0
        # Barriers: token -> None for flush, or a drain's (monotonic deadline, settle seconds).
        self._cond = threading.Condition()
        self._waiting: dict[int, tuple[float, float] | None] = {}
        self._answered: set[int] = set()
        self._stopped = False
        self._tokens = itertools.count(secrets.randbits(40) << 20)  # unlike a producer's tokens
        # Owned by the writer thread.
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._pull: zmq.Socket[bytes] | None = None
        self._recorder: Recorder | None = None
        self._checkpointer: WalCheckpointer | None = None

    @property
    def run_id(self) -> int | None:
        """The run's database id, once its RunStarted is committed."""
        return self._recorder.run_id if self._recorder is not None else None

    def worker_progress(self, phase: int, worker: int) -> WorkerProgress | None:
        """Where worker ``worker`` of phase ``phase`` stood at its last
        :class:`~arl.messages.store.WorkerLost`, once a :meth:`flush` after it returned
        (None before, or if the record was dropped)."""
        return self._recorder.lost.get((phase, worker)) if self._recorder is not None else None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- the owner's side ----------------------------------------------------------------

    def start(self) -> None:
        """Open the store, bind the socket and start the thread; returns once bound.

        Raises :class:`ArlError` when the store or the endpoint cannot be opened,
        :class:`StartTimeout` when that takes longer than ``START_TIMEOUT`` beyond the
        store's patience."""
        if self._thread is not None or self._closed:
            raise ArlError("a StoreWriter starts once")
        self._ctx = zmq.Context()
        self._thread = threading.Thread(target=self._main, name="arl-store-writer", daemon=True)
        self._thread.start()
        limit = self.patience + START_TIMEOUT
        if not self._ready.wait(limit):
            self._stop.set()
            raise StartTimeout(f"the store writer did not open {describe_location(self.url)} within {limit:g} s")
        if self._start_error is not None:
            self._thread.join()
            self._ctx.term()
            self._ctx = None
            raise ArlError(
                f"cannot start the store writer on {describe_location(self.url)} "
                f"at {self.endpoint}: {self._start_error}"
            ) from self._start_error
        push = self._ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        push.setsockopt(zmq.SNDTIMEO, SEND_TICK_MS)
        push.connect(self._inproc)
        self._push = push

    def submit(self, record: Any) -> None:
        """Send one of the owner's records down the ordered pipe. Blocks only while the
        writer is a full queue behind. Raises :class:`ArlError` when the writer died."""
        if type(record) not in RECORD_TYPES:
            raise TypeError(f"{type(record).__name__} is not a store record")
        self._send(encode(record), deadline=None)

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything submitted before, and everything that had arrived from
        producers, is committed. Raises :class:`ArlError` if the writer died,
        :class:`RequestTimeout` after ``timeout`` seconds (by default the store's patience
        and ``COMMIT_MARGIN``)."""
        self._barrier(self._default_timeout(timeout), drain=False)

    def drain(self, timeout: float | None = None, *, settle: float = math.inf) -> None:
        """Like :meth:`flush`, but first keep taking records until none has arrived for
        ``QUIET`` seconds: for after producers exited, their last records possibly still
        crossing the socket. ``settle``: take them for at most this many seconds after
        the barrier was met, for when other producers go on sending (quiet never comes,
        and the drain would otherwise take records until most of ``timeout`` is spent)."""
        self._barrier(self._default_timeout(timeout), drain=True, settle=settle)

    def new_token(self) -> int:
        """A barrier token for a producer to send (``Flush(token)`` down its store link)."""
        return next(self._tokens)

    def expect(self, tokens: list[int]) -> None:
        """Wait for these producers' tokens (before asking for them): :meth:`met` says which
        arrived, each once everything its producer sent before it is committed."""
        with self._cond:
            for token in tokens:
                self._waiting[token] = None

    def met(self, tokens: list[int], timeout: float) -> set[int]:
        """Of the :meth:`expect`-ed ``tokens``, those that arrived (waiting up to ``timeout``
        for them all). Each is forgotten once reported met; :meth:`forget` the others."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.wait_for(
                lambda: self._stopped or all(t in self._answered for t in tokens),
                timeout=max(0.0, deadline - time.monotonic()),
            )
            got = {t for t in tokens if t in self._answered}
            for token in got:
                self._answered.discard(token)
                self._waiting.pop(token, None)
        self._raise_if_failed()
        return got

    def forget(self, tokens: list[int]) -> None:
        with self._cond:
            for token in tokens:
                self._waiting.pop(token, None)
                self._answered.discard(token)

    def _default_timeout(self, timeout: float | None) -> float:
        return self.patience + COMMIT_MARGIN if timeout is None else timeout

    def close(self, timeout: float | None = None, *, settle: bool = True) -> None:
        """Take what is queued and still arriving (until ``QUIET`` or half of ``timeout``),
        commit, stop the thread and close everything. Returns within about ``timeout``;
        a second call does nothing. Raises :class:`ArlError` if the writer died.

        ``settle=False``: nothing can still be arriving (a :meth:`drain` ran after every
        producer had exited), so what is queued is taken without waiting for quiet."""
        if self._closed:
            return
        self._closed = True
        timeout = self._default_timeout(timeout)
        deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is not None:
            self._final_drain_until = time.monotonic() + (timeout / 2 if settle else 0.0)
            self._stop.set()
            self._wake()
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._send_lock:
            if self._push is not None:
                self._push.close(linger=0)
                self._push = None
        if thread is not None and thread.is_alive():
            raise ArlError(f"the store writer did not stop within {timeout:g} s")
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        if self.counts["dropped"]:
            log.warning("store: %d records were dropped, see the errors above", self.counts["dropped"])
        self._raise_if_failed()

    def _wake(self) -> None:
        """Wake the writer thread at once for close (else it notices within a tick)."""
        if not self._send_lock.acquire(timeout=SEND_TICK_MS / 1000):
            return  # a submit is blocked on a full queue: the writer is busy, not asleep
        try:
            if self._push is not None and self._push.poll(0, zmq.POLLOUT):
                self._push.send(_STOP, zmq.NOBLOCK)
        finally:
            self._send_lock.release()

    def _barrier(self, timeout: float, *, drain: bool, settle: float = math.inf) -> None:
        deadline = time.monotonic() + timeout
        token = next(self._tokens)
        with self._cond:
            # A drain stops taking records with a quarter of the time left, for the commit.
            self._waiting[token] = (deadline - timeout / 4, settle) if drain else None
        try:
            self._send(encode(rec.Flush(token)), deadline)
            with self._cond:
                self._cond.wait_for(
                    lambda: token in self._answered or self._stopped,
                    timeout=max(0.0, deadline - time.monotonic()),
                )
                answered = token in self._answered
        finally:
            with self._cond:
                self._waiting.pop(token, None)
                self._answered.discard(token)
        self._raise_if_failed()
        if not answered:
            if self._stopped:
                raise ArlError("the store writer stopped before the flush was done")
            raise RequestTimeout(f"the store writer did not commit within {timeout:g} s")

    def _send(self, frame: bytes, deadline: float | None) -> None:
        with self._send_lock:
            while True:
                self._raise_if_failed()
                if self._push is None:
                    raise ArlError("the store writer is not running (start it; it was closed)")
                if self._stopped:
                    raise ArlError("the store writer has stopped")
                try:
                    self._push.send(frame)
                    return
                except zmq.Again:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise RequestTimeout("the store writer is too far behind") from None

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise ArlError(f"the store writer failed: {short_error(self.error)}") from self.error

    # -- the writer thread ---------------------------------------------------------------

    def _main(self) -> None:
        """The thread: open, serve until stopped, always close. Any exception is kept for
        the owner, who gets it from start, flush, drain, submit or close."""
        try:
            try:
                self._open()
            except BaseException as exc:
                self._start_error = exc
                return
            finally:
                self._ready.set()
            self._serve()
        except BaseException as exc:
            failure = self._failure(exc)
            log.error("store: the writer failed: %s", failure)
            self.error = failure
            if self.on_failure is not None:
                self.on_failure(failure)
        finally:
            self._cleanup()
            with self._cond:
                self._stopped = True
                self._cond.notify_all()

    def _failure(self, exc: BaseException) -> BaseException:
        """What the owner is told: arl's own errors (a store file gone) as they are; a
        database's error wrapped so that its message names the store."""
        if isinstance(exc, ArlError) or not isinstance(exc, SQLAlchemyError):
            return exc
        failure = StoreWriteFailed(f"writing to {describe_location(self.url)}: {short_error(exc)}")
        failure.__cause__ = exc
        return failure

    def _open(self) -> None:
        assert self._ctx is not None
        self._engine = open_store(self.url, patience=self.patience)
        interrupt_dead_runs(self._engine)  # this store's runs whose process died unannounced
        self._conn = self._engine.connect()
        path = sqlite_path(self.url)
        store_file = StoreFile(path) if path is not None else None
        if path is not None:  # SQLite: checkpoints in a thread of their own
            keep_backstop(self._conn)
            self._checkpointer = WalCheckpointer(self._engine)
            self._checkpointer.start()
        self._recorder = Recorder(
            self._conn,
            self.counts,
            store_file=store_file,
            patience=Patience(self.patience),
            after_commit=self._checkpointer.committed if self._checkpointer is not None else None,
        )
        pull = self._ctx.socket(zmq.PULL)
        self._pull = pull
        pull.setsockopt(zmq.LINGER, 0)
        pull.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        pull.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)  # as every socket that reads another process
        pull.bind(self.endpoint)
        pull.bind(self._inproc)

    def _cleanup(self) -> None:
        """Close what the thread owns; an uncommitted transaction is rolled back."""
        if self._pull is not None:
            self._pull.close(linger=0)
        if self._checkpointer is not None:
            self._checkpointer.close()
        try:
            if self._conn is not None:
                self._conn.close()
        except SQLAlchemyError:
            log.warning("store: closing the connection failed", exc_info=True)
        finally:
            if self._engine is not None:
                self._engine.dispose()

    def _serve(self) -> None:
        """Take records as they come, commit when due, answer barriers, until stopped."""
        assert self._pull is not None
        assert self._recorder is not None
        while not self._stop.is_set():
            if self._pull.poll(self._poll_timeout_ms()):
                tokens = self._pump()
                if tokens:
                    self._answer(tokens)
            self._commit_if_due()
        tokens = self._drain_until_quiet(self._final_drain_until)
        self._recorder.commit()
        self._release(tokens)

    def _poll_timeout_ms(self) -> int:
        assert self._recorder is not None
        since = self._recorder.dirty_since
        if since is None:
            return IDLE_TICK_MS
        left = since + self.flush_interval - time.monotonic()
        return max(0, min(IDLE_TICK_MS, int(left * 1000) + 1))

    def _commit_if_due(self) -> None:
        assert self._recorder is not None
        recorder = self._recorder
        since = recorder.dirty_since
        if since is None:
            return
        if recorder.pending_rows >= self.batch_rows or time.monotonic() - since >= self.flush_interval:
            recorder.commit()

    def _pump(self) -> list[int]:
        """Process every record queued on the socket, in order; returns the barrier tokens
        met. Going on to an empty queue after a barrier is what makes it cover records
        that had arrived from other producers' pipes before it.

        A producer may send several records as one message (a step's); they arrive
        together, and a commit comes only between messages. The frames are taken one by
        one as zmq frames (``copy=False``), whose ``more`` says whether the message goes
        on: ``recv_multipart`` asks the socket that after every frame, which costs as much
        again as taking the frame (1 µs a record, measured here).
        """
        assert self._pull is not None
        assert self._recorder is not None
        recorder = self._recorder
        recv = self._pull.recv
        handle = recorder.handle
        batch_rows = self.batch_rows
        tokens: list[int] = []
        taken = 0
        while True:
            try:
                part = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.received += taken
                return tokens
            taken += 1
            frame = part.bytes
            if frame:
                token = handle(frame)
                if token is not None:
                    tokens.append(token)
            elif not self._stop.is_set():
                recorder.drop("an empty frame")
            if part.more:
                continue  # the rest of this message is there already: no commit inside it
            if recorder.pending_rows >= batch_rows:
                recorder.commit()
            elif taken >= CLOCK_EVERY:  # the clock, on a queue that never runs empty
                self.received += taken
                taken = 0
                self._commit_if_due()

    def _drain_until_quiet(self, until: float) -> list[int]:
        assert self._pull is not None
        tokens: list[int] = []
        while True:
            tokens += self._pump()
            if time.monotonic() >= until or not self._pull.poll(int(QUIET * 1000)):
                return tokens

    def _answer(self, tokens: list[int]) -> None:
        """Commit, then wake the flush and drain calls that sent these tokens."""
        assert self._recorder is not None
        with self._cond:
            drains = [self._waiting.get(t) for t in tokens]
        now = time.monotonic()
        until = max((min(last, now + settle) for last, settle in filter(None, drains)), default=None)
        if until is not None:
            tokens = tokens + self._drain_until_quiet(until)
        self._recorder.commit()
        self._release(tokens)

    def _release(self, tokens: list[int]) -> None:
        with self._cond:
            self._answered.update(t for t in tokens if t in self._waiting)
            self._cond.notify_all()
