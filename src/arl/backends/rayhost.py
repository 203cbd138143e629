"""One run's home on a Ray node (``--backend ray``): the node's side of
:mod:`arl.backends.raycluster`.

A :class:`RunHost` is a Ray actor, one per run, placed with the CPUs (and GPUs) the run
needs. It starts the run's governor as the local backend does (a child of a fork server
of its own, reporting to a ROUTER and logging to a PULL socket on ipc in a private
folder), so that the run's processes and their ZeroMQ traffic stay on this node. What the
governor reports and logs is queued here as frames, unread, and the executor fetches the
queue (:meth:`RunHost.events`, a long poll) through Ray's own authenticated channels; its
control requests come down the same way (:meth:`RunHost.send`).

The governor is this actor's child: it dies with the actor's process, and its own
children die with it, however the actor ends (``ray.kill``, its node lost). Nothing here
imports Ray: the executor makes the class an actor (``ray.remote(RunHost)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

import arl
from arl.config.spec import RunSpec
from arl.governor.options import RunOptions
from arl.proc import forkserver
from arl.proc.child import ChildSpec, SupervisedChild
from arl.proc.ipc import private_dir
from arl.proc.logs import LogConfig
from arl.transport import MAX_LOG_BYTES, PEER_HWM, limit_input

MAX_QUEUED = 10_000  # frames kept for the executor; beyond it, log frames are dropped (and counted)
CONTROL, LOG, EXIT, DROPPED = "control", "log", "exit", "dropped"  # what the queue's events are


@dataclass(frozen=True)
class Shared:
    """The folders every node must see as the submitting machine does, each with the name
    of a file the executor put there for the runs (:func:`unshared` looks for it)."""

    folders: tuple[tuple[str, str], ...] = ()  # (folder, marker file name)


@dataclass(frozen=True)
class Where:
    """Where a run's host is: what the executor says of it, and checks."""

    node_id: str
    address: str
    hostname: str
    pid: int
    arl_version: str


def unshared(shared: Shared) -> list[str]:
    """The folders of ``shared`` this node does not see as the submitting machine does."""
    return [folder for folder, marker in shared.folders if not os.path.exists(os.path.join(folder, marker))]


class RunHost:
    """Hosts one run's governor on the node Ray placed it on."""

    def __init__(self, module_paths: Sequence[str] = (), cwd: str | None = None) -> None:
        # Relative paths of a run (the default snapshot folder, a file an environment reads)
        # mean here what they mean where arl-run was started, where that folder is here too.
        if cwd is not None and os.path.isdir(cwd):
            os.chdir(cwd)
        # The runs' own modules (the experiment files' folders, their `paths:`), last on the
        # path as in arl-run, before the fork server is spawned with this sys.path.
        for folder in module_paths:
            if folder not in sys.path:
                sys.path.append(folder)
        # Started here, in the actor's main thread: the kernel ends a fork server when the
        # thread that started it ends (PDEATHSIG), and Ray runs an async actor's methods in a
        # thread of its own.
        self._server = forkserver.start()
        self._queue: deque[tuple[str, Any]] = deque()
        self._dropped = 0
        # Made here: Ray may run an async actor's calls in another order than they were made
        # (events before start); an Event binds to the loop that first waits on it.
        self._news = asyncio.Event()
        self._stop_asked = False
        self._child: SupervisedChild | None = None
        self._zctx: zmq.asyncio.Context | None = None
        self._sockets: list[zmq.asyncio.Socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._dir = ""
        self._identity = b""  # the governor's on the control socket

    def where(self) -> Where:
        import ray  # (in the actor's process, where Ray is imported already)

        context = ray.get_runtime_context()
        address = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        return Where(context.get_node_id(), address, socket.gethostname(), os.getpid(), arl.__version__)

    async def start(self, spec: RunSpec, options: RunOptions, shared: Shared, timeout: float) -> str | None:
        """Start the run's governor; None once it is ready, else why it did not start."""
        missing = unshared(shared)
        if missing:
            return (
                f"node {socket.gethostname()} does not see {', '.join(missing)} as the submitting machine does "
                "(the file arl-run put there is not there): mount the shared folder at the same path on every node"
            )
        try:
            self._dir = private_dir("arl-ray-")
            options = self._listen(options)
        except (OSError, zmq.ZMQError, arl.ArlError) as exc:
            return f"cannot set the run up on node {socket.gethostname()}: {exc}"
        child_spec = ChildSpec("governor", spec.uid, "arl.governor.shell:main", {"spec": spec, "options": options})
        self._child = SupervisedChild(child_spec, options.logs, asynchronous=True, server=self._server)
        try:
            await self._child.start(timeout)
        except Exception as exc:  # its own words: a StartTimeout, ComponentCrashed, ArlError
            await self._child.stop(grace=0)
            self._put(EXIT, self._child.exitcode)
            return str(exc)
        self._child.exited.add_done_callback(lambda done: self._put(EXIT, done.result()))
        if self._stop_asked:  # (asked while it started: now it can hear it)
            self._child.request_stop()
        return None

    def _listen(self, options: RunOptions) -> RunOptions:
        """The governor's report and log sockets, read into the queue; its options with
        them (and its private folder) in this node's private folder."""
        self._zctx = zmq.asyncio.Context()
        control = self._zctx.socket(zmq.ROUTER)
        limit_input(control)
        logs = self._zctx.socket(zmq.PULL)
        limit_input(logs, max_bytes=MAX_LOG_BYTES, rcvhwm=PEER_HWM)
        self._sockets = [control, logs]
        for sock in self._sockets:
            sock.setsockopt(zmq.LINGER, 0)
        control.bind(f"ipc://{self._dir}/control")
        logs.bind(f"ipc://{self._dir}/log")
        self._tasks = [asyncio.create_task(self._read(control, CONTROL)), asyncio.create_task(self._read(logs, LOG))]
        self._identity = options.control_id.encode()
        return dataclasses.replace(
            options,
            logs=LogConfig(f"ipc://{self._dir}/log", options.logs.level),
            control=f"ipc://{self._dir}/control",
            rundir=f"{self._dir}/run",
        )

    async def _read(self, sock: zmq.asyncio.Socket, kind: str) -> None:
        while True:
            self._put_frames(kind, await sock.recv_multipart())

    def _put_frames(self, kind: str, frames: list[bytes]) -> None:
        # A report is the governor's identity and one frame; a log record, one frame.
        self._put(kind, frames[1:] if kind == CONTROL else frames[0])

    def _put(self, kind: str, payload: Any) -> None:
        if kind == LOG and len(self._queue) >= MAX_QUEUED:
            self._dropped += 1  # the executor is not fetching: its logs may go, never its reports
            return
        self._queue.append((kind, payload))
        self._news.set()

    async def events(self, wait: float) -> list[tuple[str, Any]]:
        """What happened since the last call, waiting up to ``wait`` seconds for something."""
        if not self._queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), wait)
        self._news.clear()
        taken = list(self._queue)
        self._queue.clear()
        if self._dropped:
            taken.append((DROPPED, self._dropped))
            self._dropped = 0
        return taken

    async def send(self, frame: bytes) -> None:
        """A control frame for the governor (its identity is the one its options gave)."""
        if self._child is not None and self._sockets:
            await self._sockets[0].send_multipart([self._identity, frame])

    def request_stop(self) -> None:
        self._stop_asked = True
        if self._child is not None:
            self._child.request_stop()

    async def stop(self, grace: float) -> int | None:
        """Stop the governor (as :meth:`SupervisedChild.stop`); its exit code."""
        if self._child is None or self._child.pid is None:
            return None
        return await self._child.stop(grace=grace)

    async def close(self) -> list[tuple[str, Any]]:
        """Stop everything here; the events not fetched yet."""
        await self.stop(grace=0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock, kind in zip(self._sockets, (CONTROL, LOG), strict=False):
            plain: zmq.Socket[bytes] = zmq.Socket.shadow(sock.underlying)  # what arrived before the end is read first
            while plain.poll(0):
                self._put_frames(kind, plain.recv_multipart())
            sock.close(linger=0)
        if self._zctx is not None:
            self._zctx.term()
        forkserver.stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        taken = list(self._queue)
        self._queue.clear()
        self._news.set()  # (a fetch waiting for news returns now, with what it had)
        return taken
