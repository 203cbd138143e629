"""Dummy components: the classic two-agent dummy experiment, and a reference for users.

The environment offers ``sensors`` readings and ``actuators`` setpoints; every reading
is a deterministic function of the step, the seed and the last setpoints, so two runs
with the same seed store the same trajectory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from arl.api import ActuatorInfo, Brain, Environment, Experience, Muscle, Objective, SensorInfo, StepResult

STATE_FILE = "state.json"  # each component's, in its own state folder


class DummyEnvironment(Environment):
    """Sensors ``s0..`` in [0, 1], actuators ``a0..`` in [0, 10]; ends after ``episode_length``."""

    def __init__(self, sensors: int = 10, actuators: int = 10, episode_length: int = 10) -> None:
        self._sensors = [SensorInfo(f"s{i}", spaces.Box(0.0, 1.0, shape=(), dtype=np.float64)) for i in range(sensors)]
        self._actuators = [
            ActuatorInfo(f"a{i}", spaces.Box(0.0, 10.0, shape=(), dtype=np.float64)) for i in range(actuators)
        ]
        self.episode_length = episode_length
        self._rng = np.random.default_rng(0)
        self._step = 0

    def sensors(self) -> Sequence[SensorInfo]:
        return self._sensors

    def actuators(self) -> Sequence[ActuatorInfo]:
        return self._actuators

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        self._rng = np.random.default_rng(seed)
        self._step = 0
        return self._readings()

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        self._step += 1
        pressure = sum(float(v) for v in setpoints.values()) / max(1, 10 * len(self._actuators))
        return StepResult(
            sensors=self._readings(),
            rewards={"reward": round(1.0 - pressure, 9)},
            terminated=self._step >= self.episode_length,
        )

    def _readings(self) -> dict[str, float]:
        values = self._rng.random(len(self._sensors))
        return {s.id: float(v) for s, v in zip(self._sensors, values, strict=True)}

    def save_state(self, path: Path) -> None:
        state = {"step": self._step, "rng": self._rng.bit_generator.state}
        (path / STATE_FILE).write_text(json.dumps(state))

    def load_state(self, path: Path) -> None:
        state = json.loads((path / STATE_FILE).read_text())
        self._step = int(state["step"])
        self._rng.bit_generator.state = state["rng"]


class DummyMuscle(Muscle):
    """Draws setpoints at random (seeded) from each scalar Box actuator's range."""

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        super().setup(sensors, actuators, seed)
        self._rng = np.random.default_rng(seed)
        boxes = [a for a in actuators if isinstance(a.space, spaces.Box) and a.space.shape == ()]
        self._ids = [a.id for a in boxes]
        self._low = np.array([float(a.space.low) for a in boxes])  # type: ignore[attr-defined]
        self._range = np.array([float(a.space.high) for a in boxes]) - self._low  # type: ignore[attr-defined]

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        # The very numbers rng.uniform(low, high) draws (low + range * next_double, in
        # order), without its per-call checks of the bounds: 7x faster.
        values = (self._low + self._range * self._rng.random(len(self._ids))).tolist()
        return dict(zip(self._ids, values, strict=True))

    def save_state(self, path: Path) -> None:
        (path / STATE_FILE).write_text(json.dumps({"rng": self._rng.bit_generator.state}))

    def load_state(self, path: Path) -> None:
        self._rng.bit_generator.state = json.loads((path / STATE_FILE).read_text())["rng"]


class DummyBrain(Brain):
    """Counts what it has seen; saves and loads that count (its state, as
    :meth:`Brain.save_state`'s default has it)."""

    def __init__(self) -> None:
        self.experiences = 0
        self.objective_sum = 0.0

    def learn(self, experience: Experience) -> Any:
        self.experiences += 1
        self.objective_sum += experience.objective
        return None

    def save(self, directory: Path) -> None:
        state = {"experiences": self.experiences, "objective_sum": self.objective_sum}
        (directory / "dummy_brain.json").write_text(json.dumps(state))

    def load(self, directory: Path) -> None:
        state = json.loads((directory / "dummy_brain.json").read_text())
        self.experiences = int(state["experiences"])
        self.objective_sum = float(state["objective_sum"])


class DummyObjective(Objective):
    """The sum of all rewards, times ``sign`` (use -1 for an agent whose goal opposes).
    It keeps nothing between steps: :meth:`Objective.save_state`'s default suits it."""

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = sign

    def evaluate(self, rewards: Mapping[str, float]) -> float:
        return self.sign * float(sum(rewards.values()))
