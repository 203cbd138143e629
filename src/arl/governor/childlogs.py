"""The governor's relay of its children's log records, keeping each child's last lines.

A run's children send their records to the governor rather than straight to the
executor's LogServer. The relay forwards, unchanged, those at the level ``arl-run``
shows, and keeps the last :data:`TAIL` lines of each child: when a child dies, the
governor says what it was doing last. Children send INFO and up even when only WARNING
is shown (INFO lines are few: setup, brains loaded), so that there is something to say.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import zmq

from arl.codec import unpack
from arl.errors import ProtocolError
from arl.proc.logs import LogConfig, restore_record
from arl.transport import MAX_LOG_BYTES, PEER_HWM, DropLog, limit_input

log = logging.getLogger("arl.governor")

TAIL = 10
"""Lines kept per child."""

LINE_MAX = 300
"""Characters kept of a line; a traceback keeps its last line (the exception)."""

FORWARD_HWM = 10_000
"""Records queued for the LogServer before new ones are dropped (as a child's own
handler does): a flood must not grow memory."""


class ChildLogRelay:
    """A PULL socket at ``endpoint`` for the children, a PUSH to ``upstream``.

    Synchronous sockets read from the event loop (:meth:`attach`), so that :meth:`drain`
    can take what has arrived at once, before a dead child's lines are looked at.
    """

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, upstream: LogConfig) -> None:
        self.endpoint = endpoint
        self._level = upstream.level
        self._pull = ctx.socket(zmq.PULL)
        self._pull.setsockopt(zmq.LINGER, 0)
        limit_input(self._pull, max_bytes=MAX_LOG_BYTES, rcvhwm=PEER_HWM)  # as the LogServer's
        self._pull.bind(endpoint)
        self._push = ctx.socket(zmq.PUSH)
        self._push.setsockopt(zmq.LINGER, 1000)  # a moment for the last lines to leave, never a hang
        self._push.setsockopt(zmq.SNDHWM, FORWARD_HWM)
        self._push.connect(upstream.endpoint)
        self._drops = DropLog(log, "dropped a malformed log frame from a child")
        self._tails: dict[str, deque[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def child_config(self) -> LogConfig:
        """What the children log with: to this relay, INFO and up at least."""
        return LogConfig(self.endpoint, min(self._level, logging.INFO))

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Relay from now on, whenever records arrive."""
        self._loop = loop
        loop.add_reader(self._pull.getsockopt(zmq.FD), self.drain)

    def drain(self) -> None:
        """Take every record that has arrived. (ZeroMQ's descriptor signals edges: all
        must be read each time it wakes the loop.)"""
        while True:
            try:
                frame = self._pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._take(frame)

    def tail(self, label: str) -> list[str]:
        """The last lines of child ``label`` (``role:name``), oldest first."""
        return list(self._tails.get(label, ()))

    def close(self) -> None:
        """Relay what is left, then close both sockets. Idempotent."""
        if self._pull.closed:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._pull.getsockopt(zmq.FD))
        self.drain()
        self._pull.close()
        self._push.close()

    def _take(self, frame: bytes) -> None:
        try:
            record = restore_record(unpack(frame))
        except ProtocolError as exc:
            self._drops.drop(exc)
            return
        label = str(getattr(record, "arl_process", "?"))
        self._tails.setdefault(label, deque(maxlen=TAIL)).append(_line(record))
        if record.levelno >= self._level:
            # The LogServer is gone or flooded: dropping a log line beats blocking the run.
            with contextlib.suppress(zmq.Again):
                self._push.send(frame, zmq.NOBLOCK)


def _line(record: logging.LogRecord) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(record.created))
    text = f"{when} {record.levelname} {record.name}: {record.getMessage()}"
    exc_text = getattr(record, "exc_text", None)
    if exc_text:
        text += f" | {str(exc_text).strip().splitlines()[-1]}"
    return text if len(text) <= LINE_MAX else text[: LINE_MAX - 3] + "..."
