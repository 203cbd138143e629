"""The MajorDomo broker: routes control requests from clients to service workers.

It runs inside the RunGovernor's asyncio loop on one ROUTER socket that both clients and
workers connect to (the wire format is documented in :mod:`arl.mdp.protocol`).

Behaviour, and why:

* A request for a service with no idle worker waits in that service's queue, so the
  governor may send control requests before a conductor has finished starting.
* Each worker holds at most one request; idle workers of one service are served round
  robin (least recently used first) so load spreads evenly.
* Every message from a worker refreshes its expiry; an idle worker silent for
  ``heartbeat * liveness`` seconds is purged, since ZeroMQ never tells a ROUTER that a
  peer died. A busy one is not: it runs user code that sends no heartbeats (a long
  environment step in a controller), and its process's exit is watched by the governor;
  a request is never re-sent (control requests must not run twice).
* The broker heartbeats every worker it has not sent anything to for ``heartbeat``
  seconds - busy ones too, because a conductor may legitimately hold a control request
  for longer than its liveness window while it keeps ticking.
* A worker the broker does not know (e.g. after a broker restart) is told DISCONNECT,
  which makes it reconnect and send READY again.
* Malformed frames are logged as warnings on ``arl.mdp`` (a flood of them as a count)
  and dropped; they never stop the loop.
* Memory stays bounded under a flood: the socket queues at most
  :data:`~arl.transport.PEER_HWM` messages per peer and refuses frames over
  :data:`~arl.codec.MAX_FRAME_BYTES`; the requests waiting for a worker are at most
  ``max_queued`` in number and ``max_queued_bytes`` in size. A request past either is
  dropped with a warning, and its client's timeout reports the loss.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio

from arl.codec import MAX_FRAME_BYTES
from arl.errors import ProtocolError
from arl.mdp import protocol
from arl.transport import PEER_HWM, DropLog, limit_input

logger = logging.getLogger("arl.mdp")

_BATCH = 100
"""Messages handled per wake-up before heartbeats and purges run again, so a flood of
requests cannot starve liveness bookkeeping."""

MAX_QUEUED = 10_000
"""Requests waiting for a worker, all services together: far more than a run's control
requests (a few per conductor), far fewer than a flood."""

MAX_QUEUED_BYTES = MAX_FRAME_BYTES
"""Bytes of request bodies waiting for a worker: one message of the largest size fits."""

_SEND_HWM = 1000
"""Messages queued per peer on their way out. A ROUTER drops what does not fit, so this
stays at ZeroMQ's default: a client that falls a little behind still gets its replies."""


@dataclass(eq=False)
class _Worker:
    identity: bytes
    service: str
    metadata: dict[str, Any]
    expiry: float
    last_sent: float
    busy: bool = False


@dataclass(eq=False)
class _Service:
    name: str
    requests: deque[tuple[bytes, bytes, bytes]] = field(default_factory=deque)
    """Waiting requests as (client identity, correlation id, body), oldest first."""
    idle: deque[bytes] = field(default_factory=deque)
    """Identities of idle workers, least recently used first."""
    workers: dict[bytes, _Worker] = field(default_factory=dict)
    """Live workers in registration order."""


class Broker:
    """An asyncio MDP broker bound to ``endpoint``; use as ``async with Broker(...)``."""

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        endpoint: str,
        *,
        heartbeat: float = 1.0,
        liveness: int = 3,
        max_queued: int = MAX_QUEUED,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        if heartbeat <= 0:
            raise ValueError(f"heartbeat must be positive, got {heartbeat}")
        if liveness < 1:
            raise ValueError(f"liveness must be at least 1, got {liveness}")
        self._ctx = ctx
        self.endpoint = endpoint
        self._heartbeat = heartbeat
        self._expiry_after = heartbeat * liveness
        self._socket: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._workers: dict[bytes, _Worker] = {}
        self._services: dict[str, _Service] = {}
        self._max_queued, self._max_queued_bytes = max_queued, max_queued_bytes
        self._queued = self._queued_bytes = 0
        self._drops = DropLog(logger, "MDP broker dropped a malformed message")
        self._refusals = DropLog(logger, "MDP broker dropped a request")

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Broker:
        """Bind the ROUTER and start the loop; requests can be routed once this returns."""
        if self._socket is not None:
            raise RuntimeError("this broker is already running")
        socket = self._ctx.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        limit_input(socket, rcvhwm=PEER_HWM, sndhwm=_SEND_HWM)
        try:
            socket.bind(self.endpoint)
        except zmq.ZMQError:
            socket.close(linger=0)
            raise
        self._socket = socket
        self._task = asyncio.create_task(self._run(), name=f"mdp-broker {self.endpoint}")
        self._task.add_done_callback(_log_crash)
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the loop and close the socket; re-raise a loop crash if nothing else is."""
        task, socket = self._task, self._socket
        self._task = self._socket = None
        crash: BaseException | None = None
        try:
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
                if not task.cancelled():
                    crash = task.exception()
        finally:
            if socket is not None:
                socket.close(linger=0)
            self._workers.clear()
            self._services.clear()
            self._queued = self._queued_bytes = 0
        if crash is not None and (not exc or exc[0] is None):
            raise crash

    def services(self) -> dict[str, int]:
        """Service name -> number of live workers, for services that have any."""
        return {name: len(s.workers) for name, s in self._services.items() if s.workers}

    def forget(self, service: str) -> None:
        """Drop every worker of ``service``: their process is known to be dead (ZeroMQ
        never tells a ROUTER, and an idle one would be handed the next request), and a
        replacement is about to register. Requests waiting for the service stay queued."""
        found = self._services.get(service)
        for worker in list(found.workers.values()) if found is not None else ():
            self._delete(worker)

    # -- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        socket = self._socket
        assert socket is not None
        loop = asyncio.get_running_loop()
        while True:
            # Rounded up: waking a hair early would only spin until the duty is due.
            timeout_ms = math.ceil(self._seconds_to_next_duty(loop.time()) * 1000)
            if await socket.poll(timeout_ms):  # POLLIN is the default
                await self._drain(socket)
            now = loop.time()
            self._purge(now)
            await self._send_heartbeats(socket, now)

    def _seconds_to_next_duty(self, now: float) -> float:
        """Time until the next heartbeat or expiry is due, at most one heartbeat. A busy
        worker's expiry is no duty (it is not purged): past it, it would make this 0."""
        due = now + self._heartbeat
        for worker in self._workers.values():
            due = min(due, worker.last_sent + self._heartbeat)
            if not worker.busy:
                due = min(due, worker.expiry)
        return max(0.0, due - now)

    async def _drain(self, socket: zmq.asyncio.Socket) -> None:
        for _ in range(_BATCH):
            try:
                frames = await socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                await self._handle(socket, frames)
            except ProtocolError as exc:
                self._drops.drop(exc)

    async def _handle(self, socket: zmq.asyncio.Socket, raw: list[bytes]) -> None:
        sender, frames = protocol.split_envelope(raw)
        kind = protocol.header(frames)
        if kind == protocol.CLIENT:
            await self._on_client(socket, sender, protocol.parse_client_request(frames))
        elif kind == protocol.WORKER:
            await self._on_worker(socket, sender, protocol.parse_worker_message(frames))
        else:
            raise ProtocolError(f"unknown protocol header {kind!r}")

    # -- clients ----------------------------------------------------------------------

    async def _on_client(self, socket: zmq.asyncio.Socket, client: bytes, request: protocol.ClientRequest) -> None:
        if request.service == protocol.MMI_LOOKUP:
            body = protocol.lookup_reply(self._lookup(request.body))
            reply = protocol.client_report(request.service, request.correlation, body)
            await socket.send_multipart([client, *reply])
            return
        if request.service.startswith(protocol.MMI_PREFIX):
            raise ProtocolError(f"unknown broker-internal service {request.service!r}")
        if not self._room_for(request):
            return
        service = self._service(request.service)
        service.requests.append((client, request.correlation, request.body))
        self._queued += 1
        self._queued_bytes += len(request.body)
        await self._dispatch(socket, service)

    def _room_for(self, request: protocol.ClientRequest) -> bool:
        """Whether the queue takes one more request (and say why not)."""
        if self._queued < self._max_queued and self._queued_bytes + len(request.body) <= self._max_queued_bytes:
            return True
        self._refusals.drop(
            f"{self._queued:,} requests ({self._queued_bytes:,} bytes) already wait for workers; "
            f"a request for {request.service!r} of {len(request.body):,} bytes is not queued"
        )
        return False

    def _lookup(self, body: bytes) -> dict[str, Any] | None:
        """Metadata of the newest live worker of the named service: after a reconnect the
        newest registration is the one most likely still alive."""
        try:
            name = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"mmi.lookup needs a UTF-8 service name, got {body!r}") from exc
        service = self._services.get(name)
        if service is None or not service.workers:
            return None
        return next(reversed(service.workers.values())).metadata

    # -- workers ----------------------------------------------------------------------

    async def _on_worker(self, socket: zmq.asyncio.Socket, identity: bytes, message: protocol.WorkerMessage) -> None:
        worker = self._workers.get(identity)
        if isinstance(message, protocol.Ready):
            await self._on_ready(socket, identity, worker, message)
        elif worker is None:
            if not isinstance(message, protocol.Disconnect):
                logger.info("MDP broker: unknown worker %s; asking it to re-register", identity)
                await socket.send_multipart([identity, *protocol.disconnect()])
        else:
            worker.expiry = asyncio.get_running_loop().time() + self._expiry_after
            if isinstance(message, protocol.WorkerReport):
                await self._on_report(socket, worker, message)
            elif isinstance(message, protocol.Disconnect):
                self._delete(worker)

    async def _on_ready(
        self,
        socket: zmq.asyncio.Socket,
        identity: bytes,
        known: _Worker | None,
        ready: protocol.Ready,
    ) -> None:
        if known is not None:
            # A second READY on one connection is a protocol violation; start it afresh.
            self._delete(known)
            await self._send(socket, known, protocol.disconnect())
            raise ProtocolError(f"worker of {known.service!r} sent READY twice; disconnected")
        if ready.service.startswith(protocol.MMI_PREFIX):
            raise ProtocolError(f"a worker may not register the reserved service {ready.service!r}")
        now = asyncio.get_running_loop().time()
        worker = _Worker(identity, ready.service, ready.metadata, now + self._expiry_after, now)
        service = self._service(ready.service)
        self._workers[identity] = worker
        service.workers[identity] = worker
        service.idle.append(identity)
        logger.debug("MDP broker: worker registered for %r", ready.service)
        await self._dispatch(socket, service)

    async def _on_report(self, socket: zmq.asyncio.Socket, worker: _Worker, report: protocol.WorkerReport) -> None:
        reply = protocol.client_report(worker.service, report.correlation, report.body)
        await socket.send_multipart([report.client, *reply])
        if worker.busy:
            worker.busy = False
            service = self._services[worker.service]
            service.idle.append(worker.identity)
            await self._dispatch(socket, service)

    async def _dispatch(self, socket: zmq.asyncio.Socket, service: _Service) -> None:
        """Hand waiting requests to idle workers, least recently used worker first."""
        while service.requests and service.idle:
            worker = self._workers[service.idle.popleft()]
            client, correlation, body = service.requests.popleft()
            self._queued -= 1
            self._queued_bytes -= len(body)
            worker.busy = True
            await self._send(socket, worker, protocol.worker_request(client, correlation, body))

    async def _send(self, socket: zmq.asyncio.Socket, worker: _Worker, frames: list[bytes]) -> None:
        worker.last_sent = asyncio.get_running_loop().time()
        await socket.send_multipart([worker.identity, *frames])

    # -- liveness ---------------------------------------------------------------------

    def _purge(self, now: float) -> None:
        # A busy worker is not purged: it runs a request (user code: a long env.step in
        # a controller, a brain.load) that sends no heartbeats, and purging it would lose
        # the request. Whether its process lives is the governor's to see, through its exit.
        for worker in [w for w in self._workers.values() if w.expiry <= now and not w.busy]:
            logger.warning(
                "MDP broker: a worker of %r was silent for %.3g s; purged", worker.service, self._expiry_after
            )
            self._delete(worker)

    async def _send_heartbeats(self, socket: zmq.asyncio.Socket, now: float) -> None:
        for worker in list(self._workers.values()):
            if now - worker.last_sent >= self._heartbeat:
                await self._send(socket, worker, protocol.heartbeat())

    # -- bookkeeping ------------------------------------------------------------------

    def _service(self, name: str) -> _Service:
        service = self._services.get(name)
        if service is None:
            service = self._services[name] = _Service(name)
        return service

    def _delete(self, worker: _Worker) -> None:
        self._workers.pop(worker.identity, None)
        service = self._services.get(worker.service)
        if service is None:
            return
        service.workers.pop(worker.identity, None)
        if worker.identity in service.idle:
            service.idle.remove(worker.identity)
        if not service.workers and not service.requests:
            del self._services[worker.service]


def _log_crash(task: asyncio.Task[None]) -> None:
    """Report a broker loop that died at once, not only when the broker is closed."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("MDP broker loop crashed", exc_info=task.exception())
