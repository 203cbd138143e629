"""The fork server: one process that imports arl's modules once and forks every governor
and component process from there.

A spawned Python process pays for its interpreter and its imports again (numpy,
gymnasium, SQLAlchemy, ZeroMQ, arl: about 0.6 s of CPU for a governor and 0.35 s for a
conductor on a 2-core machine); a fork of a process that has them costs milliseconds.
The server imports :data:`PRELOAD` and from then on only forks, single-threaded and
without a ZeroMQ context. (numpy's OpenBLAS starts a thread pool on import and joins it
in a ``pthread_atfork`` handler before every fork: the server holds no other thread at
the moment it forks, and none at all after its first fork.) Users' modules are never
imported here: a component's process imports its own.

``arl-run`` forks the server from itself while it checks its files (:func:`start` with
``fork``), so that the server begins with what ``arl-run`` has imported already and
imports the rest while the check runs; a process that may have threads spawns it, a
fresh interpreter with its environment and ``sys.path``.

One server serves a whole ``arl-run``, its governors and their children alike: every
process it forks gets a channel of its own back to it (:func:`current` in that process),
so a governor asks the same server for its children. Channels are socket pairs, never a
path in the file system, and hold the only way to reach the server (the protocol is in
:mod:`arl.proc.forkclient`).

The server is every child's parent as the kernel sees it: it reaps them, and tells the
process that asked for each (its *logical* parent) the exit code. What ends a child when
its logical parent dies is in :mod:`arl.proc.child`; the server itself ends when the
process that started it closes its channel or dies (``PR_SET_PDEATHSIG``), and its
children with it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from typing import NoReturn

from arl.proc.forkclient import EXITED, FAILED, FORK, FORKED, MESSAGE, OUTPUT, ForkServer, ServerProcess, close_all

PRELOAD = (
    "arl.proc.child",
    "arl.governor.shell",
    "arl.conductors.agent",
    "arl.conductors.environment",
    "arl.conductors.controller",
    "sqlalchemy.dialects.sqlite",  # the default store's: SQLAlchemy imports it when the governor opens it
    "concurrent.futures.thread",  # asyncio.to_thread's, which the governor uses
)
"""What the server imports before it forks anything: every module of arl's own that a
governor or a conductor runs (numpy, gymnasium, SQLAlchemy and ZeroMQ with them), so
that a child imports only its user's modules (checked by running the dummy run with
a note of what each child imports after the fork)."""
_PR_SET_PDEATHSIG = 1
_HANDSHAKE_MAX = 1 << 20  # bytes of a spawned server's first message: the pickled (sys.path, preload)


# --------------------------------------------------------------------------- both sides


def die_with(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent (as the kernel sees it:
    the thread that forked or spawned it) exits; exit at once if ``parent`` is already
    gone, as the request covers only a later death."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the channels still end it
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while a process is spawned: it inherits the disposition through exec,
    so a Ctrl-C that comes before it ignores SIGINT itself cannot kill it. The caller's
    handler is back right after (a Ctrl-C in between is lost, not misdelivered)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------- the server


def main() -> NoReturn:
    """A spawned server: ``python -c '...; main()' CHANNEL_FD STARTER_PID``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; arl-run decides
    fd, starter = int(sys.argv[1]), int(sys.argv[2])
    die_with(starter)
    root = socket.socket(fileno=fd)
    try:
        sys_path, preload = pickle.loads(root.recv(_HANDSHAKE_MAX))
    except (OSError, EOFError, pickle.UnpicklingError):
        os._exit(0)  # the starter went before it said what to load
    sys.path[:] = sys_path
    _serve(root, preload)


def _serve(root: socket.socket, preload: Sequence[str]) -> NoReturn:
    from setproctitle import setproctitle

    setproctitle("arl[forkserver]")
    # One BLAS thread a process unless the user says otherwise: a run is many processes,
    # and OpenBLAS's pool (a thread a core each) made a batch of 16 through a small network
    # 10x slower on 2 busy cores (1.0 against 0.1 ms). Read by OpenBLAS when numpy loads,
    # below; every child inherits it.
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # A module that fails here ends the server (the traceback goes to stderr) and every
    # start after it fails saying so: no child could have run without it anyway.
    for name in preload:
        importlib.import_module(name)
    gc.freeze()  # children's collections then leave the preloaded objects (and their pages) alone
    _Server(root).serve()


class _Server:
    """The server's loop: fork on request, reap, report exits."""

    def __init__(self, root: socket.socket) -> None:
        self.pid = os.getpid()
        self.root = root
        self.poller = select.poll()
        self.channels: dict[int, socket.socket] = {}
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd: (pid, its requester's channel)
        self._listen(root)

    def _listen(self, channel: socket.socket) -> None:
        channel.setblocking(False)  # a requester that does not read must never block the server
        self.channels[channel.fileno()] = channel
        self.poller.register(channel, select.POLLIN)

    def serve(self) -> NoReturn:
        while True:
            for fd, _ in self.poller.poll():
                if fd in self.channels:
                    self._request(self.channels[fd])
                elif fd in self.children:
                    self._reap(fd)

    def _request(self, channel: socket.socket) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(channel, MESSAGE.size, 2)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:  # the requester is gone
            close_all(fds)
            self._drop(channel)
        elif len(data) == MESSAGE.size and data[:1] == FORK and len(fds) == 2:
            self._fork(channel, MESSAGE.unpack(data)[1], fds[0], fds[1])
        elif len(data) == MESSAGE.size and data[:1] == OUTPUT and len(fds) == 1 and channel is self.root:
            _output_to(fds[0], stderr=MESSAGE.unpack(data)[1] == 1)
        else:  # only arl's own processes hold a channel: nothing else to answer
            close_all(fds)

    def _drop(self, channel: socket.socket) -> None:
        if channel is self.root:
            os._exit(0)  # the starter let go or died; the kernel ends the children (PDEATHSIG)
        self.poller.unregister(channel)
        del self.channels[channel.fileno()]
        channel.close()  # its children are still reaped; their exits go unreported

    def _fork(self, channel: socket.socket, request: int, control: int, requester: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError as exc:
            close_all([control, requester])
            ours.close()
            theirs.close()
            self._send(channel, FAILED, exc.errno or 0, request)
            return
        if pid == 0:
            self._become_child(ours, theirs, control, requester)
        close_all([control, requester])
        theirs.close()
        pidfd = os.pidfd_open(pid)  # it cannot have been reaped: only this process reaps it
        self.children[pidfd] = (pid, channel)
        self.poller.register(pidfd, select.POLLIN)
        self._listen(ours)
        self._send(channel, FORKED, pid, request, pidfd)

    def _become_child(self, ours: socket.socket, theirs: socket.socket, control: int, requester: int) -> NoReturn:
        code = 1
        try:
            ours.close()
            for channel in self.channels.values():
                channel.close()
            close_all(list(self.children))
            from arl.proc.child import forked_main

            code = forked_main(theirs, control, requester, self.pid)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        exit_now(code)

    def _reap(self, pidfd: int) -> None:
        pid, channel = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)  # it has exited (its pidfd said so): this does not block
        self._send(channel, EXITED, pid, os.waitstatus_to_exitcode(status))

    def _send(self, channel: socket.socket, kind: bytes, a: int, b: int, fd: int | None = None) -> None:
        """Send a message (and a copy of ``fd``) if the requester is still there."""
        if channel.fileno() < 0:
            return  # its requester is gone
        # It may be gone meanwhile (its end of file is next), or not be reading with
        # hundreds of answers queued: an exit it then learns from the child's pidfd.
        with contextlib.suppress(OSError):
            socket.send_fds(channel, [MESSAGE.pack(kind, a, b)], [] if fd is None else [fd])


def _output_to(fd: int, *, stderr: bool) -> None:
    """The server's descriptor 1, and 2 if ``stderr``, are ``fd`` from now on (what it
    forks inherits them): ``arl-run``'s live table prints what comes there above itself."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # (what was written before goes where it was meant to)
            stream.flush()
    try:
        os.dup2(fd, 1)
        if stderr:
            os.dup2(fd, 2)
    except OSError:
        traceback.print_exc()  # (to the terminal as before: the processes' output goes there still)
    finally:
        os.close(fd)


def exit_now(code: int) -> NoReturn:
    """End this process as a normal exit would (wait for its non-daemon threads, run its
    exit handlers, flush its output) without tearing the interpreter down, which costs
    ~0.1 s with numpy and SQLAlchemy loaded and helps nobody in a process about to go.
    How every forked child ends."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # as multiprocessing's own children do
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a stream a user closed or replaced
                stream.flush()
    finally:
        os._exit(code)


# --------------------------------------------------------------------------- this process's server

_current: ForkServer | None = None


def current() -> ForkServer | None:
    """The fork server this process starts its children from: the one it started, or,
    in a process a server forked, that server."""
    return _current


def start(preload: Sequence[str] = PRELOAD, *, fork: bool = False) -> ForkServer:
    """Start a fork server for this process (replacing one it started before), which
    imports ``preload`` while the caller goes on. Call it from the main thread: the
    kernel ends the server when the thread that started it ends.

    The server is a fresh interpreter with this process's environment and ``sys.path``,
    or, with ``fork``, a fork of this process, which begins with what this process has
    imported (``arl-run``: numpy, gymnasium, pydantic, the experiment files' reader).
    ``fork`` is for a process with no thread but its main one and no ZeroMQ context, as
    ``arl-run`` is while it checks its files; where a Python thread or a ZeroMQ context's
    thread runs, the server is spawned anyway (:func:`_forkable`).
    """
    global _current
    stop()
    preload = list(dict.fromkeys(["arl.proc.child", *preload]))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        if fork and _forkable():
            process: ServerProcess = _ForkedServer(_fork_server(ours, theirs, preload))
        else:
            process = _spawn_server(theirs)
            ours.sendall(pickle.dumps((list(sys.path), preload)))
    finally:
        theirs.close()
    _current = ForkServer(ours, process.pid, process)
    atexit.unregister(stop)  # once is enough
    atexit.register(stop)
    return _current


def forget() -> None:
    """In a child forked by this process otherwise (the files' check): close its copy
    of the channel to this process's server, which is none of its business, so that
    the server ends as soon as this process lets it go."""
    global _current
    if _current is not None:
        _current.forget()
        _current = None


def _forkable() -> bool:
    """Whether this process may be forked into a server: no Python thread but the main
    one, and no ZeroMQ context in use (one with a socket has threads, which libzmq names
    ``ZMQbg/...`` as they begin). Other threads are let be: numpy's OpenBLAS pool, which
    ``arl-run`` has, is joined by OpenBLAS itself before a fork (``pthread_atfork``)."""
    if threading.active_count() != 1 or threading.current_thread() is not threading.main_thread():
        return False
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/comm", "rb") as comm:
            if comm.read().startswith(b"ZMQbg/"):
                return False
    return True


def _spawn_server(theirs: socket.socket) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-c",
        "from arl.proc.forkserver import main; main()",
        str(theirs.fileno()),
        str(os.getpid()),
    ]
    with sigint_ignored():  # (a group of its own: see _fork_server)
        return subprocess.Popen(command, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, process_group=0)


_GROUP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _no_terminal_input() -> None:
    """Standard input from /dev/null, as a spawned server has it: in a process group of
    its own, a read of ``arl-run``'s terminal (``input()``, ``breakpoint()`` in a component)
    would stop the reader (SIGTTIN) and hang its run without a word; from /dev/null it
    ends at once (EOF), and the component's error says so."""
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)


def _fork_server(ours: socket.socket, theirs: socket.socket, preload: Sequence[str]) -> int:
    """Fork this process into a server; its pid.

    The server, and every process it forks, is in a process group of its own: a signal to
    ``arl-run``'s group (a terminal's Ctrl-C, coreutils ``timeout``, ``kill -TERM -PGID``)
    reaches ``arl-run`` alone, which stops the runs at a step boundary, rather than killing
    the runs' processes under it (a SIGTERM to the whole group ended a run FAILED, its
    governor killed). If ``arl-run`` dies, they end with it all the same (PDEATHSIG). SIGINT
    and SIGTERM are blocked across the fork, so that the server is in its group, ignoring
    SIGINT, before it can get either."""
    starter = os.getpid()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else the server's children would write what is buffered again
    signal.pthread_sigmask(signal.SIG_BLOCK, _GROUP_SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                os.setpgid(0, 0)
                _no_terminal_input()
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _GROUP_SIGNALS)
                ours.close()
                die_with(starter)
                _serve(theirs, preload)
            except BaseException:
                traceback.print_exc()
            os._exit(1)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _GROUP_SIGNALS)
    return pid


class _ForkedServer:
    """A server forked from this process: waited for and killed as a Popen would be."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)

    def wait(self, timeout: float | None = None) -> int:
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        if not poller.poll(None if timeout is None else int(timeout * 1000)):
            raise subprocess.TimeoutExpired(f"arl[forkserver] (pid {self.pid})", timeout or 0.0)
        _, status = os.waitpid(self.pid, 0)
        os.close(self._pidfd)
        return os.waitstatus_to_exitcode(status)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)


def stop() -> None:
    """Stop the fork server this process started, if any. (A server this process was
    forked by serves others too: it is left alone.)"""
    global _current
    if _current is not None and _current.owned:
        server, _current = _current, None
        server.close()


@contextlib.contextmanager
def serving(preload: Sequence[str] = PRELOAD) -> Iterator[ForkServer]:
    """This process's fork server for the block: the one started for it already
    (:func:`start`, early, so that it imports while other work goes on), else a new
    one; stopped when the block ends if this process started it."""
    server = _current or start(preload)
    try:
        yield server
    finally:
        if server is _current:
            stop()


def adopt(channel: socket.socket, server: int) -> None:
    """In a process the server forked: ``channel`` is its own way to the server."""
    global _current
    _current = ForkServer(channel, server)
