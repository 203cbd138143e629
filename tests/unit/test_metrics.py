"""What brains and muscles log (``log_metric``) and the policy version a muscle reports,
in the agent process's own objects, without processes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from arl.conductors.agent import AgentHost
from arl.dummy import DummyBrain, DummyMuscle
from arl.messages import agent as amsg
from arl.messages import control
from metrics_kit import Collected

DUMMY = (["arl.dummy:DummyBrain", {}], ["arl.dummy:DummyMuscle", {}], ["arl.dummy:DummyObjective", {}])
SENSORS = [["env.s0", {"type": "Box", "low": 0.0, "high": 1.0, "shape": [], "dtype": "float64"}]]
ACTUATORS = [["env.a0", {"type": "Box", "low": -1.0, "high": 1.0, "shape": [], "dtype": "float64"}]]


def _host(metrics: Collected | None, phase: int = 2, workers: int = 2) -> AgentHost:
    host = AgentHost(metrics)
    host.handle(control.SetupAgent(phase, "d", *DUMMY, SENSORS, ACTUATORS, workers, True, 7, None))
    return host


# -- log_metric ----------------------------------------------------------------------------------


def test_a_metric_without_a_step_counts_its_own_values_and_one_with_a_step_keeps_it() -> None:
    got: list[tuple[str, float, int]] = []
    brain = DummyBrain()
    brain._arl_metric_sink = lambda name, value, step: got.append((name, value, step))
    brain.log_metric("loss", 0.5)
    brain.log_metric("loss", np.float32(0.25))
    brain.log_metric("epsilon", 1)
    brain.log_metric("loss", np.array(0.125), step=np.int64(40))
    brain.log_metric("loss", 0.0625)
    assert got == [("loss", 0.5, 1), ("loss", 0.25, 2), ("epsilon", 1.0, 1), ("loss", 0.125, 40), ("loss", 0.0625, 3)]
    assert all(type(value) is float and type(step) is int for _, value, step in got)
    DummyMuscle().log_metric("alone", 1.0)  # no sink (not in an agent process): checked, then dropped


@pytest.mark.parametrize(
    ("name", "value", "step", "error", "message"),
    [
        ("", 1.0, None, ValueError, "1 to 64 printable characters"),
        ("x" * 65, 1.0, None, ValueError, "1 to 64 printable characters"),
        ("a\nb", 1.0, None, ValueError, "printable"),
        (3, 1.0, None, TypeError, "name must be a string"),
        ("loss", math.nan, None, ValueError, "must be finite, not nan"),
        ("loss", -math.inf, None, ValueError, "must be finite"),
        ("loss", "0.5", None, TypeError, "must be a number, not str"),
        ("loss", True, None, TypeError, "must be a number, not bool"),
        ("loss", None, None, TypeError, "must be a number, not NoneType"),
        ("loss", np.array([1.0, 2.0]), None, TypeError, "not one number"),
        ("loss", 1.0, 1.5, TypeError, "step must be an integer"),
        ("loss", 1.0, -1, ValueError, "step must be between 0"),
        ("loss", 1.0, 2**63, ValueError, "step must be between 0"),
    ],
)
def test_a_bad_metric_is_a_clear_error_where_it_is_logged(
    name: Any, value: Any, step: Any, error: type[Exception], message: str
) -> None:
    got: list[Any] = []
    muscle = DummyMuscle()
    muscle._arl_metric_sink = lambda *args: got.append(args)
    with pytest.raises(error, match=message):
        muscle.log_metric(name, value, step)
    assert got == []


# -- the agent process's side ---------------------------------------------------------------------


def test_an_agent_process_tags_each_value_with_its_phase_agent_and_worker() -> None:
    metrics = Collected()
    host = _host(metrics)
    agent = host.agents["d"]
    assert agent.brain is not None
    agent.brain.log_metric("loss", 0.5)
    agent.muscles[1].log_metric("q", 2.0, step=9)
    agent.muscles[0].log_metric("q", 1.0)
    assert metrics.values == [(2, "d", None, "loss", 1, 0.5), (2, "d", 1, "q", 9, 2.0), (2, "d", 0, "q", 1, 1.0)]
    # The next phase's setup sends what the last one logged, and its parts count afresh.
    flushes = metrics.flushes
    host.handle(control.SetupAgent(3, "d", *DUMMY, SENSORS, ACTUATORS, 1, True, 7, None))
    assert metrics.flushes == flushes + 1
    host.agents["d"].muscles[0].log_metric("q", 3.0)
    assert metrics.values[-1] == (3, "d", 0, "q", 1, 3.0)  # a fresh muscle counts afresh


def test_a_brain_save_sends_the_phases_values(tmp_path: Any) -> None:
    metrics = Collected()
    host = _host(metrics)
    before = metrics.flushes
    host.handle(control.SaveBrain("d", str(tmp_path / "brain")))
    assert metrics.flushes == before + 1


def test_the_policy_version_a_muscle_reports_goes_with_its_setpoints() -> None:
    host = _host(None)
    host.agents["d"].muscles[1].policy_version = np.int64(12)  # type: ignore[assignment]
    act = amsg.Act(1, {"d": [{"env.s0": 0.5}, None]}, False, False, False)
    acted = host.handle(act)
    assert acted.answers["d"][1:] == [None, 12]
    assert type(acted.answers["d"][2]) is int
    # The worker without a version, and the final call (no setpoints), give none.
    assert host.handle(amsg.Act(0, {"d": [{"env.s0": 0.5}, None]}, False, False, False)).answers["d"][2] is None
    final = host.handle(amsg.Act(1, {"d": [{"env.s0": 0.5}, {"env.r": 1.0}]}, True, False, True))
    assert final.answers["d"] == [{}, 1.0, None]


@pytest.mark.parametrize(("version", "message"), [("3", "must be None or an integer"), (-2, "between 0 and")])
def test_a_policy_version_that_is_not_one_fails_its_agent_by_name(version: Any, message: str) -> None:
    host = _host(None)
    host.agents["d"].muscles[0].policy_version = version
    acted = host.handle(amsg.Act(0, {"d": [{"env.s0": 0.5}, None]}, False, False, False))
    assert acted.answers == {}
    kind, text, _ = acted.failures["d"]
    assert message in text
    assert "agent 'd'" in text
    assert kind in ("TypeError", "ValueError")


def test_each_muscle_knows_its_worker_before_its_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy may explore differently per worker (Ape-X): arl says which, before setup."""
    import arl.dummy

    seen: list[tuple[int, int]] = []

    class Telling(DummyMuscle):
        def setup(self, sensors: Any, actuators: Any, seed: int) -> None:
            seen.append((self.worker, self.workers))
            super().setup(sensors, actuators, seed)

    monkeypatch.setattr(arl.dummy, "TellingMuscle", Telling, raising=False)
    muscle = ["arl.dummy:TellingMuscle", {}]
    AgentHost().handle(control.SetupAgent(0, "d", DUMMY[0], muscle, DUMMY[2], SENSORS, ACTUATORS, 3, True, 7, None))
    assert seen == [(0, 3), (1, 3), (2, 3)]


def test_the_last_transition_of_an_episode_arl_cut_reaches_the_brain_as_truncated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An episode ended by max_steps, a condition or a stop has no terminal state: the
    brain must bootstrap from it, so its last transition says truncated."""
    import arl.dummy

    seen: list[tuple[bool, bool]] = []

    class Remembering(DummyBrain):
        def learn(self, experience: Any) -> Any:
            seen.append((experience.terminated, experience.truncated))
            return super().learn(experience)

    monkeypatch.setattr(arl.dummy, "RememberingBrain", Remembering, raising=False)
    host = AgentHost()
    brain = ["arl.dummy:RememberingBrain", {}]
    host.handle(control.SetupAgent(0, "d", brain, DUMMY[1], DUMMY[2], SENSORS, ACTUATORS, 1, True, 7, None))
    readings = {"env.s0": 0.5}

    def act(rewards: Any, terminated: bool = False, final: bool = False) -> None:
        host.handle(amsg.Act(0, {"d": [readings, rewards]}, terminated, False, final))

    act(None)
    act({"env.r": 1.0})
    act({"env.r": 1.0}, final=True)  # cut: neither flag came from the environment
    act(None)
    act({"env.r": 1.0}, terminated=True, final=True)
    assert seen == [(False, False), (False, True), (True, False)]
