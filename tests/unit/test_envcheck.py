"""``arl.check_environment``: an environment's contract checked by resetting and stepping
it with sampled setpoints, every problem listed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

import arl
from arl.api import ActuatorInfo, SensorInfo, StepResult
from arl.dummy import DummyEnvironment
from arl.envcheck import EnvironmentProblems, check_environment, environment_problems
from arl.gym import GymEnvironment
from arl.pettingzoo import PettingZooEnvironment


def test_arl_s_own_environments_and_adapters_pass() -> None:
    assert arl.check_environment is check_environment  # exported, imported when first used
    for env in (
        DummyEnvironment(sensors=3, actuators=2),
        GymEnvironment("CartPole-v1", wrappers=["NormalizeReward"]),
        PettingZooEnvironment("arl.examples.rps", max_cycles=5),
    ):
        check_environment(env, seed=4)
        env.close()


class Broken(DummyEnvironment):
    """Breaks the contract in every way a step can: each is listed once."""

    def sensors(self) -> Sequence[SensorInfo]:
        return [*super().sensors(), SensorInfo("v", spaces.Box(-1.0, 1.0, shape=(2,)))]

    def actuators(self) -> Sequence[ActuatorInfo]:
        return [*super().actuators(), ActuatorInfo("a0", spaces.Discrete(2)), ActuatorInfo("t", spaces.Text(5))]

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        return {**super().reset(seed=seed), "v": np.zeros(3)}

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        result = super().step(setpoints)
        rewards: Any = {"r": float("nan"), 3: 1.0}
        return StepResult({**result.sensors, "ghost": 1}, rewards, "no", np.bool_(False), [1])  # type: ignore[arg-type]


def test_every_problem_is_listed_once() -> None:
    env = Broken(sensors=1, actuators=1)
    assert environment_problems(env) == [
        "actuators(): the id 'a0' is declared twice",
        "actuators(): 't': spaces of type Text are not supported yet",
    ]
    env.actuators = lambda: DummyEnvironment.actuators(env)  # type: ignore[method-assign]
    with pytest.raises(EnvironmentProblems) as raised:
        check_environment(env)
    assert raised.value.problems == [
        "reset(): sensor 'v' read array([0., 0., 0.]), which is not in its space Box(-1.0, 1.0, (2,), float32)",
        "step 1: step() gave a reading 'ghost', which is no sensor it declares",
        "step 1: reward 'r' is nan, not a finite number",
        "step 1: a reward's name must be a string, not 3",
        "step 1: terminated is 'no', not a bool",
        "step 1: info is [1], not a mapping (or None)",
    ]
    assert str(raised.value).startswith("Broken has 6 problem(s):\n- reset(): sensor 'v'")


class Forgetful(DummyEnvironment):
    """Saves its step count but not its generator: a loaded one goes on differently."""

    def save_state(self, path: Path) -> None:
        (path / "step.json").write_text(json.dumps(self._step))

    def load_state(self, path: Path) -> None:
        self._step = json.loads((path / "step.json").read_text())


class FailsAtStep(DummyEnvironment):
    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        if self._step == 2:
            raise RuntimeError("the simulator crashed")
        return super().step(setpoints)


def test_a_state_that_does_not_hold_everything_and_a_raising_step_are_found() -> None:
    (problem,) = environment_problems(Forgetful(sensors=2, actuators=1, episode_length=50))
    assert problem.startswith("after load_state(), step 4 gave other results than after the save_state() it loads")
    assert problem.endswith("the state does not hold all the environment goes on from")
    assert environment_problems(FailsAtStep()) == ["step 3: step() raised RuntimeError: the simulator crashed"]
    assert environment_problems(DummyEnvironment(episode_length=50)) == []  # its state holds its generator


class Paired(DummyEnvironment):
    """A Tuple-space sensor whose reading holds an array; with ``forget``, the array part
    is not in the state, so a loaded one reads otherwise."""

    def __init__(self, forget: bool = False) -> None:
        super().__init__(sensors=1, actuators=1, episode_length=50)
        self.forget, self.drift = forget, 0

    def sensors(self) -> Sequence[SensorInfo]:
        pair = spaces.Tuple((spaces.Box(0.0, 100.0, shape=(2,)), spaces.Discrete(3)))
        return [*super().sensors(), SensorInfo("pair", pair)]

    def _pair(self) -> dict[str, Any]:
        return {"pair": (np.array([self._step, self.drift], np.float32), 1)}

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        return {**super().reset(seed=seed), **self._pair()}

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        result = super().step(setpoints)
        self.drift += 1
        return StepResult({**result.sensors, **self._pair()}, result.rewards, result.terminated, result.truncated)

    def save_state(self, path: Path) -> None:
        super().save_state(path)
        (path / "drift.json").write_text(json.dumps(0 if self.forget else self.drift))

    def load_state(self, path: Path) -> None:
        super().load_state(path)
        self.drift = json.loads((path / "drift.json").read_text())


def test_readings_that_are_tuples_of_arrays_are_compared_in_the_state_round_trip() -> None:
    assert environment_problems(Paired()) == []
    (problem,) = environment_problems(Paired(forget=True))
    assert problem.startswith("after load_state(), step 4 gave other results than after the save_state() it loads")
    assert "(sensor 'pair': (array([" in problem
    assert problem.endswith(
        "then (array([4., 1.], dtype=float32), 1)): the state does not hold all the environment goes on from"
    )
