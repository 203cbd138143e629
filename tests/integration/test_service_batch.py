"""An agent process's Service answers its direct link in batches (Service._serve_batch):
a serve loop in a thread, DEALERs over inproc:// in the service's own ZeroMQ context (a
frame sent there is queued at the ROUTER when send returns, so what a batch holds is
known), a batcher that records what it is given."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from arl import codec
from arl.conductors.agent import AgentHost
from arl.conductors.service import Service
from arl.messages import agent as amsg
from arl.messages import control
from arl.messages.common import ErrorReply
from arl.messages.environment import Reset
from arl.proc.child import ChildContext, ChildSpec

pytestmark = pytest.mark.timeout(30)

DIRECT = "inproc://direct"


class Recording:
    """A batcher: answers each request with itself, recording each batch; ``hold`` keeps
    its first batch waiting until set; ``raises`` fails every batch."""

    def __init__(self, most: int, delay: float) -> None:
        self.most, self.delay = most, delay
        self.batches: list[list[Any]] = []
        self.started = threading.Event()  # a batch is being gathered
        self.busy = threading.Event()  # a batch is being answered
        self.hold: threading.Event | None = None
        self.raises = False

    def limits(self) -> tuple[int, float]:
        self.started.set()
        return self.most, self.delay

    def handle_batch(self, requests: list[Any], received: float) -> list[Any]:
        self.batches.append(requests)
        self.busy.set()
        if self.hold is not None:
            hold, self.hold = self.hold, None
            assert hold.wait(10)
        if self.raises:
            raise RuntimeError("the batch broke")
        return list(requests)


class Served:
    """A Service with ``batcher`` serving in a thread; stopped through its control pipe."""

    def __init__(self, rundir: str, handle: Any, batcher: Any) -> None:
        self._parent, child = multiprocessing.Pipe()
        args = {"service": "agents.0", "broker": f"ipc://{rundir}/broker", "direct": DIRECT}
        self.ctx = ChildContext(ChildSpec("agent", "agents.0", "", args), child)
        self.service = Service(self.ctx, handle, batcher=batcher)
        self.thread = threading.Thread(target=self.service.serve, daemon=True)
        self.thread.start()
        self.dealers: list[zmq.Socket[Any]] = []

    def dealer(self) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.ctx.zmq.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(DIRECT)
        self.dealers.append(sock)
        return sock

    def stop(self) -> None:
        for sock in self.dealers:
            sock.close()
        self._parent.send_bytes(b"stop")
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.ctx.zmq.term()
        self._parent.close()
        self.ctx.conn.close()


@pytest.fixture
def serve(rundir: str) -> Iterator[Any]:
    made: list[Served] = []

    def start(batcher: Any, handle: Any = None) -> Served:
        made.append(Served(rundir, handle or (lambda m: m), batcher))
        return made[-1]

    yield start
    for served in made:
        served.stop()


def _reply(dealer: zmq.Socket[Any]) -> Any:
    assert dealer.poll(10_000), "no reply"
    return codec.decode(dealer.recv())


def test_several_dealers_at_once_each_get_their_own_reply(serve: Any) -> None:
    batcher = Recording(8, 0.05)
    served = serve(batcher)
    dealers = [served.dealer() for _ in range(5)]
    for i, dealer in enumerate(dealers):
        dealer.send(codec.encode(Reset(i)))
    assert [_reply(d) for d in dealers] == [Reset(i) for i in range(5)]
    assert sorted(r.seed for batch in batcher.batches for r in batch) == list(range(5))


def test_a_request_that_comes_within_the_delay_joins_the_batch(serve: Any) -> None:
    batcher = Recording(2, 5.0)  # waits up to 5 s for a second request: it comes sooner
    served = serve(batcher)
    first, second = served.dealer(), served.dealer()
    first.send(codec.encode(Reset(1)))
    assert batcher.started.wait(10)  # the batch is being gathered, the first request in it
    time.sleep(0.05)  # (it waits: the second comes while it does)
    assert not first.poll(0)
    second.send(codec.encode(Reset(2)))
    assert (_reply(first), _reply(second)) == (Reset(1), Reset(2))
    assert batcher.batches == [[Reset(1), Reset(2)]]


def test_a_batch_waits_no_longer_than_the_delay(serve: Any) -> None:
    batcher = Recording(8, 0.2)
    served = serve(batcher)
    dealer = served.dealer()
    started = time.monotonic()
    dealer.send(codec.encode(Reset(1)))
    assert _reply(dealer) == Reset(1)
    assert 0.2 <= time.monotonic() - started < 5
    assert batcher.batches == [[Reset(1)]]


def test_batchsize_caps_a_batch(serve: Any) -> None:
    batcher = Recording(2, 0.0)
    hold = batcher.hold = threading.Event()
    served = serve(batcher)
    dealers = [served.dealer() for _ in range(6)]
    dealers[0].send(codec.encode(Reset(0)))
    assert batcher.busy.wait(10)
    for i, dealer in enumerate(dealers[1:], 1):  # all queued while the first batch is answered
        dealer.send(codec.encode(Reset(i)))
    hold.set()
    assert [_reply(d) for d in dealers] == [Reset(i) for i in range(6)]
    assert [len(b) for b in batcher.batches] == [1, 2, 2, 1]


def test_a_malformed_request_gets_an_error_reply_and_the_rest_of_its_batch_its_answers(serve: Any) -> None:
    batcher = Recording(3, 5.0)
    served = serve(batcher)
    bad, wrong, good, also = (served.dealer() for _ in range(4))
    bad.send(b"\xc1")  # unreadable
    wrong.send_multipart([b"two", b"frames"])  # dropped: not a request
    good.send(codec.encode(Reset(1)))
    also.send(codec.encode(Reset(2)))
    refused = _reply(bad)
    assert isinstance(refused, ErrorReply)
    assert (refused.component, refused.kind) == ("agents.0", "ProtocolError")
    assert (_reply(good), _reply(also)) == (Reset(1), Reset(2))
    # One batch, and the batcher never sees the bad one (a ROUTER takes its peers' frames
    # in no set order: which of the two came first is not the service's to say).
    [batch] = batcher.batches
    assert sorted(batch, key=lambda reset: reset.seed) == [Reset(1), Reset(2)]
    assert not wrong.poll(100)
    # A batch that fails is every one of its requests' failure, and the service goes on.
    batcher.raises = True
    good.send(codec.encode(Reset(3)))
    also.send(codec.encode(Reset(4)))
    bad.send(codec.encode(Reset(5)))
    for dealer in (good, also, bad):
        failed = _reply(dealer)
        assert isinstance(failed, ErrorReply)
        assert (failed.kind, failed.message) == ("RuntimeError", "the batch broke")


def test_an_agent_process_answers_each_worker_from_one_batch(serve: Any) -> None:
    """The real AgentHost as the batcher: its limits from the agent's settings."""
    host = AgentHost()
    box = {"type": "Box", "low": 0.0, "high": 1.0, "shape": [], "dtype": "float64"}
    host.handle(
        control.SetupAgent(
            0, "d", ["arl.dummy:DummyBrain", {}], ["arl.dummy:DummyMuscle", {}], ["arl.dummy:DummyObjective", {}],
            [["env.s0", box]], [["env.a0", box]], 3, True, 7, None, options={"batchsize": 3, "delay": 5.0},
        )
    )  # fmt: skip
    served = serve(host, host.handle)
    dealers = [served.dealer() for _ in range(3)]
    for worker, dealer in enumerate(dealers):
        dealer.send(codec.encode(amsg.Act(worker, {"d": [{"env.s0": 0.5}, None]}, False, False, False)))
    replies = [_reply(d) for d in dealers]
    assert all(isinstance(r, amsg.Acted) and not r.failures for r in replies)
    # Each worker's own muscle (seeded by its worker) chose its setpoints.
    setpoints = [r.answers["d"][0]["env.a0"] for r in replies]
    assert len(set(setpoints)) == 3
