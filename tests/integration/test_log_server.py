"""The LogServer and a governor's child-log relay, with real sockets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from arl.codec import pack
from arl.governor.childlogs import TAIL, ChildLogRelay
from arl.proc.logs import LogConfig, LogServer
from arl.testing import poll_for
from logging_kit import ListHandler, Logs, collect, log_server
from sockets import pusher

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def logs(rundir: str) -> Iterator[Logs]:
    with log_server(rundir) as started:
        yield started


def record(name: str, msg: str, level: int = logging.WARNING, label: str = "test:raw") -> bytes:
    """A frame as RemoteLogHandler sends it."""
    return pack(
        {
            "name": name,
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "pathname": __file__,
            "lineno": 1,
            "funcName": "record",
            "created": time.time(),
            "msecs": 0.0,
            "msg": msg,
            "exc_text": None,
            "arl_process": label,
        }
    )


def test_log_server_drops_a_malformed_frame_with_a_warning_and_keeps_serving(logs: Logs) -> None:
    with (
        collect("arl.logs", logging.WARNING) as warned,
        collect("arl.test.raw") as got,
        pusher(logs.config.endpoint) as push,
    ):
        push.send(b"\xc1 not msgpack at all")
        push.send(pack([1, 2, 3]))  # msgpack, but not a map
        push.send(pack({"levelno": 30}))  # a map without a logger name
        push.send(record("arl.test.raw", "after the garbage: 100% %s"))
        poll_for(lambda: got.messages(), timeout=10, what="the good record")
        poll_for(lambda: len(warned.records) >= 3, timeout=10, what="three warnings")

    assert got.messages() == ["after the garbage: 100% %s"]  # sent formatted; not re-formatted
    assert got.records[0].arl_process == "test:raw"  # type: ignore[attr-defined]
    assert all(r.getMessage().startswith("dropped a malformed log frame") for r in warned.records)
    assert len(warned.records) == 3


def test_log_server_survives_a_frame_without_a_level(
    logs: Logs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    with (
        collect("arl.logs", logging.WARNING) as warned,
        collect("arl.test.raw") as got,
        pusher(logs.config.endpoint) as push,
    ):
        push.send(pack({"name": "arl.test.raw", "msg": "no level"}))
        push.send(pack({"name": "arl.test.raw", "levelno": "high", "msg": "a level that is text"}))
        push.send(record("arl.test.raw", "after the levelless frames"))
        poll_for(lambda: got.messages() or died, timeout=10, what="the good record or a death")
        poll_for(lambda: len(warned.records) >= 2 or died, timeout=10, what="two warnings")
    assert not died, f"the LogServer thread died: {died[0]!r}"
    assert got.messages() == ["after the levelless frames"]
    assert len(warned.records) == 2


def test_log_server_close_handles_records_that_arrived_before_it(rundir: str) -> None:
    server = LogServer(f"ipc://{rundir}/drain")
    server.start()
    first_seen = threading.Event()
    release = threading.Event()

    class Blocking(ListHandler):
        def emit(self, record: logging.LogRecord) -> None:
            super().emit(record)
            if len(self.records) == 1:
                first_seen.set()
                release.wait(10)  # hold the server thread while the rest arrive

    logger = logging.getLogger("arl.test.drain")
    handler = Blocking()
    logger.addHandler(handler)
    closer = threading.Thread(target=server.close)
    closing = False
    try:
        with pusher(server.endpoint) as push:
            push.send(record("arl.test.drain", "0"))
            assert first_seen.wait(10)
            for i in range(1, 50):
                push.send(record("arl.test.drain", str(i)))
        # The pusher's context ended only after its LINGER flushed every frame to the
        # server's side; close() now, while the server thread is still busy.
        closer.start()
        closing = True
        # Let the server thread go only once close() has begun (a private flag, read only).
        poll_for(lambda: server._stop.is_set(), timeout=5, what="close() to begin")
        release.set()
        closer.join(10)
        assert not closer.is_alive()
    finally:
        release.set()
        logger.removeHandler(handler)
        if closing:
            closer.join(10)
        else:
            server.close()
    assert [r.getMessage() for r in handler.records] == [str(i) for i in range(50)]


def test_log_server_close_is_idempotent_and_a_bad_endpoint_fails_start(rundir: str) -> None:
    server = LogServer(f"ipc://{rundir}/twice")
    server.start()
    server.close()
    server.close()
    LogServer(f"ipc://{rundir}/never-started").close()
    broken = LogServer(f"ipc://{rundir}/no/such/dir/log")
    with pytest.raises(zmq.ZMQError):
        broken.start()
    broken.close()


def test_a_governors_log_relay_keeps_each_childs_last_lines_and_forwards_what_is_shown(logs: Logs, rundir: str) -> None:
    shown = LogConfig(logs.config.endpoint, logging.WARNING)
    ctx: zmq.Context[Any] = zmq.Context()
    relay = ChildLogRelay(ctx, f"ipc://{rundir}/relay", shown)
    try:
        assert relay.child_config == LogConfig(f"ipc://{rundir}/relay", logging.INFO)  # INFO, for the tail
        with collect("arl.test.raw") as got, pusher(relay.endpoint) as push:
            for i in range(TAIL + 2):
                push.send(record("arl.test.raw", f"info {i}", logging.INFO, label="test:a"))
            push.send(pack([1, 2, 3]))  # malformed: dropped, the relay goes on
            push.send(record("arl.test.raw", "careful", logging.WARNING, label="test:a"))
            push.send(record("arl.test.raw", "hello from b", logging.INFO, label="test:b"))

            def relayed() -> bool:
                relay.drain()
                return bool(relay.tail("test:b"))

            poll_for(relayed, timeout=10, what="every record relayed")
            poll_for(got.messages, timeout=10, what="the warning forwarded")
        a = relay.tail("test:a")
        assert len(a) == TAIL
        assert a[0].endswith("INFO arl.test.raw: info 3")  # 13 sent, the last 10 kept
        assert a[-1].endswith("WARNING arl.test.raw: careful")
        assert relay.tail("test:b")[0].endswith("INFO arl.test.raw: hello from b")
        assert relay.tail("test:none") == []
        assert got.messages() == ["careful"]  # only what arl-run shows reaches its console
        assert got.records[0].arl_process == "test:a"  # type: ignore[attr-defined]
    finally:
        relay.close()
        relay.close()
        ctx.term()
