"""One supervised-child abstraction for every process arl starts.

In the child, :func:`_bootstrap` names the process ``arl[<role>:<name>]``, ignores
SIGINT (the parent decides), asks the kernel to kill it if its parent dies, sends its
logging to the LogServer, then calls the target with a :class:`ChildContext`.

The parent side, :class:`SupervisedChild`, bounds the start (the child must call
``ChildContext.ready()`` in time, counting only the time it was not kept waiting for a
CPU, so that a loaded machine is slow rather than failing) and escalates the stop: ask
over the control pipe → wait → SIGTERM → wait → SIGKILL → reap.

The control pipe carries single words as raw bytes (``ready`` up, ``stop`` down); no
objects cross it. Its end of file tells a child that its parent is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import zmq

from arl.errors import ComponentCrashed, ShutdownTimeout, StartTimeout
from arl.proc.logs import LogConfig, install_child_logging

log = logging.getLogger("arl.proc")

READY = b"ready"
STOP = b"stop"
_PR_SET_PDEATHSIG = 1
MIN_WAIT = 0.05  # seconds: the shortest wait between looks at a starting child's clock


@dataclass(frozen=True)
class ChildSpec:
    """What to run in a child: ``target`` is ``"module:function"`` taking a ChildContext."""

    role: str
    name: str
    target: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.role}:{self.name}"


class ChildContext:
    """What a child's target gets: its spec, a ZeroMQ context, and the control pipe."""

    def __init__(self, spec: ChildSpec, conn: multiprocessing.connection.Connection) -> None:
        self.spec = spec
        self.conn = conn
        self.zmq: zmq.Context[Any] = zmq.Context()
        self._stop_requested = False

    @property
    def control_fd(self) -> int:
        """Poll this (zmq.Poller accepts plain fds): readable on ``stop`` or parent death."""
        return self.conn.fileno()

    def ready(self) -> None:
        """Tell the parent this child has started and serves."""
        self.conn.send_bytes(READY)

    def stop_requested(self) -> bool:
        """True once the parent asked this child to stop, or went away. Never blocks."""
        if not self._stop_requested and self.conn.poll(0):
            try:
                word = self.conn.recv_bytes()
            except (EOFError, OSError):
                word = STOP
            self._stop_requested = word == STOP
        return self._stop_requested


def _die_with_parent() -> None:
    """If the parent dies without reaping us, the kernel sends SIGKILL (Linux only).

    The request only covers a parent that dies after it is made, so a parent already
    gone by then (we were re-parented) means exiting now.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        log.debug("prctl(PR_SET_PDEATHSIG) unavailable; relying on the control pipe")
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


def _prepare(spec: ChildSpec, conn: multiprocessing.connection.Connection, logs: LogConfig) -> ChildContext:
    from setproctitle import setproctitle

    setproctitle(f"arl[{spec.label}]")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    ctx = ChildContext(spec, conn)
    install_child_logging(ctx.zmq, logs, spec.label)
    return ctx


def _resolve(target: str) -> Callable[[ChildContext], Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _finish(ctx: ChildContext) -> None:
    logging.shutdown()  # closes the remote log handler, letting queued records leave
    # destroy, not term: after a crash some sockets may still be open, and term would
    # wait for them forever. What is still queued gets a bounded second to leave.
    ctx.zmq.destroy(linger=1000)


@contextlib.contextmanager
def _lifetime(spec: ChildSpec, conn: multiprocessing.connection.Connection, logs: LogConfig) -> Iterator[ChildContext]:
    """A child's whole life around its target: prepared before, finished after. An
    exception escaping the target is logged and ends the process with exit code 1."""
    ctx = _prepare(spec, conn, logs)
    try:
        yield ctx
    except BaseException:
        logging.getLogger(f"arl.{spec.role}").critical("%s crashed", spec.label, exc_info=True)
        _finish(ctx)
        os._exit(1)
    _finish(ctx)


def _bootstrap(spec: ChildSpec, conn: multiprocessing.connection.Connection, logs: LogConfig) -> None:
    """The first function a child runs (top level, so ``spawn`` can find it)."""
    with _lifetime(spec, conn, logs) as ctx:
        _resolve(spec.target)(ctx)


async def _abootstrap(spec: ChildSpec, conn: multiprocessing.connection.Connection, logs: LogConfig) -> None:
    """Like :func:`_bootstrap` for an async target, run by aiomultiprocess."""
    with _lifetime(spec, conn, logs) as ctx:
        await _resolve(spec.target)(ctx)


class StartClock:
    """Seconds a process has had since this clock was made, not counting the time it
    waited for a CPU: the time it would have taken on an idle machine.

    The kernel counts, per thread, the time spent runnable but not running
    (``/proc/<pid>/task/<tid>/schedstat``, second field, in ns). The thread that waited
    longest is taken: never more than any one thread lost, so a child that hangs (sleeps,
    blocks) is still timed as on an idle machine. Where that file cannot be read (not
    Linux, the process is gone), no time is taken off.
    """

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._began = time.monotonic()
        self._base = self._run_delay()
        self.waited = 0.0  # seconds the child waited for a CPU, so far

    def elapsed(self) -> float:
        self.waited = max(self.waited, self._run_delay() - self._base)
        return time.monotonic() - self._began - self.waited

    def _run_delay(self) -> float:
        if self._pid is None:
            return 0.0
        longest = 0
        try:
            for tid in os.listdir(f"/proc/{self._pid}/task"):
                path = f"/proc/{self._pid}/task/{tid}/schedstat"
                # A thread that ended meanwhile has no file any more.
                with contextlib.suppress(OSError, IndexError, ValueError), open(path, "rb") as stat:
                    longest = max(longest, int(stat.read().split()[1]))
        except OSError:
            return 0.0
        return longest / 1e9


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while a child is created: it inherits the disposition through exec,
    so a Ctrl-C arriving before its bootstrap runs cannot kill it. The parent's own
    handler is back right after (a Ctrl-C in between is lost, not misdelivered)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class SupervisedChild:
    """The parent's handle on one child process.

    ``asynchronous=True`` runs an async target through aiomultiprocess's runner (used
    for the RunGovernor); otherwise a plain ``spawn`` process runs a synchronous target.
    """

    def __init__(self, spec: ChildSpec, logs: LogConfig, *, asynchronous: bool = False) -> None:
        self.spec = spec
        self._logs = logs
        self._asynchronous = asynchronous
        self._conn: multiprocessing.connection.Connection | None = None
        self._process: Any = None  # a multiprocessing.Process
        self._exited: asyncio.Future[int] | None = None
        self._stop_requested = False
        self._pid: int | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def exitcode(self) -> int | None:
        """The exit code once the child has exited and been reaped, else None."""
        if self._exited is None or not self._exited.done():
            return None
        return self._exited.result()

    def _spawn(self) -> None:
        parent_end, child_end = multiprocessing.Pipe(duplex=True)
        args = (self.spec, child_end, self._logs)
        ctx = multiprocessing.get_context("spawn")
        if self._asynchronous:
            from aiomultiprocess import Process as AioProcess
            from aiomultiprocess.types import Unit

            # aiomultiprocess's runner sets up the child's event loop and runs the coroutine.
            # Its Process wrapper would also start a multiprocessing Manager (one more
            # process, ~40 MB) only to carry results back, which the control socket does.
            unit = Unit(target=_abootstrap, args=args, kwargs={}, namespace=None)
            self._process = ctx.Process(target=AioProcess.run_async, args=(unit,), daemon=False, name=self.spec.label)
        else:
            self._process = ctx.Process(target=_bootstrap, args=args, daemon=False, name=self.spec.label)
        with _sigint_ignored():
            self._process.start()
        self._pid = self._process.pid
        child_end.close()
        self._conn = parent_end
        loop = asyncio.get_running_loop()
        self._exited = loop.create_future()
        sentinel = self._process.sentinel
        loop.add_reader(sentinel, self._on_exit, sentinel)

    def _on_exit(self, sentinel: int) -> None:
        asyncio.get_running_loop().remove_reader(sentinel)
        # The sentinel closes as the child's files close, a moment before the kernel lets
        # it be reaped; this join returns within microseconds, bounded for safety.
        self._process.join(1.0)
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(self._process.exitcode)

    async def start(self, timeout: float) -> None:
        """Spawn the child and wait until it says ready.

        Raises :class:`StartTimeout` if it does not within ``timeout`` seconds of its own
        (:class:`StartClock`: time it waited for a CPU is added; the child is then
        stopped), or :class:`ComponentCrashed` if it exits first.
        """
        self._spawn()
        assert self._conn is not None
        assert self._exited is not None
        loop = asyncio.get_running_loop()
        said: asyncio.Future[bytes] = loop.create_future()
        conn = self._conn

        def on_readable() -> None:
            loop.remove_reader(conn.fileno())
            try:
                said.set_result(conn.recv_bytes())
            except (EOFError, OSError):
                said.set_result(b"")

        loop.add_reader(conn.fileno(), on_readable)
        try:
            either: set[asyncio.Future[Any]] = {said, self._exited}
            clock = StartClock(self._pid)
            done: set[asyncio.Future[Any]] = set()
            # Waits until the child has had ``timeout`` seconds of its own: on a loaded
            # machine it may wait far longer for a CPU, and that is not its fault.
            while not done and (left := timeout - clock.elapsed()) > 0:
                done, _ = await asyncio.wait(either, timeout=max(left, MIN_WAIT), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not said.done():
                loop.remove_reader(conn.fileno())
                said.cancel()
        if said in done and said.result() == READY:
            return
        if said in done:  # the pipe closed: the child is exiting; its exit code follows
            await self._wait_exit(timeout)
        if self._exited.done():
            code = self._exited.result()
            raise ComponentCrashed(
                f"arl[{self.spec.label}]",
                "ProcessExited",
                f"exited with code {code} before it was ready (see its log above)",
            )
        waited = clock.waited
        await self.stop(grace=0.0)
        raise StartTimeout(
            f"{self.spec.label} did not report ready within {timeout:.1f} s"
            + (f" (and {waited:.1f} s more it waited for a CPU)" if waited >= 0.1 else "")
        )

    @property
    def exited(self) -> asyncio.Future[int]:
        """Resolves with the exit code when the child has exited (and been reaped).

        Shielded: a task that awaits it and is cancelled must not cancel the one future
        that says whether the child has exited (stop() relies on it).
        """
        assert self._exited is not None, "start() first"
        return asyncio.shield(self._exited)

    @property
    def stop_requested(self) -> bool:
        """True once the parent asked this child to stop: its exit is then expected."""
        return self._stop_requested

    def request_stop(self) -> None:
        """Ask the child to stop (it decides when: a controller finishes its step)."""
        self._stop_requested = True
        if self._conn is not None:
            with contextlib.suppress(OSError):  # it is gone already; stop() will reap it
                self._conn.send_bytes(STOP)

    async def stop(self, *, grace: float = 3.0, term_timeout: float = 2.0, kill_timeout: float = 2.0) -> int:
        """Stop the child: ask, wait ``grace``; SIGTERM, wait; SIGKILL, wait.

        When this returns, the process has been reaped and its exit code is returned.
        Raises :class:`ShutdownTimeout` only if even SIGKILL did not end it in time.
        """
        if self._exited is None:
            return 0
        if not self._exited.done() and grace > 0:
            self.request_stop()
            if await self._wait_exit(grace):
                return self._close()
        for send, timeout in ((self._process.terminate, term_timeout), (self._process.kill, kill_timeout)):
            if self._exited.done():
                break
            log.debug("%s did not stop in time; escalating with %s", self.spec.label, send.__name__)
            send()
            # A fresh timeout per step: a slow SIGTERM handler must not eat SIGKILL's time.
            await self._wait_exit(timeout)
        if not self._exited.done():
            raise ShutdownTimeout(f"{self.spec.label} (pid {self.pid}) survived SIGKILL")
        return self._close()

    async def _wait_exit(self, timeout: float) -> bool:
        assert self._exited is not None
        done, _ = await asyncio.wait({self._exited}, timeout=timeout)
        return bool(done)

    def _close(self) -> int:
        assert self._exited is not None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._process.close()  # frees its sentinel and pipe descriptors
        return self._exited.result()
