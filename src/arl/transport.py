"""Limits on the ZeroMQ sockets that take input from another process, and the one way
their owners report what they drop.

ZeroMQ queues are unbounded in bytes: a high-water mark counts messages, and nothing
limits a message's size unless ``MAXMSGSIZE`` is set. Every socket that reads from
another process therefore gets both, so that a flood, or one huge frame, costs the
reader at most ``hwm`` messages of at most ``max_bytes`` each, per connected peer. A
frame over ``max_bytes`` never reaches the program: ZeroMQ drops the connection that
sent it (the sender reconnects by itself). Senders check sizes first
(:func:`check_size`), so arl's own messages fail with a clear error instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from arl.codec import MAX_FRAME_BYTES
from arl.errors import ProtocolError

MAX_LOG_BYTES = 256 * 2**10
"""The largest log record a child sends (its text is shortened to fit)."""

PEER_HWM = 100
"""Messages queued per connected peer: a conductor's link carries one request at a time,
the broker's a burst of control requests (the client waits, it does not drop)."""


def limit_input(
    sock: zmq.Socket[Any], *, max_bytes: int = MAX_FRAME_BYTES, rcvhwm: int = PEER_HWM, sndhwm: int = PEER_HWM
) -> None:
    """Bound what ``sock`` queues and the size of each frame it accepts (before bind/connect)."""
    sock.setsockopt(zmq.MAXMSGSIZE, max_bytes)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.SNDHWM, sndhwm)


def check_size(frame: bytes, what: str) -> bytes:
    """``frame``, or a :class:`ProtocolError` if the receiving socket would refuse it."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"{what} is {len(frame):,} bytes, over the {MAX_FRAME_BYTES:,}-byte limit of a message; "
            "send less per message (large data belongs in files)"
        )
    return frame


class DropLog:
    """Logs what a receiver dropped: the first ``burst`` at once, then at most one line per
    ``interval`` seconds, saying how many went unreported. A flood of malformed messages
    must not become a flood of log lines.
    """

    def __init__(self, logger: logging.Logger, what: str, *, burst: int = 10, interval: float = 1.0) -> None:
        self._logger = logger
        self._what = what  # "dropped a malformed log frame", say
        self._burst = burst
        self._interval = interval
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._unlogged = 0
        self.dropped = 0

    def drop(self, why: object) -> None:
        self.dropped += 1
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
        self._last = now
        if self._tokens < 1:
            self._unlogged += 1
            return
        self._tokens -= 1
        more = f" ({self._unlogged:,} more dropped since the last report)" if self._unlogged else ""
        self._logger.warning("%s: %s%s", self._what, why, more)
        self._unlogged = 0
