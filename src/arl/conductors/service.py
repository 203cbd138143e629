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
import math
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

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


def learner_service(name: str) -> str:
    """The broker's name of central agent ``name``'s learner process."""
    return f"learner.{name}"


class Batcher(Protocol):
    """Answers the direct link's requests a batch at a time (an agent process)."""

    def limits(self) -> tuple[int, float]:
        """The most requests a batch takes, and the seconds to wait for more."""
        ...

    def handle_batch(self, requests: list[Any], received: float) -> list[Any]:
        """A reply for each request, in order; ``received``: when the first one was read
        (``time.monotonic``)."""
        ...


PULSE_INTERVAL = 0.02  # seconds between heartbeat/stop checks inside a long request
HEARTBEAT = 1.0
# A control request runs user code (constructors, imports, brain.load) that sends no
# heartbeats; a minute of silence is allowed before the broker gives up on a worker.
# Dead processes are noticed sooner through their exit, not through heartbeats.
LIVENESS = 60


class Service:
    """Serves ``handle(message) -> reply`` as MDP service ``name`` until asked to stop.

    ``batcher`` (an agent process) answers the direct link's requests in batches: what
    waits is read at once, up to its limit, waiting a little for more if it says so.
    :meth:`watch` adds a socket of the process's own to the loop, and ``idle`` (a
    learner's training) is called after every turn of it and says in how many seconds
    it wants calling again.
    """

    def __init__(
        self,
        ctx: ChildContext,
        handle: Callable[[Any], Any],
        *,
        heartbeat: float = HEARTBEAT,
        batcher: Batcher | None = None,
    ) -> None:
        args = ctx.spec.args
        self.ctx = ctx
        self.name: str = args["service"]
        self._handle = handle
        self._batcher = batcher
        self._watched: dict[zmq.Socket[Any], Callable[[], object]] = {}
        self.idle: Callable[[], float] | None = None
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

    def watch(self, sock: zmq.Socket[Any], on_ready: Callable[[], object]) -> None:
        """Call ``on_ready`` whenever ``sock`` has something to read."""
        self._watched[sock] = on_ready

    def dispatch(self, body: bytes) -> bytes:
        """Decode, handle, encode — and turn any failure into an ErrorReply."""
        try:
            return check_size(encode(self._handle(decode(body))), f"{self.name}'s reply")
        except Exception as exc:
            return self._failure(exc)

    def _failure(self, exc: Exception) -> bytes:
        if isinstance(exc, ComponentCrashed):  # another component's failure, passed on as it was
            return encode(ErrorReply(exc.component, exc.kind, exc.detail, exc.remote_traceback))
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
        for sock in self._watched:
            poller.register(sock, zmq.POLLIN)
        timeout_ms = int(self._heartbeat * 1000 / 2)
        while self.worker.socket is worker_socket:  # the worker may reconnect on a new socket
            wait = timeout_ms if self.idle is None else min(timeout_ms, max(0, math.ceil(self.idle() * 1000)))
            events = dict(poller.poll(wait))
            if self._router is not None and self._router in events:
                if self._batcher is None:
                    self._serve_direct(self._router)
                else:
                    self._serve_batch(self._router, self._batcher)
            for sock, on_ready in self._watched.items():
                if sock in events:
                    on_ready()
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

    def _serve_batch(self, router: zmq.Socket[Any], batcher: Batcher) -> None:
        """Answer what waits on the direct link as one batch: up to the batcher's limit,
        waiting up to its delay for more (a controller has one request out at a time, so
        a batch holds one request of each worker at most)."""
        received = time.monotonic()
        most, delay = batcher.limits()
        deadline = received + delay
        requests: list[tuple[bytes, bytes]] = []
        while len(requests) < most:
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                left = deadline - time.monotonic()
                if left <= 0 or (not router.poll(math.ceil(left * 1000)) and time.monotonic() >= deadline):
                    break
                continue
            if len(frames) != 2:
                self._drops.drop(f"{len(frames) - 1} frames where a request has 1")
                continue
            requests.append((frames[0], frames[1]))
        if not requests:
            return
        replies: list[bytes | None] = [None] * len(requests)
        decoded: list[Any] = []
        places: list[int] = []
        for i, (_, body) in enumerate(requests):
            try:
                decoded.append(decode(body))
                places.append(i)
            except Exception as exc:
                replies[i] = self._failure(exc)
        if decoded:
            try:
                answers = batcher.handle_batch(decoded, received)
                for i, answer in zip(places, answers, strict=True):
                    replies[i] = check_size(encode(answer), f"{self.name}'s reply")
            except Exception as exc:  # the batch's failure is every request's
                failure = self._failure(exc)
                for i in places:
                    replies[i] = failure
        for (identity, _), reply in zip(requests, replies, strict=True):
            assert reply is not None
            router.send_multipart([identity, reply])
