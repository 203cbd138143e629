"""One supervised-child abstraction for every process arl starts.

Children are forked by the fork server (:mod:`arl.proc.forkserver`), which has arl's
modules imported already. In the child, :func:`forked_main` binds it to the process that
asked for it (its logical parent: it is killed when that one exits, though the kernel
sees the fork server as its parent), reads what to run from the control pipe, and
:func:`_bootstrap` names the process ``arl[<role>:<name>]``, ignores SIGINT (the parent
decides), sends its logging to the LogServer, then calls the target with a
:class:`ChildContext`.

The parent side, :class:`SupervisedChild`, bounds the start (the child must call
``ChildContext.ready()`` in time, counting only the time it was not kept waiting for a
CPU, so that a loaded machine is slow rather than failing) and escalates the stop: ask
over the control pipe → wait → SIGTERM → wait → SIGKILL → reaped.

The control pipe carries the child's spec first (pickled: the parent's own objects, as
``spawn`` would pickle them), then words as raw bytes: ``ready`` up, ``stop`` down, and
a controller's pause words (``pause <token>``, ``resume <token>``, ``save <token> <folder>``
down, ``saved <token>`` / ``save-failed <token> <why>`` up: :mod:`arl.conductors.hold`).
Its end of file tells a child that its parent is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import zmq

from arl.errors import ArlError, ComponentCrashed, ShutdownTimeout, StartTimeout
from arl.proc import forkserver
from arl.proc.forkclient import Forked, ForkServer
from arl.proc.logs import LogConfig, install_child_logging

log = logging.getLogger("arl.proc")

READY = b"ready"
STOP = b"stop"
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
        self.words: list[bytes] = []  # words other than stop, read and not yet taken

    @property
    def control_fd(self) -> int:
        """Poll this (zmq.Poller accepts plain fds): readable on ``stop`` or parent death."""
        return self.conn.fileno()

    def ready(self) -> None:
        """Tell the parent this child has started and serves."""
        self.conn.send_bytes(READY)

    def stop_requested(self) -> bool:
        """True once the parent asked this child to stop, or went away. Never blocks.
        Other words read on the way are kept in :attr:`words`, in order."""
        while not self._stop_requested and self.conn.poll(0):
            try:
                word = self.conn.recv_bytes()
            except (EOFError, OSError):
                word = STOP
            if word == STOP:
                self._stop_requested = True
            else:
                self.words.append(word)
        return self._stop_requested

    def tell(self, word: bytes) -> None:
        """Send a word up the control pipe (the parent reads it with ``SupervisedChild.listen``)."""
        with contextlib.suppress(OSError):  # the parent is gone: this process ends with it
            self.conn.send_bytes(word)


def _prepare(spec: ChildSpec, conn: multiprocessing.connection.Connection, logs: LogConfig) -> ChildContext:
    from setproctitle import setproctitle

    setproctitle(f"arl[{spec.label}]")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = ChildContext(spec, conn)
    install_child_logging(ctx.zmq, logs, spec.label)
    if spec.args.get("clock"):  # the run's scaled clock (time_scale), as the governor's reads
        from arl import time as arl_time

        clock = arl_time.ScaledClock()
        clock.restore(spec.args["clock"])
        arl_time.set_clock(clock)
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
    """Run a synchronous target for its whole life."""
    with _lifetime(spec, conn, logs) as ctx:
        _resolve(spec.target)(ctx)


async def _abootstrap(spec: ChildSpec, conn: multiprocessing.connection.Connection, logs: LogConfig) -> None:
    """Like :func:`_bootstrap` for an async target (in a fresh event loop)."""
    with _lifetime(spec, conn, logs) as ctx:
        await _resolve(spec.target)(ctx)


def forked_main(channel: socket.socket, control: int, parent: int, server: int) -> int:
    """A process the fork server has just forked: ``channel`` is its own to the server,
    ``control`` its end of the control pipe, ``parent`` a pidfd of its logical parent,
    ``server`` the server's pid. Returns the exit code."""
    forkserver.die_with(server)  # the kernel's parent-death signal can only name the server
    _die_with_logical_parent(parent)
    forkserver.adopt(channel, server)  # so that this process can start children of its own
    _reseed()
    with contextlib.closing(multiprocessing.connection.Connection(control)) as conn:
        try:
            spec, logs, asynchronous = conn.recv()  # the parent's first message says what to run
        except (EOFError, OSError):
            return 1  # the parent gave up on this start (or died: the watch ends us)
        if asynchronous:
            asyncio.run(_abootstrap(spec, conn, logs))
        else:
            _bootstrap(spec, conn, logs)
    return 0


def _die_with_logical_parent(pidfd: int) -> None:
    """SIGKILL this process once ``pidfd``'s process exits (at once if it has already).

    A thread blocks on the pidfd, which becomes readable when that process exits: the
    kernel's own parent-death signal refers to the OS parent, the fork server, which
    outlives a governor killed mid-run. Nothing is missed between fork and here: a
    parent that is gone already leaves its pidfd readable.
    """

    def watch() -> None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while not poller.poll():
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="arl-parent-watch", daemon=True).start()


def _reseed() -> None:
    """Give numpy's global generator fresh entropy, as a spawned process has: forked ones
    would otherwise all draw the same numbers. (Python's ``random`` reseeds itself.)"""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


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


class SupervisedChild:
    """The parent's handle on one child process.

    ``asynchronous=True`` runs an async target in the child's own event loop (the
    RunGovernor's); otherwise the target is synchronous. The child is forked by
    ``server``, by default this process's (:func:`arl.proc.forkserver.current`).
    """

    def __init__(
        self,
        spec: ChildSpec,
        logs: LogConfig,
        *,
        asynchronous: bool = False,
        server: ForkServer | None = None,
    ) -> None:
        self.spec = spec
        self._logs = logs
        self._asynchronous = asynchronous
        self._server = server
        self._conn: multiprocessing.connection.Connection | None = None
        self._forked: Forked | None = None
        self._stop_requested = False

    @property
    def pid(self) -> int | None:
        return None if self._forked is None else self._forked.pid

    @property
    def _exited(self) -> asyncio.Future[int] | None:
        return None if self._forked is None else self._forked.exited

    @property
    def exitcode(self) -> int | None:
        """The exit code once the child has exited and been reaped, else None."""
        if self._exited is None or not self._exited.done():
            return None
        return self._exited.result()

    async def _fork(self, timeout: float) -> float:
        """Have the server fork the child and send it its spec; the seconds of
        ``timeout`` that are left. The server's time counts as the child's own would (a
        server still importing on a loaded machine is not timed while it waits for a CPU)."""
        server = self._server or forkserver.current()
        if server is None:
            raise ArlError(f"cannot start {self.spec.label}: no fork server runs for this process")
        parent_end, child_end = multiprocessing.Pipe(duplex=True)
        try:
            asked = asyncio.ensure_future(server.fork(child_end.fileno()))
            clock = StartClock(server.pid)
            if not await _own_time({asked}, timeout, clock):
                asked.cancel()
                raise StartTimeout(f"{self.spec.label}: the fork server did not fork it within {timeout:.1f} s")
            self._forked = asked.result()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self._conn = parent_end
        with contextlib.suppress(OSError):  # it died already: its exit code says how
            parent_end.send((self.spec, self._logs, self._asynchronous))
        return timeout - clock.elapsed()

    async def start(self, timeout: float) -> None:
        """Start the child and wait until it says ready.

        Raises :class:`StartTimeout` if it does not within ``timeout`` seconds of its own
        (:class:`StartClock`: time it waited for a CPU is added; the child is then
        stopped), or :class:`ComponentCrashed` if it exits first.
        """
        left = await self._fork(timeout)
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
        clock = StartClock(self.pid)
        try:
            # Waits until the child has had ``timeout`` seconds of its own: on a loaded
            # machine it may wait far longer for a CPU, and that is not its fault.
            done = await _own_time({said, self._exited}, left, clock)
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

    def send(self, word: bytes) -> bool:
        """Send a word down the control pipe; False if the child is gone."""
        if self._conn is None:
            return False
        try:
            self._conn.send_bytes(word)
        except OSError:
            return False
        return True

    def listen(self, on_word: Callable[[bytes], None]) -> None:
        """After start: call ``on_word`` (in the running loop) with each word the child
        sends up the pipe, until it closes."""
        conn = self._conn
        assert conn is not None, "start() first"
        loop = asyncio.get_running_loop()
        fd = conn.fileno()

        def on_readable() -> None:
            try:
                while conn.poll(0):
                    on_word(conn.recv_bytes())
            except (EOFError, OSError):
                loop.remove_reader(fd)

        loop.add_reader(fd, on_readable)

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
        if self._forked is None:
            return 0
        exited = self._forked.exited
        if not exited.done() and grace > 0:
            self.request_stop()
            if await self._wait_exit(grace):
                return self._close()
        for sig, timeout in ((signal.SIGTERM, term_timeout), (signal.SIGKILL, kill_timeout)):
            if exited.done():
                break
            log.debug("%s did not stop in time; escalating with %s", self.spec.label, signal.Signals(sig).name)
            self._forked.send_signal(sig)
            # A fresh timeout per step: a slow SIGTERM handler must not eat SIGKILL's time.
            await self._wait_exit(timeout)
        if not exited.done():
            raise ShutdownTimeout(f"{self.spec.label} (pid {self.pid}) survived SIGKILL")
        return self._close()

    async def _wait_exit(self, timeout: float) -> bool:
        assert self._exited is not None
        done, _ = await asyncio.wait({self._exited}, timeout=timeout)
        return bool(done)

    def _close(self) -> int:
        assert self._forked is not None
        if self._conn is not None:
            with contextlib.suppress(ValueError, RuntimeError):  # no reader, or no loop
                asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None
        self._forked.close()  # its pidfd
        return self._forked.exited.result()


async def _own_time(futures: set[asyncio.Future[Any]], timeout: float, clock: StartClock) -> set[asyncio.Future[Any]]:
    """Wait for the first of ``futures`` until ``clock`` has counted ``timeout`` seconds;
    the ones done (none on a timeout)."""
    done: set[asyncio.Future[Any]] = set()
    while not done and (left := timeout - clock.elapsed()) > 0:
        done, _ = await asyncio.wait(futures, timeout=max(left, MIN_WAIT), return_when=asyncio.FIRST_COMPLETED)
    return done
