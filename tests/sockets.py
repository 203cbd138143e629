"""ZeroMQ helpers the socket tests share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import zmq


@contextmanager
def pusher(endpoint: str) -> Iterator[zmq.Socket[Any]]:
    """A PUSH socket connected to ``endpoint``, in a context of its own; on the way out it
    lingers up to 5 s, so every frame sent has been delivered when the block ends."""
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 5000)
    sock.connect(endpoint)
    try:
        yield sock
    finally:
        sock.close()
        ctx.term()
