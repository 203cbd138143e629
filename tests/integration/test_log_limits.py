"""The LogServer under a flood, and what a log frame may be, with real sockets."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil
import pytest
import zmq

from arl.codec import pack
from arl.errors import ProtocolError
from arl.proc.logs import LogServer, RemoteLogHandler, restore_record
from arl.testing import poll_for
from arl.transport import MAX_LOG_BYTES
from sockets import pusher

pytestmark = pytest.mark.timeout(60)


def fields(name: str, msg: str, **changes: Any) -> dict[str, Any]:
    """A record's fields as RemoteLogHandler sends them."""
    return {
        "name": name,
        "levelno": logging.WARNING,
        "levelname": "WARNING",
        "pathname": __file__,
        "lineno": 1,
        "funcName": "fields",
        "created": time.time(),
        "msecs": 0.0,
        "msg": msg,
        "exc_text": None,
        "arl_process": "test:flood",
        **changes,
    }


class Recorder(logging.Handler):
    """Keeps the messages of the records it sees; optionally holds the first one."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.entered = threading.Event()
        self._hold = hold

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.entered.set()
        if self._hold is not None:
            self._hold.wait(30)


@contextmanager
def listening(name: str, handler: logging.Handler) -> Iterator[None]:
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextmanager
def serving(endpoint: str) -> Iterator[LogServer]:
    server = LogServer(endpoint)
    server.start()
    try:
        yield server
    finally:
        server.close()


FLOOD = """
import sys, zmq
from arl.codec import pack
endpoint, huge, count, record = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = zmq.Context()
sock = ctx.socket(zmq.PUSH)
sock.setsockopt(zmq.RECONNECT_IVL, 10)  # a refused frame drops the connection: come back soon
sock.setsockopt(zmq.SNDTIMEO, 300)  # once the server's queue is full, give up
sock.connect(endpoint)
big = pack({"name": "arl.test.flood", "msg": "x" * huge})
try:
    for _ in range(40):
        sock.send(big)
    for i in range(count):
        sock.send(b"\\xc1 not msgpack" if i % 10 == 0 else pack({"name": "arl.test.flood", "msg": record}))
except zmq.Again:
    pass
sock.close(linger=0)
ctx.term()
"""


def test_a_flood_of_huge_and_small_frames_keeps_the_log_server_small_and_serving(rundir: str) -> None:
    """While the LogServer's thread is held up, a sender pushes 40 frames of 5 MB and
    thousands of small ones: the huge ones are refused, the queue stops at its mark,
    and once free the server handles records again."""
    endpoint = f"ipc://{rundir}/log"
    hold = threading.Event()
    gate = Recorder(hold)
    after = Recorder()
    try:
        with (
            serving(endpoint),
            listening("arl.test.gate", gate),
            listening("arl.test.after", after),
            pusher(endpoint) as push,
        ):
            push.send(pack(fields("arl.test.gate", "hold the server thread")))
            assert gate.entered.wait(10)
            before = psutil.Process().memory_info().rss
            flood = subprocess.run(
                [sys.executable, "-c", FLOOD, endpoint, str(5 * 2**20), "5000", "y" * 1000],
                capture_output=True,
                text=True,
                timeout=40,
            )
            assert flood.returncode == 0, flood.stderr
            grown = psutil.Process().memory_info().rss - before
            assert grown < 48 * 2**20, f"the LogServer's queue grew by {grown / 2**20:.0f} MiB"
            hold.set()
            push.send(pack(fields("arl.test.after", "still serving")))
            poll_for(lambda: after.messages, timeout=20, what="a record after the flood")
    finally:
        hold.set()
    assert after.messages == ["still serving"]


def test_a_long_message_is_cut_to_fit_a_frame_keeping_its_start_and_end(rundir: str) -> None:
    endpoint = f"ipc://{rundir}/log"
    got = Recorder()
    ctx: zmq.Context[Any] = zmq.Context()
    handler = RemoteLogHandler(ctx, endpoint, "test:long")
    try:
        with serving(endpoint), listening("arl.test.long", got):
            record = logging.makeLogRecord(
                {"name": "arl.test.long", "levelno": logging.WARNING, "levelname": "WARNING"}
            )
            record.msg = "start " + "é" * (4 * MAX_LOG_BYTES) + " end"
            handler.emit(record)
            poll_for(lambda: got.messages, timeout=10, what="the long record")
    finally:
        handler.close()
        ctx.term()
    (message,) = got.messages
    assert message.startswith("start éé")
    assert message.endswith("éé end")
    assert "characters cut" in message
    assert len(message.encode()) < MAX_LOG_BYTES


@pytest.mark.parametrize(
    "changes",
    [
        {"created": 1e300},  # time.localtime cannot take it: a handler would fail formatting it
        {"created": float("nan")},
        {"created": "yesterday"},
        {"msg": ["not", "text"]},
        {"levelno": True},
        {"exc_text": 7},
        {"lineno": None},
        {"arl_process": {"a": 1}},
    ],
)
def test_a_frame_that_would_trip_a_handler_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError, match="log frame"):
        restore_record({**fields("arl.test.bad", "x"), **changes})


def test_a_frame_sets_only_the_fields_of_a_record() -> None:
    """exc_info or args from a sender would be used by handlers; they are never taken."""
    record = restore_record(fields("arl.test.ok", "fine %s", exc_info="not a tuple", args=("x",), stack_info="s"))
    assert record.exc_info is None
    assert record.args is None
    assert record.stack_info is None
    assert record.getMessage() == "fine %s"


def test_made_up_logger_names_are_handled_without_a_logger_kept_for_each(rundir: str) -> None:
    endpoint = f"ipc://{rundir}/log"
    got = Recorder()
    loggers = logging.Logger.manager.loggerDict
    with serving(endpoint), listening("arl.test.names", got), pusher(endpoint) as push:
        before = len(loggers)
        for i in range(2000):
            push.send(pack(fields(f"arl.test.names.made.up.{i}", str(i))))
        push.send(pack(fields("x" * 5000, "a name too long")))
        poll_for(lambda: len(got.messages) == 2000, timeout=20, what="every record")
        assert len(loggers) - before < 10
    assert got.messages == [str(i) for i in range(2000)]  # through the nearest existing logger's handlers
