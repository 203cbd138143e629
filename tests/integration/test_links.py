"""A controller's links with real sockets: late replies after a stop, and what the store
link sends; an agent process's metric link."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zmq

from arl import codec
from arl.conductors.links import MetricLink, RemotePeers, StoreLink
from arl.messages import environment as emsg
from arl.messages import store

pytestmark = pytest.mark.timeout(20)


def test_a_late_reply_to_a_request_a_stop_gave_up_on_is_not_the_next_requests_answer(rundir: str) -> None:
    """Agents sharing a process share a link: after one went silent at a stop, the final
    call of another must get its own answer, not the silent one's late reply."""
    ctx = zmq.Context()
    host = ctx.socket(zmq.ROUTER)
    host.setsockopt(zmq.LINGER, 0)
    host.bind(f"ipc://{rundir}/a0")
    peers = RemotePeers(ctx, {"agents.0": f"ipc://{rundir}/a0"}, stop=lambda: True, grace=0.05)
    try:
        peers.send({"agents.0": emsg.Reset(1)})
        assert host.poll(5000)
        first = host.recv_multipart()
        assert peers.collect(["agents.0"]) == ({}, True)  # the stop's grace passed unanswered
        host.send_multipart([first[0], codec.encode(emsg.Observation({"late": 1}))])
        peers.send({"agents.0": emsg.Reset(2)})
        assert host.poll(5000)
        second = host.recv_multipart()
        host.send_multipart([second[0], codec.encode(emsg.Observation({"answer": 2}))])
        replies, _ = peers.collect(["agents.0"], grace=5.0)
        assert replies == {"agents.0": emsg.Observation({"answer": 2})}
    finally:
        peers.close()
        host.close()
        ctx.term()


def test_the_store_link_sends_steps_and_actions_as_json_text_and_anything_else_as_it_is(rundir: str) -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(f"ipc://{rundir}/store")
    link = StoreLink(ctx, f"ipc://{rundir}/store")
    step = store.EnvironmentStep(0, 0, 0, 1, "env", {"env.s0": 0.5}, {"env.r": 1.0}, False, False)
    action = store.AgentAction(0, 0, 0, 1, "d", {"env.s0": 0.5}, {"env.a0": 2}, {"env.r": 1.0}, 1.0, 12)
    odd = store.AgentAction(0, 0, 0, 2, "d", {"env.s0": np.complex128(1 + 2j)}, {}, {}, 1.0)  # no JSON for it
    ended = store.EpisodeEnded(0, 0, 0, 2, "terminated", 0.0)
    try:
        link.send([step, action, odd, ended], flush=True)
        assert pull.poll(5000)
        got: list[Any] = [codec.decode(frame) for frame in pull.recv_multipart()]
    finally:
        link.close()
        pull.close(linger=0)
        ctx.term()
    assert got[0].sensors == '{"env.s0":0.5}'
    assert got[0].rewards == '{"env.r":1.0}'
    assert (got[1].inputs, got[1].setpoints) == ('{"env.s0":0.5}', '{"env.a0":2}')
    assert got[1].policy_version == 12
    # A value JSON cannot hold goes as it came, for the writer to drop and count as before.
    assert got[2] == odd
    assert got[3] == ended


@pytest.fixture
def pull(rundir: str) -> Iterator[tuple[zmq.Context[Any], zmq.Socket[Any], str]]:
    """The writer's end of a store link: a PULL socket bound where the link connects."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.bind(f"ipc://{rundir}/store")
    yield ctx, sock, f"ipc://{rundir}/store"
    sock.close(linger=0)
    ctx.term()


def _message(sock: zmq.Socket[Any]) -> list[Any]:
    assert sock.poll(5000), "nothing came"
    return [codec.decode(frame) for frame in sock.recv_multipart()]


def test_metrics_go_in_batches_a_record_per_phase_and_agent_at_most_every_interval(pull: Any) -> None:
    ctx, sock, endpoint = pull
    link = MetricLink(ctx, endpoint, interval=0.2)
    try:
        sent_at = time.monotonic()  # before the first send, which the interval counts from
        link.add(0, "d", None, "loss", 1, 0.5)  # the first goes at once
        first = _message(sock)
        for step in range(100):
            link.add(0, "d", step % 2, "q", step, float(step))
        link.add(1, "a", None, "loss", 1, 2.0)
        second = _message(sock)
        waited = time.monotonic() - sent_at
    finally:
        link.close()
    assert [(r.phase, r.agent, [v[:4] for v in r.values]) for r in first] == [(0, "d", [[None, "loss", 1, 0.5]])]
    assert waited >= 0.2  # the rest waited for the interval: one message, not a send a value
    assert [(r.phase, r.agent, len(r.values)) for r in second] == [(0, "d", 100), (1, "a", 1)]
    assert second[0].values[7][:4] == [1, "q", 7, 7.0]
    assert abs(second[0].values[7][4] - time.time()) < 60  # when it was logged
    assert sock.poll(300) == 0
    assert link.sent == 102


def test_a_flush_or_close_sends_what_waits_at_once(pull: Any) -> None:
    ctx, sock, endpoint = pull
    link = MetricLink(ctx, endpoint, interval=60.0)
    try:
        link.add(0, "d", None, "loss", 1, 0.5)
        _message(sock)
        link.add(0, "d", None, "loss", 2, 0.25)
        assert sock.poll(200) == 0  # due in a minute
        link.flush()
        assert [r.values[0][2] for r in _message(sock)] == [2]
        link.add(0, "d", 0, "loss", 3, 0.125)
    finally:
        link.close()
    assert [r.values[0][2] for r in _message(sock)] == [3]
