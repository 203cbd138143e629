"""A synchronous MDP worker, driven from the caller's own ``zmq.Poller`` loop.

Conductors run a tight poll loop over several sockets (the broker connection and their
direct hot-path ROUTER), so this worker never blocks and never owns the loop: the caller
polls :attr:`MdpWorker.socket`, calls :meth:`MdpWorker.recv` when it is readable and
:meth:`MdpWorker.tick` at least once per heartbeat interval. The wire format is
documented in :mod:`arl.mdp.protocol`.

Liveness works both ways: the worker heartbeats the broker when it has sent nothing for
``heartbeat`` seconds, and when it has heard nothing from the broker for
``heartbeat * liveness`` seconds it assumes the broker is gone, replaces its socket with a
fresh one and registers again. A DISCONNECT from the broker triggers the same.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import zmq

from arl.errors import ProtocolError
from arl.mdp import protocol
from arl.transport import DropLog, limit_input

logger = logging.getLogger("arl.mdp")

_CLOSE_LINGER_MS = 100
"""How long ``close`` lets the DISCONNECT drain. Zero would usually discard it, leaving
the broker to notice only after the liveness window; the bound keeps close prompt when
the broker is already gone."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request handed to this worker; pass it back to :meth:`MdpWorker.reply`."""

    client: bytes
    correlation: bytes
    body: bytes


class MdpWorker:
    """Serves one service for an MDP broker; connects and registers on construction."""

    socket: zmq.Socket[bytes]
    """The broker connection. Replaced on reconnect, so re-read it after :meth:`tick`
    and :meth:`recv`."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        broker: str,
        service: str,
        *,
        heartbeat: float = 1.0,
        liveness: int = 3,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if heartbeat <= 0:
            raise ValueError(f"heartbeat must be positive, got {heartbeat}")
        if liveness < 1:
            raise ValueError(f"liveness must be at least 1, got {liveness}")
        if service.startswith(protocol.MMI_PREFIX):
            raise ValueError(f"service names starting with 'mmi.' are reserved: {service!r}")
        self._ctx = ctx
        self._broker = broker
        self.service = service
        self._heartbeat = heartbeat
        self._silence_limit = heartbeat * liveness
        # Built once up front so an empty name or unpackable metadata fails here, loudly.
        self._ready = protocol.worker_ready(service, dict(metadata or {}))
        self._last_sent = self._last_heard = time.monotonic()
        self._closed = False
        self._drops = DropLog(logger, f"MDP worker {service!r} dropped a malformed message from the broker")
        self.socket = self._connect()

    def recv(self) -> Request | None:
        """Read one message; returns a request, or None for housekeeping or no message.

        A malformed message is dropped with a warning: it must not end the process.
        """
        try:
            frames = self.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        self._last_heard = time.monotonic()
        try:
            message = protocol.parse_broker_message(frames)
        except ProtocolError as exc:
            self._drops.drop(exc)
            return None
        if isinstance(message, protocol.WorkerRequest):
            return Request(message.client, message.correlation, message.body)
        if isinstance(message, protocol.Disconnect):
            logger.info("MDP worker %r: broker asked to re-register", self.service)
            self._reconnect()
        return None

    def reply(self, request: Request, body: bytes) -> None:
        """Send the final reply to ``request``; the broker then may hand over the next one."""
        self._send(protocol.worker_report(request.client, request.correlation, body))

    def tick(self) -> None:
        """Heartbeat when due; re-register if the broker has been silent too long."""
        now = time.monotonic()
        # Messages waiting to be read prove the broker alive: a worker busy with a long
        # request has not read them yet (the caller reads them next).
        if now - self._last_heard >= self._silence_limit and not self.socket.poll(0):
            logger.warning(
                "MDP worker %r: no word from the broker at %s for %.3g s; reconnecting",
                self.service,
                self._broker,
                now - self._last_heard,
            )
            self._reconnect()
        elif now - self._last_sent >= self._heartbeat:
            self._send(protocol.heartbeat())

    def close(self) -> None:
        """Tell the broker this worker is leaving, then close the socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._send(protocol.disconnect())
        self.socket.close(linger=_CLOSE_LINGER_MS)

    def __enter__(self) -> MdpWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> zmq.Socket[bytes]:
        socket = self._ctx.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        limit_input(socket)
        socket.connect(self._broker)
        self.socket = socket
        self._send(self._ready)
        self._last_heard = time.monotonic()
        return socket

    def _reconnect(self) -> None:
        self.socket.close(linger=0)
        self.socket = self._connect()

    def _send(self, frames: list[bytes]) -> None:
        """Send without blocking: the connection only backs up when the broker is gone,
        and then a liveness reconnect follows anyway, so blocking the caller's hot loop
        would gain nothing."""
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            logger.warning(
                "MDP worker %r: connection to %s is backed up; a message was dropped",
                self.service,
                self._broker,
            )
            return
        self._last_sent = time.monotonic()
