"""A process's side of the fork server (:mod:`arl.proc.forkserver`): asking it for a
child, and learning when that child has exited and with which code.

Protocol, on ``SOCK_SEQPACKET`` socket pairs, each message one :data:`MESSAGE` (a kind and
two integers). Requester to server: ``f`` (request id) carrying two descriptors, the
child's end of its control pipe and a pidfd of the requester. Server to requester: ``F``
(pid, request id) carrying a pidfd of the child, or ``E`` (errno, request id) if it
could not fork; ``X`` (pid, exit code, negative for a signal) once the child has exited
and the server has reaped it. Starter to server only: ``o`` (1 or 0, 0) carrying one
descriptor, which becomes the server's stdout, and its stderr too if the first integer
is 1 (:meth:`ForkServer.send_output`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import struct
import subprocess
from collections.abc import Sequence
from typing import Protocol

from arl.errors import ArlError

CLOSE_WAIT = 2.0  # seconds a server that was let go gets to exit before it is killed
MESSAGE = struct.Struct("=cqq")  # every message: a kind, and two integers
FORK, FORKED, FAILED, EXITED, OUTPUT = b"f", b"F", b"E", b"X", b"o"  # the kinds
_GONE = "the fork server has exited (see its output above); no process can be started"


class ServerGone(ArlError):
    """The fork server exited: no child can be started any more."""


class ServerProcess(Protocol):
    """The server process as its starter sees it: a Popen, or a forked one that acts so."""

    @property
    def pid(self) -> int: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


def close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class Forked:
    """A child the server forked for this process: its pid, a pidfd (signals sent
    through it can never reach another process that got the pid later), and a future
    that resolves with its exit code once the server has reaped it."""

    def __init__(self, pid: int, pidfd: int, exited: asyncio.Future[int]) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.exited = exited

    def send_signal(self, sig: int) -> None:
        if self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):  # it has exited already
                signal.pidfd_send_signal(self.pidfd, sig)

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


class ForkServer:
    """This process's channel to a fork server. Used from one event loop at a time."""

    def __init__(self, channel: socket.socket, pid: int, process: ServerProcess | None = None) -> None:
        self.pid = pid  # the server's
        self._channel = channel
        channel.setblocking(False)
        self._process = process  # set where this process started the server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests = itertools.count(1)
        self._asked: dict[int, asyncio.Future[Forked]] = {}
        self._children: dict[int, Forked] = {}  # by pid, until their exit is known
        self._gone = False

    @property
    def owned(self) -> bool:
        """True where this process started the server (and so ends it)."""
        return self._process is not None

    def send_output(self, fd: int, *, stderr: bool = True) -> None:
        """Have the server write its stdout (descriptor 1), and its stderr (2) if
        ``stderr``, to ``fd`` (a copy: the caller closes its own), and so every process it
        forks from then on (:mod:`arl.childoutput`). Raises OSError if it cannot be sent now."""
        socket.send_fds(self._channel, [MESSAGE.pack(OUTPUT, int(stderr), 0)], [fd])

    async def fork(self, control: int) -> Forked:
        """A new child, given ``control`` (its end of the control pipe: the server passes
        it on; the caller still closes its own copy). Raises :class:`ServerGone`, or
        OSError if the server could not fork."""
        loop = self._attach()
        if self._gone:
            raise ServerGone(_GONE)
        request = next(self._requests)
        answer: asyncio.Future[Forked] = loop.create_future()
        self._asked[request] = answer
        me = os.pidfd_open(os.getpid())  # the child's logical parent: it dies with this process
        try:
            await self._send(loop, MESSAGE.pack(FORK, request, 0), [control, me])
        except BaseException:
            del self._asked[request]
            raise
        finally:
            os.close(me)
        return await answer

    async def _send(self, loop: asyncio.AbstractEventLoop, message: bytes, fds: list[int]) -> None:
        while True:
            try:
                socket.send_fds(self._channel, [message], fds)
                return
            except BlockingIOError:  # the server has many requests queued (it may still be importing)
                await self._writable(loop)
            except OSError as exc:
                raise ServerGone(_GONE) from exc

    async def _writable(self, loop: asyncio.AbstractEventLoop) -> None:
        writable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not writable.done():
                writable.set_result(None)

        loop.add_writer(self._channel.fileno(), ready)
        try:
            await writable
        finally:
            loop.remove_writer(self._channel.fileno())

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._channel.fileno())
            # What was asked on a loop that is gone went with it: a late answer's child is killed.
            self._asked.clear()
            self._children.clear()
            self._loop = loop
            if not self._gone:
                loop.add_reader(self._channel.fileno(), self._on_readable)
        return loop

    def _on_readable(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._channel, MESSAGE.size, 1)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if len(data) != MESSAGE.size:
                close_all(fds)
                if not data:
                    self._lost()
                    return
                continue
            kind, a, b = MESSAGE.unpack(data)
            if kind == FORKED and fds:
                self._forked(a, b, fds[0])
            elif kind == FAILED and (answer := self._asked.pop(b, None)) is not None and not answer.done():
                answer.set_exception(OSError(a, f"the fork server could not fork: {os.strerror(a)}"))
            elif kind == EXITED and (child := self._children.pop(a, None)) is not None and not child.exited.done():
                child.exited.set_result(b)

    def _forked(self, pid: int, request: int, pidfd: int) -> None:
        assert self._loop is not None
        child = Forked(pid, pidfd, self._loop.create_future())
        answer = self._asked.pop(request, None)
        if answer is None or answer.done():  # its start was given up (timed out, cancelled)
            child.send_signal(signal.SIGKILL)
            child.close()
            return
        self._children[pid] = child
        answer.set_result(child)

    def _lost(self) -> None:
        """The server exited. Its children die with it (their parent-death signal is
        SIGKILL), so each one's exit, noticed on its pidfd, is reported as that."""
        self._gone = True
        loop = self._loop
        assert loop is not None
        loop.remove_reader(self._channel.fileno())
        for answer in self._asked.values():
            if not answer.done():
                answer.set_exception(ServerGone(_GONE))
        self._asked.clear()
        for child in self._children.values():
            if child.pidfd >= 0:
                loop.add_reader(child.pidfd, _killed_with_server, loop, child)
        self._children.clear()

    def forget(self) -> None:
        """Close this process's copy of the channel, and nothing else: for a process forked
        from the one that started the server, for which it is not meant."""
        self._process = None
        self._loop = None
        self._channel.close()

    def close(self) -> None:
        """Let the server go; where this process started it, it exits (and any child of
        it still alive is killed) before this returns."""
        if self._loop is not None and not self._loop.is_closed() and not self._gone:
            self._loop.remove_reader(self._channel.fileno())
        self._channel.close()
        if self._process is not None:
            try:
                self._process.wait(CLOSE_WAIT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def _killed_with_server(loop: asyncio.AbstractEventLoop, child: Forked) -> None:
    loop.remove_reader(child.pidfd)
    if not child.exited.done():
        child.exited.set_result(-signal.SIGKILL)
