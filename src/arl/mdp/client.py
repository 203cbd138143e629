"""An asyncio MDP client: the RunGovernor's side of control requests.

One DEALER socket carries every request; a single receive task (owned by the client and
cancelled on :meth:`MdpClient.close`) matches each reply to its request by correlation id,
so any number of :meth:`MdpClient.request` calls may be in flight at once, even to the
same service. The wire format is documented in :mod:`arl.mdp.protocol`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import zmq
import zmq.asyncio

from arl.errors import ProtocolError, RequestTimeout
from arl.mdp import protocol
from arl.transport import check_size

logger = logging.getLogger("arl.mdp")


class MdpClient:
    """Sends requests to services through an MDP broker; use ``async with`` or ``close``."""

    def __init__(self, ctx: zmq.asyncio.Context, broker: str) -> None:
        self._broker = broker
        self._socket = ctx.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(broker)
        self._pending: dict[bytes, asyncio.Future[bytes]] = {}
        self._ids = itertools.count(1)
        self._receiver: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> MdpClient:
        self._ensure_receiver()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        service: str,
        body: bytes,
        *,
        timeout: float,
    ) -> bytes:
        """Send ``body`` to ``service`` and return the reply body.

        Raises :class:`~arl.errors.RequestTimeout` if no reply arrives within ``timeout``
        seconds; a reply that arrives later is dropped. A body the broker would refuse
        for its size raises :class:`~arl.errors.ProtocolError` at once.
        """
        check_size(body, f"a request to {service!r}")
        self._ensure_receiver()
        correlation = next(self._ids).to_bytes(8, "big")
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = reply
        try:
            async with asyncio.timeout(timeout):
                await self._socket.send_multipart(protocol.client_request(service, correlation, body))
                return await reply
        except TimeoutError:
            raise RequestTimeout(f"no reply from service {service!r} within {float(timeout)} s") from None
        finally:
            self._pending.pop(correlation, None)

    async def lookup(
        self,
        service: str,
        *,
        timeout: float = 5.0,
    ) -> dict[str, Any] | None:
        """The metadata a live worker of ``service`` registered, or None if there is none."""
        body = await self.request(protocol.MMI_LOOKUP, service.encode("utf-8"), timeout=timeout)
        return protocol.parse_lookup_reply(body)

    async def close(self) -> None:
        """Stop the receive task, fail outstanding requests and close the socket."""
        if self._closed:
            return
        self._closed = True
        receiver, self._receiver = self._receiver, None
        try:
            if receiver is not None:
                receiver.cancel()
                await asyncio.wait([receiver])
                if not receiver.cancelled() and receiver.exception() is not None:
                    logger.info("MDP client receive task had stopped: %s", receiver.exception())
        finally:
            for reply in self._pending.values():
                if not reply.done():
                    reply.set_exception(RuntimeError("the MDP client was closed"))
            self._socket.close(linger=0)

    def _ensure_receiver(self) -> None:
        if self._closed:
            raise RuntimeError("this MDP client is closed")
        if self._receiver is None:
            self._receiver = asyncio.create_task(self._receive(), name=f"mdp-client {self._broker}")
        elif self._receiver.done():
            # Surface why replies can no longer arrive instead of letting requests time out.
            self._receiver.result()
            raise RuntimeError("the MDP client's receive task has stopped")

    async def _receive(self) -> None:
        """Resolve the pending request each reply belongs to; drop malformed or late ones."""
        while True:
            try:
                frames = await self._socket.recv_multipart()
            except zmq.ZMQError as exc:
                # The socket or context is gone: no reply can come, so say why right away.
                for reply in self._pending.values():
                    if not reply.done():
                        reply.set_exception(exc)
                raise
            self._resolve(frames)

    def _resolve(self, frames: list[bytes]) -> None:
        try:
            report = protocol.parse_client_report(frames)
        except ProtocolError as exc:
            logger.warning("MDP client dropped a malformed reply: %s", exc)
            return
        reply = self._pending.get(report.correlation)
        if reply is None or reply.done():
            logger.debug("MDP client: late reply from %r dropped", report.service)
            return
        reply.set_result(report.body)
