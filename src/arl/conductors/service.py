"""The serve loop every conductor runs: one MDP worker plus one direct link.

The broker carries control requests (setup, run phase, save); the direct
ROUTER carries the per-step requests of the simulation controllers, skipping the broker
hop. Both go through :meth:`Service.dispatch`, the process's one error boundary: any
exception becomes an :class:`~arl.messages.common.ErrorReply` with the traceback text.
A message that is not even a request (the wrong number of frames) is dropped with a
warning: nothing another process sends can end this one.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

import zmq

from arl.codec import decode, encode
from arl.errors import ComponentCrashed
from arl.mdp.worker import MdpWorker
from arl.messages.common import ErrorReply
from arl.proc.child import ChildContext
from arl.transport import DropLog, check_size, limit_input

log = logging.getLogger("arl.service")


def env_service(uid: str, worker: int) -> str:
    """The broker's name of the conductor of environment ``uid`` on ``worker``."""
    return f"env.{uid}.{worker}"


def agent_service(name: str) -> str:
    """How agent ``name`` is named in its failures (``ErrorReply.component``)."""
    return f"agent.{name}"


def agent_host_service(index: int) -> str:
    """The broker's name of the ``index``-th agent process (it hosts one or more agents)."""
    return f"agents.{index}"


def controller_service(worker: int) -> str:
    return f"controller.{worker}"


PULSE_INTERVAL = 0.02  # seconds between heartbeat/stop checks inside a long request
HEARTBEAT = 1.0
# A control request runs user code (constructors, imports, brain.load) that sends no
# heartbeats; a minute of silence is allowed before the broker gives up on a worker.
# Dead processes are noticed sooner through their exit, not through heartbeats.
LIVENESS = 60


class Service:
    """Serves ``handle(message) -> reply`` as MDP service ``name`` until asked to stop."""

    def __init__(self, ctx: ChildContext, handle: Callable[[Any], Any], *, heartbeat: float = HEARTBEAT) -> None:
        args = ctx.spec.args
        self.ctx = ctx
        self.name: str = args["service"]
        self._handle = handle
        self._direct_endpoint: str | None = args.get("direct")
        self._router: zmq.Socket[Any] | None = None
        if self._direct_endpoint:
            self._router = ctx.zmq.socket(zmq.ROUTER)
            self._router.setsockopt(zmq.LINGER, 0)
            limit_input(self._router)
            self._router.bind(self._direct_endpoint)
        metadata = {"direct": self._direct_endpoint} if self._direct_endpoint else {}
        self.worker = MdpWorker(
            ctx.zmq,
            args["broker"],
            self.name,
            heartbeat=heartbeat,
            liveness=max(1, round(float(args.get("liveness", LIVENESS * heartbeat)) / heartbeat)),
            metadata=metadata,
        )
        self._heartbeat = heartbeat
        self._next_pulse = 0.0
        self._stopping = False
        self._drops = DropLog(log, f"{self.name} dropped a malformed message on its direct link")

    def dispatch(self, body: bytes) -> bytes:
        """Decode, handle, encode — and turn any failure into an ErrorReply."""
        try:
            return check_size(encode(self._handle(decode(body))), f"{self.name}'s reply")
        except ComponentCrashed as exc:  # another component's failure, passed on as it was
            return encode(ErrorReply(exc.component, exc.kind, exc.detail, exc.remote_traceback))
        except Exception as exc:
            log.debug("%s failed: %s", self.name, exc, exc_info=True)
            return encode(ErrorReply(self.name, type(exc).__name__, str(exc), traceback.format_exc()))

    def pulse(self) -> bool:
        """Keep the broker link alive during a long request; True if asked to stop.

        Cheap enough for every step: it does real work at most every PULSE_INTERVAL.
        """
        now = time.monotonic()
        if now < self._next_pulse:
            return self._stopping
        self._next_pulse = now + PULSE_INTERVAL
        while self.worker.socket.poll(0):
            if self.worker.recv() is not None:
                log.error("%s got a request while busy; the broker should not send one", self.name)
        self.worker.tick()
        self._stopping = self._stopping or self.ctx.stop_requested()
        return self._stopping

    def serve(self) -> None:
        """Serve until the parent asks this process to stop (or dies)."""
        self.ctx.ready()
        try:
            while not self._serve_once():
                pass
        finally:
            self.worker.close()
            if self._router is not None:
                self._router.close()

    def _serve_once(self) -> bool:
        poller = zmq.Poller()
        worker_socket = self.worker.socket
        poller.register(worker_socket, zmq.POLLIN)
        poller.register(self.ctx.control_fd, zmq.POLLIN)
        if self._router is not None:
            poller.register(self._router, zmq.POLLIN)
        timeout_ms = int(self._heartbeat * 1000 / 2)
        while self.worker.socket is worker_socket:  # the worker may reconnect on a new socket
            events = dict(poller.poll(timeout_ms))
            if self._router is not None and self._router in events:
                self._serve_direct(self._router)
            if worker_socket in events:
                request = self.worker.recv()
                if request is not None:
                    self.worker.reply(request, self.dispatch(request.body))
                    # Heartbeats queued while the request ran prove the broker alive.
                    while self.worker.socket is worker_socket and worker_socket.poll(0):
                        if (queued := self.worker.recv()) is not None:
                            self.worker.reply(queued, self.dispatch(queued.body))
            # A stop seen by pulse() inside a long request has already been read off the pipe.
            if self._stopping or (self.ctx.control_fd in events and self.ctx.stop_requested()):
                return True
            self.worker.tick()
        return False

    def _serve_direct(self, router: zmq.Socket[Any]) -> None:
        """Answer one request on the direct link: [identity, body] from a DEALER."""
        frames = router.recv_multipart()
        if len(frames) != 2:
            self._drops.drop(f"{len(frames) - 1} frames where a request has 1")
            return
        identity, body = frames
        router.send_multipart([identity, self.dispatch(body)])
