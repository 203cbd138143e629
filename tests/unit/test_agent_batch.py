"""An agent process answers its controllers' requests in batches (AgentHost.handle_batch):
the transitions first, then one act_batch per agent; a central agent's inference server
takes its policy from the learner's broadcasts. In-process, with a real PUB socket for
the broadcasts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import zmq

import arl.conductors.agent as agent_module
from arl.api import Brain, Experience, Muscle
from arl.classref import qualname
from arl.codec import encode
from arl.conductors.agent import MAX_BATCH, AgentHost, _BatchStats
from arl.conductors.devices import check_device
from arl.messages import agent as amsg
from arl.messages import control
from arl.messages.learner import Weights
from arl.testing import poll_for
from metrics_kit import Collected

SENSORS = [["env.s0", {"type": "Box", "low": 0.0, "high": 10.0, "shape": [], "dtype": "float64"}]]
ACTUATORS = [["env.a0", {"type": "Box", "low": 0.0, "high": 10.0, "shape": [], "dtype": "float64"}]]
OBJECTIVE = ["arl.dummy:DummyObjective", {}]

# What the test components saw, cleared before each test.
BATCHES: list[tuple[str, int, list[tuple[int, Any]]]] = []  # (tag, muscle called, [(worker, s0)])
LEARNED: list[Experience] = []


class BatchMuscle(Muscle):
    """Answers ``s0 + worker / 100`` for each worker, recording each act_batch call;
    ``fail``: raise in it. Its policy_version is ``100 + worker`` unless arl sets one."""

    def __init__(self, tag: str = "", fail: bool = False) -> None:
        self.tag, self.fail = tag, fail
        self.policies: list[Any] = []

    def setup(self, sensors: Any, actuators: Any, seed: int) -> None:
        super().setup(sensors, actuators, seed)
        self.policy_version = 100 + self.worker

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.act_batch([(self, sensors)])[0]  # arl asks one worker's step with act

    def act_batch(self, batch: Sequence[tuple[Muscle, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
        BATCHES.append((self.tag, self.worker, [(m.worker, s["env.s0"]) for m, s in batch]))
        if self.fail:
            raise ValueError(f"muscle {self.tag} cannot act")
        return [{"env.a0": s["env.s0"] + m.worker / 100} for m, s in batch]

    def update(self, update: Any) -> None:
        self.policies.append(update)


class RememberingBrain(Brain):
    def learn(self, experience: Experience) -> Any:
        LEARNED.append(experience)
        return None


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    BATCHES.clear()
    LEARNED.clear()
    yield
    BATCHES.clear()
    LEARNED.clear()


def _setup(host: AgentHost, name: str, workers: int = 3, phase: int = 0, **extra: Any) -> Any:
    params = extra.pop("params", {"tag": name})
    return host.handle(
        control.SetupAgent(
            phase, name, [qualname(RememberingBrain), {}], [qualname(BatchMuscle), params], OBJECTIVE,
            SENSORS, ACTUATORS, workers, True, 7, None, **extra,
        )
    )  # fmt: skip


def _act(
    worker: int,
    s0: float,
    rewards: dict[str, float] | None = None,
    *,
    final: bool = False,
    terminated: bool = False,
    names: tuple[str, ...] = ("d",),
) -> amsg.Act:
    return amsg.Act(worker, {n: [{"env.s0": s0}, rewards] for n in names}, terminated, False, final)


def test_one_act_batch_per_agent_carries_every_workers_readings_and_each_answer_goes_to_its_request() -> None:
    host = AgentHost()
    _setup(host, "d")
    _setup(host, "a")
    replies = host.handle_batch([_act(w, 1.0 + w, names=("d", "a")) for w in (2, 0, 1)], time.monotonic())
    # One call per agent, on the batch's first muscle, with the requests in their order.
    assert BATCHES == [("d", 2, [(2, 3.0), (0, 1.0), (1, 2.0)]), ("a", 2, [(2, 3.0), (0, 1.0), (1, 2.0)])]
    for worker, reply in zip((2, 0, 1), replies, strict=True):
        assert isinstance(reply, amsg.Acted)
        assert reply.failures == {}
        # [setpoints, objective of the previous action (none yet), the muscle's version]
        expected = [{"env.a0": 1.0 + worker + worker / 100}, None, 100 + worker]
        assert reply.answers == {"d": expected, "a": expected}


def test_final_requests_complete_their_transitions_and_get_no_act() -> None:
    """The brain (in this process) learns from each completed transition, with the
    version of the policy that chose it; a final request's last transition, cut, is
    truncated, and only the other requests are acted on."""
    host = AgentHost()
    _setup(host, "d")
    host.handle_batch([_act(0, 1.0), _act(1, 2.0), _act(2, 3.0)], time.monotonic())
    BATCHES.clear()
    cut = _act(0, 4.0, {"r": 1.0}, final=True)
    ended = _act(2, 6.0, {"r": 3.0}, final=True, terminated=True)
    replies = host.handle_batch([cut, _act(1, 5.0, {"r": 2.0}), ended], time.monotonic())
    assert BATCHES == [("d", 1, [(1, 5.0)])]
    assert [r.answers["d"] for r in replies] == [[{}, 1.0, None], [{"env.a0": 5.01}, 2.0, 101], [{}, 3.0, None]]
    got = {e.worker: e for e in LEARNED}
    assert sorted(got) == [0, 1, 2]

    def seen(w: int, s0: float, a0: float, r: float, nxt: float, terminated: bool, truncated: bool) -> Experience:
        return Experience(
            w, {"env.s0": s0}, {"env.a0": a0}, {"r": r}, r, {"env.s0": nxt}, terminated, truncated, 100 + w
        )

    assert got[0] == seen(0, 1.0, 1.0, 1.0, 4.0, False, True)  # final, not terminal: cut
    assert got[1] == seen(1, 2.0, 2.01, 2.0, 5.0, False, False)
    assert got[2] == seen(2, 3.0, 3.02, 3.0, 6.0, True, False)


def test_a_muscle_that_raises_fails_only_its_agent_in_every_request_of_the_batch() -> None:
    host = AgentHost()
    _setup(host, "d")
    _setup(host, "a", params={"tag": "a", "fail": True})
    replies = host.handle_batch([_act(w, 1.0, names=("d", "a")) for w in range(3)], time.monotonic())
    for worker, reply in enumerate(replies):
        assert reply.answers == {"d": [{"env.a0": 1.0 + worker / 100}, None, 100 + worker]}
        kind, message, trace = reply.failures["a"]
        assert (kind, message) == ("ValueError", "muscle a cannot act")
        assert "act_batch" in trace
    # A request for an agent this process does not host fails that agent, named.
    (reply,) = host.handle_batch([_act(0, 1.0, names=("d", "nobody"))], time.monotonic())
    assert reply.failures["nobody"][0] == "KeyError"
    assert "'nobody' is not set up in this process" in reply.failures["nobody"][1]
    assert reply.answers["d"][0] == {"env.a0": 1.0}


def test_a_muscle_answering_too_few_setpoints_fails_its_agent_with_the_counts() -> None:
    host = AgentHost()
    _setup(host, "d", workers=2)
    host.agents["d"].muscles[0].act_batch = lambda batch: [{}]  # type: ignore[method-assign]
    replies = host.handle_batch([_act(0, 1.0), _act(1, 1.0)], time.monotonic())
    for reply in replies:
        assert reply.failures["d"][:2] == ["ValueError", "agent 'd''s muscle answered 1 setpoints for a batch of 2"]


def test_limits_take_the_smallest_batch_and_the_shortest_delay_of_the_agents_here() -> None:
    host = AgentHost()
    assert host.limits() == (1, 0.0)  # nothing set up: one request at a time
    _setup(host, "d", workers=3)
    assert host.limits() == (3, 0.0)  # an agent without settings: all its workers, no waiting
    _setup(host, "a", options={"batchsize": 10**9, "delay": 0.02, "clients": 10**9})
    assert host.agents["a"].batchsize == MAX_BATCH
    assert host.limits() == (3, 0.0)
    _setup(host, "d", options={"batchsize": 2, "delay": 0.01})
    assert host.limits() == (2, 0.01)


def test_a_batch_never_waits_for_more_requests_than_the_controllers_it_answers() -> None:
    """Each controller has one request out at a time: a server of 2 controllers (their
    6 workers' copies) must not wait its delay for a third request that cannot come."""
    host = AgentHost()
    _setup(host, "d", workers=6, options={"batchsize": 64, "delay": 0.5, "clients": 2})
    assert host.limits() == (2, 0.5)


def test_limits_follow_the_agents_of_the_current_phase_only() -> None:
    host = AgentHost()
    _setup(host, "old", workers=3, options={"batchsize": 1})
    _setup(host, "d", workers=3, phase=1)
    assert host.limits() == (3, 0.0)  # the earlier phase's agent no longer batches one at a time


# -- a central agent's inference server ---------------------------------------------------------


class Publisher:
    """The learner's side of the broadcasts: a PUB socket on inproc://."""

    def __init__(self) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.endpoint = "inproc://weights"
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.bind(self.endpoint)

    def send(self, weights: Any) -> None:
        self.pub.send(weights if isinstance(weights, bytes) else encode(weights))

    def close(self) -> None:
        self.ctx.destroy(linger=0)


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    pub = Publisher()
    yield pub
    pub.close()


def _serve(host: AgentHost, publisher: Publisher, serves: list[int], wait: float = 10.0, **options: Any) -> Any:
    return _setup(
        host, "d", workers=4, role="inference", serves=serves, weights=publisher.endpoint,
        options={"wait": wait, **options},
    )  # fmt: skip


def _policy(version: int) -> dict[str, Any]:
    return {"w": np.full((2, 3), version, dtype=np.float32)}


def _set_up_with_first_weights(host: AgentHost, publisher: Publisher, version: int, **options: Any) -> None:
    """Set an inference server up (it waits for the learner's first broadcast), sending
    the broadcast until it got it: a PUB drops what it sends before the SUB joined."""
    ready: list[Any] = []
    thread = threading.Thread(target=lambda: ready.append(_serve(host, publisher, [1, 3], **options)), daemon=True)
    thread.start()

    def set_up() -> bool:
        publisher.send(Weights("d", 0, version, _policy(version)))
        return not thread.is_alive()

    poll_for(set_up, timeout=10, what="the server's setup")
    thread.join()
    assert ready == [control.AgentReady("d")]


def test_an_inference_server_waits_for_the_learners_first_policy_and_acts_with_its_version(
    publisher: Publisher,
) -> None:
    host = AgentHost(zmq_ctx=publisher.ctx)
    try:
        _set_up_with_first_weights(host, publisher, 3)
        agent = host.agents["d"]
        assert agent.brain is None  # the brain lives in the learner
        assert sorted(agent.muscles) == [1, 3]  # only the workers it serves
        for muscle in agent.muscles.values():
            assert muscle.policy_version == 3
            np.testing.assert_array_equal(muscle.policies[-1]["w"], _policy(3)["w"])  # type: ignore[attr-defined]
            assert muscle.policies[-1]["w"].dtype == np.float32  # type: ignore[attr-defined]
        replies = host.handle_batch([_act(3, 1.0), _act(1, 2.0)], time.monotonic())
        assert [r.answers["d"] for r in replies] == [[{"env.a0": 1.03}, None, 3], [{"env.a0": 2.01}, None, 3]]
        # A worker it does not serve fails, named; no transition is kept for a brain.
        (other,) = host.handle_batch([_act(0, 1.0)], time.monotonic())
        assert other.failures["d"][0] == "KeyError"
        assert "serves [1, 3]" in other.failures["d"][1]
        replies = host.handle_batch([_act(3, 1.5, {"r": 2.0}), _act(1, 2.5, {"r": 1.0})], time.monotonic())
        assert [r.answers["d"][1] for r in replies] == [2.0, 1.0]  # the objective, from the server's objective
        assert LEARNED == []
    finally:
        host.close()


def test_newer_weights_update_the_muscles_and_older_or_other_phases_ones_are_ignored(
    publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    host = AgentHost(zmq_ctx=publisher.ctx)
    try:
        _set_up_with_first_weights(host, publisher, 3)
        agent = host.agents["d"]
        sub = agent._weights
        assert sub is not None
        while sub.poll(0):  # copies of the first broadcast, sent while the setup took one
            agent.take_weights()

        def deliver(weights: Any) -> None:
            publisher.send(weights)
            assert sub.poll(5000)
            agent.take_weights()

        with caplog.at_level(logging.WARNING, logger="arl.agent"):
            for ignored in (
                Weights("d", 0, 2, _policy(2)),  # older
                Weights("d", 0, 3, _policy(30)),  # the same version again
                Weights("d", 1, 9, _policy(9)),  # another phase's
                Weights("x", 0, 9, _policy(9)),  # another agent's
                b"\xc1",  # unreadable
            ):
                deliver(ignored)
                assert agent.version == 3
                for muscle in agent.muscles.values():
                    assert muscle.policy_version == 3
                    assert len(muscle.policies) == 1  # type: ignore[attr-defined]
        assert any("cannot be read was dropped" in r.getMessage() for r in caplog.records)
        publisher.send(Weights("d", 0, 5, _policy(5)))
        assert sub.poll(5000)
        # The batch takes it before acting: its answers carry the new version.
        (reply,) = host.handle_batch([_act(1, 1.0)], time.monotonic())
        assert reply.answers["d"][2] == 5
        for muscle in agent.muscles.values():
            assert muscle.policy_version == 5
            np.testing.assert_array_equal(muscle.policies[-1]["w"], _policy(5)["w"])  # type: ignore[attr-defined]
    finally:
        host.close()


def test_an_inference_server_without_a_broadcast_times_out_saying_so(publisher: Publisher) -> None:
    host = AgentHost(zmq_ctx=publisher.ctx)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"agent 'd': its learner sent no policy within 0.2 s"):
            _serve(host, publisher, [0], wait=0.2)
        assert time.monotonic() - started < 5
        with pytest.raises(ValueError, match="central but was given no learner"):
            _setup(host, "d", role="inference", serves=[0])
        with pytest.raises(ValueError, match="cannot take the role 'learner'"):
            _setup(host, "d", role="learner")
    finally:
        host.close()


def test_an_inference_server_logs_its_batch_sizes_and_latency(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = Collected()
    monkeypatch.setattr(agent_module, "STATS_INTERVAL", 0.0)  # each batch's values go at once
    host = AgentHost(metrics, zmq_ctx=publisher.ctx)
    try:
        _set_up_with_first_weights(host, publisher, 0, servers=2, server=1)
        host.handle_batch([_act(1, 1.0), _act(3, 1.0)], time.monotonic() - 0.5)
        host.handle_batch([_act(1, 1.0, final=True)], time.monotonic())  # nothing acted on: no batch
    finally:
        host.close()
    arl = [v for v in metrics.values if v[3].startswith("arl/")]
    assert [v[:5] for v in arl] == [
        (0, "d", None, "arl/inference_batch_size/server1", 1),
        (0, "d", None, "arl/inference_latency_ms/server1", 1),
    ]
    assert arl[0][5] == 2.0
    assert 500 <= arl[1][5] < 5000


def test_an_inference_servers_last_figures_are_stored_when_it_closes(publisher: Publisher) -> None:
    """A server gets no save at a phase's end: closing it sends what it gathered."""
    metrics = Collected()
    host = AgentHost(metrics, zmq_ctx=publisher.ctx)
    _set_up_with_first_weights(host, publisher, 0)
    host.handle_batch([_act(1, 1.0), _act(3, 1.0)], time.monotonic())
    assert not [v for v in metrics.values if v[3].startswith("arl/")]  # within its first second
    host.close()
    assert [v[3] for v in metrics.values if v[3].startswith("arl/")] == [
        "arl/inference_batch_size", "arl/inference_latency_ms"
    ]  # fmt: skip


def test_batch_stats_average_over_each_interval() -> None:
    got: list[tuple[str, float, int]] = []
    now = [0.0]
    stats = _BatchStats(lambda name, value, step: got.append((name, value, step)), clock=lambda: now[0])
    stats.add(2, 0.010)
    stats.add(4, 0.030)
    assert got == []
    now[0] = 1.0
    stats.add(6, 0.020)
    assert got == [("arl/inference_batch_size", 4.0, 1), ("arl/inference_latency_ms", pytest.approx(20.0), 1)]
    stats.flush()  # nothing since: nothing logged
    assert len(got) == 2


# -- devices ------------------------------------------------------------------------------------


def test_a_cuda_device_on_a_machine_without_one_is_refused_saying_what_to_do() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    check_device("cpu")
    with pytest.raises(ValueError, match=r"'cuda'.*no CUDA GPU.*use device: cpu.*CUDA build"):
        check_device("cuda")
    with pytest.raises(ValueError, match="'warp9' is not a torch device"):
        check_device("warp9")
    # An agent asked to act there refuses to set up, before building anything.
    with pytest.raises(ValueError, match="use device: cpu"):
        _setup(AgentHost(), "d", options={"device": "cuda:0"})
    assert BATCHES == []


def test_a_server_keeps_its_workers_to_max_steps_per_update_ahead_of_the_learner(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """learner.max_steps_per_update: 1 step an update, from 2 before any (this server's
    share, 2 of 4 workers: half): a batch that would go further waits for the learner's
    next broadcast."""
    monkeypatch.setattr(agent_module, "PACE_SLACK", 0)
    monkeypatch.setattr(agent_module, "PACE_SLACK_PER_WORKER", 0)
    host = AgentHost(zmq_ctx=publisher.ctx)
    try:
        _set_up_with_first_weights(host, publisher, 0, pace=[2, 1, 4])
        host.handle_batch([_act(1, 1.0)], time.monotonic())  # 1 step: within the 1 allowed
        timer = threading.Timer(0.3, lambda: publisher.send(Weights("d", 0, 4, _policy(4))))
        timer.start()
        started = time.monotonic()
        [reply] = host.handle_batch([_act(1, 1.0), _act(3, 1.0)], time.monotonic())[:1]
        waited = time.monotonic() - started
        timer.join()
        assert waited >= 0.25  # it waited for the update
        assert reply.answers["d"][2] == 4  # and acted with it
    finally:
        host.close()


def test_a_learner_that_makes_no_update_lets_the_workers_go_on_with_a_warning(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(agent_module, "PACE_SLACK", 0)
    monkeypatch.setattr(agent_module, "PACE_SLACK_PER_WORKER", 0)
    monkeypatch.setattr(agent_module, "PACE_PATIENCE", 0.2)
    host = AgentHost(zmq_ctx=publisher.ctx)
    try:
        _set_up_with_first_weights(host, publisher, 0, pace=[1, 1, 4])
        with caplog.at_level(logging.WARNING, logger="arl.agent"):
            started = time.monotonic()
            host.handle_batch([_act(1, 1.0), _act(3, 1.0)], time.monotonic())
            assert 0.15 <= time.monotonic() - started < 2
            started = time.monotonic()
            host.handle_batch([_act(1, 1.0), _act(3, 1.0)], time.monotonic())
            assert time.monotonic() - started < 0.15  # given up for the rest of the phase
        assert any("made no update for 0.2 s" in r.getMessage() for r in caplog.records)
    finally:
        host.close()
