"""A central agent's learner (arl.conductors.learner.Learner) with real ZeroMQ sockets over
inproc://, its loop turned by hand: transitions in, training at its pace, policies out,
a save that waits for what the workers sent, and arl's own metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

import arl.conductors.learner as learner_module
from arl.api import Brain, Experience
from arl.classref import qualname
from arl.codec import decode, encode
from arl.conductors.learner import Learner
from arl.messages import control
from arl.messages.learner import EXPERIENCE_FIELDS, Experiences, Weights
from arl.testing import poll_for
from metrics_kit import Collected

SENSORS = [["env.s0", {"type": "Box", "low": 0.0, "high": 10.0, "shape": [], "dtype": "float64"}]]
ACTUATORS = [["env.a0", {"type": "Box", "low": 0.0, "high": 10.0, "shape": [], "dtype": "float64"}]]
PHASE = 2


class TrainingBrain(Brain):
    """Keeps what it is given; each train() is an update; its policy is its update count."""

    def __init__(self) -> None:
        self.memory: list[Experience] = []
        self.updates = 0

    def learn(self, experience: Experience) -> Any:
        raise AssertionError("a central learner calls remember")

    def remember(self, experience: Experience) -> None:
        self.memory.append(experience)

    def train(self) -> bool:
        self.updates += 1
        return True

    def policy(self) -> Any:
        return {"w": np.full(2, self.updates, dtype=np.float32)}

    def buffer_size(self) -> int | None:
        return len(self.memory)

    def save(self, directory: Path) -> None:
        (directory / "brain.json").write_text(json.dumps({"memory": len(self.memory), "updates": self.updates}))


class Rig:
    """A learner, the PUSH a controller sends it transitions on, and a SUB for its policies."""

    def __init__(self, metrics: Collected | None = None) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.learner = Learner(self.ctx, "inproc://experiences", "inproc://weights", metrics)
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.connect("inproc://experiences")
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect("inproc://weights")

    def setup(self, *, train: bool = True, brain: type[Brain] | None = None, **options: Any) -> Any:
        ready = self.learner.handle(
            control.SetupAgent(
                PHASE, "d", [qualname(brain or TrainingBrain), {}], ["arl.dummy:DummyMuscle", {}],
                ["arl.dummy:DummyObjective", {}], SENSORS, ACTUATORS, 3, train, 7, None,
                role="learner", options=options,
            )
        )  # fmt: skip
        assert ready == control.AgentReady("d")
        assert isinstance(self.learner.brain, brain or TrainingBrain)
        return self.learner.brain

    def send(self, items: list[list[Any]], *, phase: int = PHASE, agent: str = "d") -> None:
        self.push.send(encode(Experiences(phase, agent, items)))

    def take_until(self, received: int) -> None:
        poll_for(lambda: self.learner.take() >= 0 and self.learner.received >= received, what="the transitions")

    def weights(self) -> list[Weights]:
        found = []
        while self.sub.poll(0):
            found.append(decode(self.sub.recv()))
        return found

    def close(self) -> None:
        self.learner.close()
        self.ctx.destroy(linger=0)


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = Rig()
    yield made
    made.close()


def _item(worker: int = 0, version: int | None = 0, **fields: Any) -> list[Any]:
    values = {
        "worker": worker, "inputs": {"env.s0": 1.0}, "setpoints": {"env.a0": 2.0}, "rewards": {"r": 0.5},
        "objective": 0.5, "next_inputs": {"env.s0": 1.5}, "terminated": False, "truncated": False,
        "policy_version": version, **fields,
    }  # fmt: skip
    return [values[name] for name in EXPERIENCE_FIELDS]


def test_each_transition_pushed_reaches_remember_with_every_field_and_strangers_are_dropped(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    brain = rig.setup()
    obs = np.arange(6, dtype=np.float32).reshape(2, 3)
    with caplog.at_level(logging.WARNING, logger="arl.learner"):
        rig.push.send(b"\xc1")  # unreadable
        rig.send([_item(9)], phase=PHASE - 1)  # an earlier phase's
        rig.send([_item(9)], agent="x")  # another agent's
        rig.send(
            [
                _item(1, 4, objective=3, terminated=True),
                _item(2, None, inputs={"env.s0": obs}, next_inputs={"env.s0": obs + 1}, truncated=True),
            ]
        )
        rig.take_until(2)
    first, second = brain.memory
    assert first == Experience(1, {"env.s0": 1.0}, {"env.a0": 2.0}, {"r": 0.5}, 3.0, {"env.s0": 1.5}, True, False, 4)
    assert type(first.objective) is float
    assert (second.worker, second.terminated, second.truncated, second.policy_version) == (2, False, True, None)
    np.testing.assert_array_equal(second.inputs["env.s0"], obs)
    np.testing.assert_array_equal(second.next_inputs["env.s0"], obs + 1)
    assert second.inputs["env.s0"].dtype == np.float32
    assert rig.learner.received == 2  # the dropped ones do not count
    assert sum("dropped a message" in r.getMessage() for r in caplog.records) >= 1


def test_no_training_before_the_minimum_buffer_size(rig: Rig) -> None:
    brain = rig.setup(minimum_buffer_size=3)
    rig.send([_item(), _item()])
    rig.take_until(2)
    for _ in range(5):
        rig.learner.idle()
    assert brain.updates == 0
    rig.send([_item()])
    poll_for(lambda: rig.learner.idle() >= 0 and brain.updates > 0, what="an update")


def test_a_test_phase_learner_takes_no_transitions_and_never_trains(rig: Rig) -> None:
    brain = rig.setup(train=False)
    rig.send([_item()])
    poll_for(lambda: rig.learner.take() > 0, what="the message")
    for _ in range(3):
        rig.learner.idle()
    assert (brain.memory, brain.updates) == ([], 0)


def test_max_train_frequency_bounds_the_updates(rig: Rig) -> None:
    brain = rig.setup(max_train_frequency=50, minimum_buffer_size=1)
    rig.send([_item()])
    rig.take_until(1)
    started = time.monotonic()
    poll_for(
        lambda: rig.learner.idle() >= 0 and brain.updates > 1 and time.monotonic() - started >= 0.3, interval=0.001
    )
    elapsed = time.monotonic() - started
    assert 1 < brain.updates <= 50 * elapsed + 2


def test_broadcasts_carry_increasing_versions_and_the_brains_numpy_policy(rig: Rig) -> None:
    brain = rig.setup(max_train_frequency=200, broadcast_period=0.02)
    rig.send([_item()])
    rig.take_until(1)
    started = time.monotonic()
    sent: list[Weights] = []

    def for_a_while() -> bool:
        rig.learner.idle()
        sent.extend(rig.weights())
        return len(sent) >= 3 and time.monotonic() - started >= 0.3

    poll_for(for_a_while, interval=0.001)
    elapsed = time.monotonic() - started
    sent.extend(rig.weights())
    versions = [w.version for w in sent]
    assert len(versions) >= 3
    assert versions == sorted(set(versions))  # each newer than the last
    assert versions[-1] <= brain.updates
    assert len(versions) <= elapsed / 0.02 + 3  # at most one each broadcast_period (and the setup's)
    for weights in sent:
        assert (weights.agent, weights.phase) == ("d", PHASE)
        assert weights.policy["w"].dtype == np.float32
        np.testing.assert_array_equal(weights.policy["w"], np.full(2, weights.version, dtype=np.float32))


def test_a_save_first_takes_the_transitions_still_on_their_way(rig: Rig, tmp_path: Path) -> None:
    brain = rig.setup()
    rig.send([_item(), _item(), _item()])

    def late() -> None:
        with rig.ctx.socket(zmq.PUSH) as push:  # a second worker, slower
            push.connect("inproc://experiences")
            time.sleep(0.2)
            push.send(encode(Experiences(PHASE, "d", [_item(1), _item(1)])))

    thread = threading.Thread(target=late)
    thread.start()
    saved = rig.learner.handle(control.SaveBrain("d", str(tmp_path / "brain"), 5))
    thread.join()
    assert isinstance(saved, control.BrainSaved)
    assert json.loads((tmp_path / "brain" / "brain.json").read_text())["memory"] == 5
    assert len(brain.memory) == 5


def test_a_save_whose_transitions_never_come_warns_and_saves_what_it_has(
    rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(learner_module, "SAVE_PATIENCE", 0.2)
    rig.setup()
    rig.send([_item()])
    with caplog.at_level(logging.WARNING, logger="arl.learner"):
        saved = rig.learner.handle(control.SaveBrain("d", str(tmp_path / "brain"), 4))
    assert isinstance(saved, control.BrainSaved)
    assert json.loads((tmp_path / "brain" / "brain.json").read_text())["memory"] == 1
    assert "agent d's learner saves with 1 of the 4 transitions sent to it" in caplog.text
    with pytest.raises(RuntimeError, match="no brain of agent 'x' to save"):
        rig.learner.handle(control.SaveBrain("x", str(tmp_path / "other"), 0))


def test_updates_per_second_policy_lag_and_buffer_size_reach_the_metrics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(learner_module, "STATS_INTERVAL", 1e6)  # only the save flushes them
    metrics = Collected()
    rig = Rig(metrics)
    try:
        rig.setup()
        rig.send([_item(version=0)])  # chosen with the setup's policy: no lag
        rig.take_until(1)
        for _ in range(3):
            rig.learner.idle()
        assert rig.learner.updates == 3
        rig.send([_item(version=1), _item(version=1)])  # two updates behind
        rig.take_until(3)
        rig.learner.handle(control.SaveBrain("d", str(tmp_path / "brain"), 3))  # the phase's end flushes them
    finally:
        rig.close()
    assert metrics.flushes >= 1
    got = {name: (phase, agent, worker, step, value) for phase, agent, worker, name, step, value in metrics.values}
    assert set(got) == {"arl/updates_per_s", "arl/policy_lag", "arl/buffer_size"}
    assert all(v[:4] == (PHASE, "d", None, 1) for v in got.values())
    assert got["arl/updates_per_s"][4] > 0
    assert got["arl/policy_lag"][4] == pytest.approx(4 / 3)
    assert got["arl/buffer_size"][4] == 3.0


def test_a_learner_before_its_first_setup_does_not_spin() -> None:
    made = Rig()
    try:
        assert made.learner.idle() > 0.5  # the serve loop sleeps in its poll, not in a busy loop
    finally:
        made.close()


def test_a_transition_that_cannot_be_read_is_dropped_and_the_learner_goes_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    brain = rig.setup()
    with caplog.at_level(logging.WARNING, logger="arl.learner"):
        rig.send([[1, 2], _item(3, None), _item(4, "v1"), _item(5, 2)])
        rig.take_until(2)
    assert [e.worker for e in brain.memory] == [3, 5]
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


def test_a_server_that_subscribes_after_the_setup_broadcast_gets_the_policy_at_once(rig: Rig) -> None:
    """The broadcast at setup may leave before a server has joined: its subscription is
    noticed and answered with the latest policy, not a second later."""
    rig.setup()
    late = rig.ctx.socket(zmq.SUB)
    late.setsockopt(zmq.SUBSCRIBE, b"")
    late.connect("inproc://weights")
    try:
        poll_for(lambda: rig.learner.pub.poll(0) != 0, what="the subscription")
        rig.learner.joined()
        assert late.poll(1000)
        weights = decode(late.recv())
        assert (weights.agent, weights.phase, weights.version) == ("d", PHASE, 0)
    finally:
        late.close()


def test_a_learner_stops_training_once_it_saved_its_brain(rig: Rig, tmp_path: Path) -> None:
    """The saved brain is the phase's last word: no update after it (they would go on,
    logged under the ended phase, taking a core, until the agent's next setup)."""
    brain = rig.setup()
    rig.send([_item()])
    poll_for(lambda: rig.learner.idle() >= 0 and brain.updates > 2, what="updates")
    rig.learner.handle(control.SaveBrain("d", str(tmp_path / "brain"), 1))
    updates = brain.updates
    for _ in range(50):
        rig.learner.idle()
    assert brain.updates == updates


class LearnOnlyBrain(Brain):
    """Implements learn() alone: every second transition it returns new "weights"."""

    def __init__(self) -> None:
        self.seen = 0

    def learn(self, experience: Experience) -> Any:
        self.seen += 1
        return {"seen": np.array([self.seen])} if self.seen % 2 == 0 else None


def test_a_brain_that_only_implements_learn_broadcasts_what_learn_returned(rig: Rig) -> None:
    rig.setup(brain=LearnOnlyBrain, broadcast_period=0.001)
    rig.send([_item(), _item()])
    rig.take_until(2)
    sent: list[Weights] = []

    def broadcast() -> bool:
        rig.learner.idle()
        sent.extend(rig.weights())
        return any(w.version == 1 for w in sent)

    poll_for(broadcast, what="the update's broadcast")
    [update] = [w for w in sent if w.version == 1]
    assert update.policy["seen"].tolist() == [2]


class ShadowingBrain(TrainingBrain):
    """A brain whose parameter hides Brain.buffer_size() (a common name for one)."""

    def __init__(self, buffer_size: int = 100) -> None:
        super().__init__()
        self.buffer_size = buffer_size  # type: ignore[assignment,method-assign]


def test_a_brain_attribute_named_buffer_size_is_warned_about_and_does_not_kill_the_learner(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Collected()
    rig.learner.metrics = metrics
    with caplog.at_level(logging.WARNING, logger="arl.learner"):
        brain = rig.setup(brain=ShadowingBrain, minimum_buffer_size=2)
    assert any("hides Brain.buffer_size()" in r.getMessage() for r in caplog.records)
    rig.send([_item(), _item()])
    poll_for(lambda: rig.learner.idle() >= 0 and brain.updates > 0, what="an update")
    rig.learner._flush_stats()
    assert ("arl/buffer_size", 2.0) in [(v[3], v[5]) for v in metrics.values]


def test_a_loaded_brain_with_a_full_buffer_trains_without_waiting_for_the_minimum_anew(rig: Rig) -> None:
    """minimum_buffer_size counts what the brain holds (Brain.buffer_size()), not only
    what came in this phase: a brain loaded with its replay buffer trains at once."""
    brain = rig.setup(minimum_buffer_size=3)
    brain.memory.extend([Experience(0, {}, {}, {}, 0.0, {}, False, False)] * 3)  # as a load would
    poll_for(lambda: rig.learner.idle() >= 0 and brain.updates > 0, what="an update before any transition came")
    assert rig.learner.received == 0


class RolloutBrain(TrainingBrain):
    """On-policy: its buffer is a rollout of 4 that each update empties."""

    rollouts: list[int]

    def train(self) -> bool:
        if len(self.memory) < 4:
            return False
        self.rollouts = [*getattr(self, "rollouts", []), len(self.memory)]
        self.memory = []
        self.updates += 1
        return True


def test_minimum_buffer_size_holds_back_the_first_update_only(rig: Rig) -> None:
    """An on-policy brain's rollout empties at each update: after the first, it trains on
    its own rollouts, not on minimum_buffer_size-sized ones."""
    brain = rig.setup(brain=RolloutBrain, minimum_buffer_size=10)
    rig.send([_item() for _ in range(10)])
    rig.take_until(10)
    poll_for(lambda: rig.learner.idle() >= 0 and brain.updates >= 1, what="the first update")
    rig.send([_item() for _ in range(4)])
    rig.take_until(14)
    poll_for(lambda: rig.learner.idle() >= 0 and brain.updates >= 2, what="the second update")
    assert brain.rollouts == [10, 4]


class ClassAttributeBrain(TrainingBrain):
    buffer_size = 10_000  # type: ignore[assignment]  # a parameter's default, named as many brains name it


def test_a_class_attribute_named_buffer_size_does_not_kill_the_learner(rig: Rig) -> None:
    brain = rig.setup(brain=ClassAttributeBrain)
    rig.send([_item()])
    poll_for(lambda: rig.learner.idle() >= 0 and brain.updates > 0, what="an update")
