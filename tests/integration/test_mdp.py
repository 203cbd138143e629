"""The MDP broker, worker and client over real ipc:// sockets.

The asyncio broker and client run in the test's event loop; each synchronous worker runs
in its own thread with its own zmq.Context and a poll loop, like a conductor does.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import psutil
import pytest
import zmq
import zmq.asyncio

from arl.codec import MAX_FRAME_BYTES
from arl.errors import ProtocolError, RequestTimeout
from arl.mdp import Broker, MdpClient, MdpWorker, Request
from arl.mdp import protocol as p
from arl.mdp.broker import MAX_QUEUED_BYTES

HEARTBEAT = 0.1
"""Short, so purges and reconnects happen within a fraction of a second."""

DEADLINE = 5.0


@pytest.fixture
def endpoint(rundir: str) -> str:
    return f"ipc://{rundir}/broker"


def fast_broker(ctx: zmq.asyncio.Context, endpoint: str) -> Broker:
    """A broker that purges a silent worker after 0.3 s."""
    return Broker(ctx, endpoint, heartbeat=HEARTBEAT, liveness=3)


def run(main: Callable[[zmq.asyncio.Context], Coroutine[Any, Any, None]]) -> None:
    """Run ``main`` with a fresh asyncio context that is always terminated afterwards."""
    ctx = zmq.asyncio.Context()
    try:
        asyncio.run(main(ctx))
    finally:
        ctx.term()


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds, failing the test after DEADLINE seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class WorkerThread:
    """A synchronous MdpWorker in a thread, answering with ``handler(body)``."""

    def __init__(
        self,
        endpoint: str,
        service: str,
        handler: Callable[[bytes], bytes] | None = None,
        *,
        heartbeat: float = HEARTBEAT,
        liveness: int = 3,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.endpoint, self.service = endpoint, service
        self.handler = handler or (lambda body: service.encode() + b":" + body)
        self.heartbeat, self.liveness, self.metadata = heartbeat, liveness, metadata
        self.served: list[bytes] = []
        self._stop = threading.Event()
        self._silent = False
        self._thread = threading.Thread(target=self._run, name=f"worker {service}", daemon=True)

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, *, silently: bool = False) -> None:
        """Stop the loop; ``silently`` closes the socket without sending DISCONNECT."""
        self._silent = silently
        self._stop.set()
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "worker thread did not stop"

    async def astop(self, *, silently: bool = False) -> None:
        """``stop`` without blocking the event loop the broker runs in."""
        await asyncio.to_thread(self.stop, silently=silently)

    def _run(self) -> None:
        ctx = zmq.Context()
        worker = MdpWorker(
            ctx,
            self.endpoint,
            self.service,
            heartbeat=self.heartbeat,
            liveness=self.liveness,
            metadata=self.metadata,
        )
        try:
            while not self._stop.is_set():
                if worker.socket.poll(10):
                    request = worker.recv()
                    if request is not None:
                        self.served.append(request.body)
                        worker.reply(request, self.handler(request.body))
                worker.tick()
        finally:
            if self._silent:
                worker.socket.close(linger=0)
            else:
                worker.close()
            ctx.term()


async def broker_has(broker: Broker, service: str, count: int) -> None:
    await wait_until(lambda: broker.services().get(service, 0) == count, f"{count} worker(s) of {service!r}")


def test_request_reply(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        async with fast_broker(ctx, endpoint) as broker, MdpClient(ctx, endpoint) as client:
            with WorkerThread(endpoint, "agent.defender"):
                assert await client.request("agent.defender", b"hi", timeout=DEADLINE) == (b"agent.defender:hi")
                assert broker.services() == {"agent.defender": 1}

    run(main)


def test_concurrent_requests_to_two_services(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        async with fast_broker(ctx, endpoint), MdpClient(ctx, endpoint) as client:
            with WorkerThread(endpoint, "env.a.0"), WorkerThread(endpoint, "env.b.0"):
                services = ["env.a.0", "env.b.0"] * 10
                bodies = [str(i).encode() for i in range(len(services))]
                replies = await asyncio.gather(
                    *(client.request(s, b, timeout=DEADLINE) for s, b in zip(services, bodies, strict=True))
                )
                assert replies == [f"{s}:{b.decode()}".encode() for s, b in zip(services, bodies, strict=True)]

    run(main)


def test_concurrent_requests_to_one_service_round_robin(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        async with fast_broker(ctx, endpoint) as broker, MdpClient(ctx, endpoint) as client:
            with WorkerThread(endpoint, "svc") as one, WorkerThread(endpoint, "svc") as two:
                await broker_has(broker, "svc", 2)
                bodies = [str(i).encode() for i in range(20)]
                replies = await asyncio.gather(*(client.request("svc", b, timeout=DEADLINE) for b in bodies))
                assert replies == [b"svc:" + b for b in bodies]
                assert sorted(one.served + two.served) == sorted(bodies)
                assert one.served, "round robin left the first worker idle"
                assert two.served, "round robin left the second worker idle"

    run(main)


def test_lookup_returns_metadata_or_none(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        metadata = {"endpoint": "ipc:///tmp/arl-x/direct", "pid": 7}
        async with fast_broker(ctx, endpoint) as broker, MdpClient(ctx, endpoint) as client:
            assert await client.lookup("controller.0") is None
            with WorkerThread(endpoint, "controller.0", metadata=metadata):
                await broker_has(broker, "controller.0", 1)
                assert await client.lookup("controller.0") == metadata
                assert await client.lookup("controller.1") is None

    run(main)


def test_request_timeout_names_the_service(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        async with fast_broker(ctx, endpoint), MdpClient(ctx, endpoint) as client:
            started = time.monotonic()
            with pytest.raises(RequestTimeout, match=r"no reply from service 'ghost' within 0\.2 s"):
                await client.request("ghost", b"?", timeout=0.2)
            assert time.monotonic() - started < 2.0

    run(main)


def test_silent_worker_is_purged_and_queued_request_served_by_new_worker(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        async with fast_broker(ctx, endpoint) as broker, MdpClient(ctx, endpoint) as client:
            first = WorkerThread(endpoint, "svc", lambda b: b"first")
            with first:
                await broker_has(broker, "svc", 1)
                assert await client.request("svc", b"x", timeout=DEADLINE) == b"first"
                await first.astop(silently=True)
                await broker_has(broker, "svc", 0)
            pending = asyncio.ensure_future(client.request("svc", b"queued", timeout=DEADLINE))
            try:
                await asyncio.wait([pending], timeout=0.3)
                assert not pending.done(), "a request was answered with no worker alive"
                with WorkerThread(endpoint, "svc", lambda b: b"second:" + b):
                    assert await pending == b"second:queued"
            finally:
                pending.cancel()
                await asyncio.wait([pending])

    run(main)


def test_a_busy_worker_silent_past_its_liveness_is_not_purged_and_its_reply_arrives(endpoint: str) -> None:
    """A controller stepping an environment it hosts sends no heartbeats meanwhile."""

    def slow(body: bytes) -> bytes:
        time.sleep(HEARTBEAT * 3 * 2)  # twice the broker's liveness window, without a tick
        return b"done:" + body

    async def main(ctx: zmq.asyncio.Context) -> None:
        async with fast_broker(ctx, endpoint) as broker, MdpClient(ctx, endpoint) as client:
            passes = 0
            purge = broker._purge

            def counted(now: float) -> None:
                nonlocal passes
                passes += 1
                purge(now)

            broker._purge = counted  # type: ignore[method-assign]
            with WorkerThread(endpoint, "svc", slow):
                await broker_has(broker, "svc", 1)
                assert await client.request("svc", b"long", timeout=DEADLINE) == b"done:long"
                assert broker.services() == {"svc": 1}
                # The broker slept between its duties meanwhile (a heartbeat a pass, or a
                # message), rather than waking for the busy worker's expiry again and again.
                assert passes < 100, passes
                assert await client.request("svc", b"again", timeout=DEADLINE) == b"done:again"

    run(main)


def test_worker_disconnect_unregisters_at_once(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        # Liveness 30 s: only DISCONNECT can remove the worker within the deadline.
        async with Broker(ctx, endpoint, heartbeat=10.0, liveness=3) as broker:
            worker = WorkerThread(endpoint, "svc", heartbeat=10.0)
            with worker:
                await broker_has(broker, "svc", 1)
                await worker.astop()
                await broker_has(broker, "svc", 0)

    run(main)


def test_worker_reregisters_after_broker_restart(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        metadata = {"endpoint": "ipc:///tmp/arl-x/direct"}
        async with MdpClient(ctx, endpoint) as client:
            with WorkerThread(endpoint, "svc", metadata=metadata):
                async with fast_broker(ctx, endpoint) as first:
                    assert await client.request("svc", b"1", timeout=DEADLINE) == b"svc:1"
                    assert first.services() == {"svc": 1}
                async with fast_broker(ctx, endpoint) as second:
                    await broker_has(second, "svc", 1)
                    assert await client.lookup("svc") == metadata
                    assert await client.request("svc", b"2", timeout=DEADLINE) == b"svc:2"

    run(main)


def test_broker_drops_malformed_frames_and_keeps_serving(endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        try:
            async with fast_broker(ctx, endpoint), MdpClient(ctx, endpoint) as client:
                rogue.connect(endpoint)
                for frames in (
                    [b"garbage"],
                    [b"", b"MDPX99", b"\x01"],
                    [b"", b"MDPC02", b"\x01", b"\xff", b"c", b"b"],
                    [b"", b"MDPW02", b"\x01", b"svc", b"\xc1"],
                    [b"", b"MDPC02", b"\x01", b"mmi.nonsense", b"c", b"b"],
                ):
                    await rogue.send_multipart(frames)
                # A heartbeat from a worker that never said READY is told to re-register.
                await rogue.send_multipart(p.heartbeat())
                reply = await asyncio.wait_for(rogue.recv_multipart(), DEADLINE)
                assert p.parse_broker_message(reply) == p.Disconnect()
                with WorkerThread(endpoint, "svc"):
                    assert await client.request("svc", b"ok", timeout=DEADLINE) == b"svc:ok"
        finally:
            rogue.close(linger=0)

    with caplog.at_level(logging.WARNING, logger="arl.mdp"):
        run(main)
    dropped = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(dropped) == 5, [r.getMessage() for r in caplog.records]


def test_client_requests_after_close_are_refused(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        client = MdpClient(ctx, endpoint)
        await client.close()
        await client.close()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            await client.request("svc", b"", timeout=1.0)

    run(main)


def test_worker_drops_malformed_broker_messages_and_reconnects_when_broker_is_silent(
    endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = zmq.Context()
    fake_broker = ctx.socket(zmq.ROUTER)
    fake_broker.setsockopt(zmq.LINGER, 0)
    fake_broker.bind(endpoint)
    worker = MdpWorker(ctx, endpoint, "svc", heartbeat=0.05, liveness=2, metadata={"k": 1})
    try:

        def from_worker() -> tuple[bytes, p.WorkerMessage]:
            assert fake_broker.poll(int(DEADLINE * 1000)), "the worker sent nothing"
            identity, frames = p.split_envelope(fake_broker.recv_multipart())
            return identity, p.parse_worker_message(frames)

        identity, ready = from_worker()
        assert ready == p.Ready("svc", {"k": 1})

        # Malformed messages are dropped with a warning: they must not end the process.
        for frames in ([b"", b"MDPW02", b"\x09"], [b"two"], [b"", b"MDPW02", *p.worker_request(b"c", b"1", b"x")]):
            fake_broker.send_multipart([identity, *frames])
            assert worker.socket.poll(int(DEADLINE * 1000))
            with caplog.at_level(logging.WARNING, logger="arl.mdp"):
                assert worker.recv() is None
        assert "unexpected worker command" in caplog.text
        assert len(caplog.records) == 3

        fake_broker.send_multipart([identity, *p.worker_request(b"client", b"c1", b"ask")])
        assert worker.socket.poll(int(DEADLINE * 1000))
        request = worker.recv()
        assert request == Request(b"client", b"c1", b"ask")
        worker.reply(request, b"answer")
        assert from_worker() == (identity, p.WorkerReport(b"client", b"c1", b"answer"))

        # The fake broker now stays silent: the worker heartbeats, then re-registers on a
        # new socket (a new identity) once liveness is used up.
        old_socket = worker.socket
        deadline = time.monotonic() + DEADLINE
        seen: list[p.WorkerMessage] = []
        while not any(isinstance(m, p.Ready) for m in seen):
            assert time.monotonic() < deadline, f"no re-registration; got {seen}"
            worker.tick()
            if fake_broker.poll(10):
                sender, message = from_worker()
                seen.append(message)
        assert p.Heartbeat() in seen
        assert sender != identity
        assert worker.socket is not old_socket
    finally:
        worker.close()
        fake_broker.close(linger=0)
        ctx.term()


def test_client_matches_out_of_order_replies_and_drops_malformed_ones(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        fake_broker = ctx.socket(zmq.ROUTER)
        fake_broker.setsockopt(zmq.LINGER, 0)
        fake_broker.bind(endpoint)
        try:
            async with MdpClient(ctx, endpoint) as client:
                first = asyncio.ensure_future(client.request("a", b"1", timeout=DEADLINE))
                second = asyncio.ensure_future(client.request("a", b"2", timeout=DEADLINE))
                requests = [p.split_envelope(await fake_broker.recv_multipart()) for _ in range(2)]
                parsed = [(ident, p.parse_client_request(f)) for ident, f in requests]
                for ident, request in reversed(parsed):
                    await fake_broker.send_multipart([ident, b"", b"MDPC02", b"\x07"])
                    reply = p.client_report("a", request.correlation, b"re:" + request.body)
                    await fake_broker.send_multipart([ident, *reply])
                assert await first == b"re:1"
                assert await second == b"re:2"
        finally:
            fake_broker.close(linger=0)

    run(main)


FLOOD = """
import sys, zmq
endpoint, huge, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ctx = zmq.Context()
sock = ctx.socket(zmq.DEALER)
sock.setsockopt(zmq.RECONNECT_IVL, 10)  # a refused frame drops the connection: come back soon
sock.connect(endpoint)
for body in (b"x" * huge, b"y" * huge):  # each over the limit
    sock.send_multipart([b"", b"MDPC02", b"\\x01", b"ghost", b"huge", body])
body = b"z" * size
for i in range(count):  # a service nobody serves: every request would wait for ever
    sock.send_multipart([b"", b"MDPC02", b"\\x01", b"ghost", str(i).encode(), body])
    sock.send_multipart([b"garbage", body])
# Messages from one peer are handled in order: this reply means the flood was read.
sock.send_multipart([b"", b"MDPC02", b"\\x01", b"mmi.lookup", b"last", b"ghost"])
assert sock.poll(30_000), "the broker stopped answering"
assert sock.recv_multipart()[4] == b"last"
"""


def test_a_flood_of_requests_and_huge_frames_keeps_the_broker_small_and_serving(
    endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """3,000 requests of 100 KiB for a service nobody serves (300 MB), two frames over
    the size limit and 3,000 malformed messages: the broker keeps what its queue limit
    allows, refuses the rest, says so in a few lines, and still serves."""

    async def main(ctx: zmq.asyncio.Context) -> None:
        async with fast_broker(ctx, endpoint), MdpClient(ctx, endpoint) as client:
            before = psutil.Process().memory_info().rss
            flood = await asyncio.create_subprocess_exec(
                sys.executable, "-c", FLOOD, endpoint, str(MAX_FRAME_BYTES + 1), "3000", str(100 * 1024)
            )
            assert await asyncio.wait_for(flood.wait(), 50) == 0
            grown = psutil.Process().memory_info().rss - before
            assert grown < MAX_QUEUED_BYTES + 32 * 2**20, f"the broker grew by {grown / 2**20:.0f} MiB"
            with WorkerThread(endpoint, "svc"):
                assert await client.request("svc", b"ok", timeout=DEADLINE) == b"svc:ok"

    with caplog.at_level(logging.WARNING, logger="arl.mdp"):
        run(main)
    refused = [r.getMessage() for r in caplog.records if "dropped a request" in r.getMessage()]
    malformed = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert refused, "no request was refused"
    assert "already wait for workers" in refused[0]
    assert len(refused) + len(malformed) < 50, "every drop was logged on its own"


def test_a_request_over_the_size_limit_fails_at_once_with_the_service_named(endpoint: str) -> None:
    async def main(ctx: zmq.asyncio.Context) -> None:
        async with fast_broker(ctx, endpoint), MdpClient(ctx, endpoint) as client:
            with pytest.raises(ProtocolError, match=r"a request to 'svc' is .* over the"):
                await client.request("svc", b"x" * (MAX_FRAME_BYTES + 1), timeout=DEADLINE)

    run(main)
