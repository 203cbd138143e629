"""Attacker against defender on one bus of a power grid: a small environment of arl's own.

The bus voltage (per unit) drifts back towards 1.0 by itself, pushed about by the load
and by noise. The attacker injects reactive power to drive the voltage out of its ±10%
band; the defender compensates. The environment's reward ``quality`` is 1 at 1.0 p.u.
and falls to 0 at the edge of the band. Leaving the band trips the bus: the episode
*terminates*. Holding it for ``episode_length`` steps *truncates* the episode.

The defender's objective is the quality, the attacker's its negative
(:class:`arl.objectives.RewardOf` with ``weight: -1``): their objectives oppose. Both
learn with :class:`BiasGainClimber`, which tunes a :class:`LinearMuscle`'s bias and gain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from arl.api import ActuatorInfo, Environment, Muscle, SensorInfo, StepResult
from arl.examples.hill_climbing import HillClimber

BAND = 0.1  # the voltage must stay within 1.0 ± BAND p.u.
STATE_FILE = "state.json"  # each component's, in its own state folder


class BusEnvironment(Environment):
    """One bus: sensors ``voltage`` and ``load``, actuators ``attack`` and ``compensation``
    (each in ±``limit`` p.u.), reward ``quality``."""

    def __init__(self, episode_length: int = 50, drift: float = 0.5, noise: float = 0.005, limit: float = 0.06) -> None:
        if episode_length < 1:
            raise ValueError(f"episode_length must be at least 1, got {episode_length}")
        self.episode_length, self.drift, self.noise, self.limit = episode_length, drift, noise, limit
        self._rng = np.random.default_rng(0)
        self.voltage, self.load, self.steps = 1.0, 0.5, 0

    def sensors(self) -> Sequence[SensorInfo]:
        return [
            SensorInfo("voltage", spaces.Box(1.0 - 2 * BAND, 1.0 + 2 * BAND, shape=(), dtype=np.float64)),
            SensorInfo("load", spaces.Box(0.0, 1.0, shape=(), dtype=np.float64)),
        ]

    def actuators(self) -> Sequence[ActuatorInfo]:
        box = spaces.Box(-self.limit, self.limit, shape=(), dtype=np.float64)
        return [ActuatorInfo("attack", box), ActuatorInfo("compensation", box)]

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        self._rng = np.random.default_rng(seed)
        self.voltage, self.load, self.steps = 1.0, float(self._rng.uniform(0.3, 0.7)), 0
        return self._readings()

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        self.steps += 1
        injected = sum(
            float(np.clip(setpoints.get(a, 0.0), -self.limit, self.limit)) for a in ("attack", "compensation")
        )
        self.load = float(np.clip(self.load + self._rng.normal(0.0, 0.05), 0.0, 1.0))
        deviation = (1.0 - self.drift) * (self.voltage - 1.0) + injected - 0.02 * (self.load - 0.5)
        self.voltage = float(np.clip(1.0 + deviation + self._rng.normal(0.0, self.noise), 0.8, 1.2))
        quality = max(0.0, 1.0 - abs(self.voltage - 1.0) / BAND)
        tripped = abs(self.voltage - 1.0) > BAND
        return StepResult(
            self._readings(),
            {"quality": round(quality, 9)},
            terminated=tripped,
            truncated=not tripped and self.steps >= self.episode_length,
        )

    def _readings(self) -> dict[str, float]:
        return {"voltage": self.voltage, "load": self.load}

    def save_state(self, path: Path) -> None:
        state = {"voltage": self.voltage, "load": self.load, "steps": self.steps, "rng": self._rng.bit_generator.state}
        (path / STATE_FILE).write_text(json.dumps(state))

    def load_state(self, path: Path) -> None:
        state = json.loads((path / STATE_FILE).read_text())
        self.voltage, self.load, self.steps = float(state["voltage"]), float(state["load"]), int(state["steps"])
        self._rng.bit_generator.state = state["rng"]


class LinearMuscle(Muscle):
    """Sets its one actuator to ``bias + gain * (voltage - 1)``, clipped to the actuator's
    range; reads the first sensor it is given (the voltage)."""

    def __init__(self, bias: float = 0.0, gain: float = 0.0) -> None:
        self.weights = np.array([bias, gain])

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        voltage = float(sensors[self.sensors[0].id])
        (actuator,) = self.actuators
        space = actuator.space
        assert isinstance(space, spaces.Box)
        value = float(np.clip(self.weights[0] + self.weights[1] * (voltage - 1.0), space.low, space.high))
        return {actuator.id: value}

    def update(self, update: Any) -> None:
        self.weights = np.asarray(update, dtype=float)

    def save_state(self, path: Path) -> None:  # the weights its brain sent last
        (path / STATE_FILE).write_text(json.dumps({"weights": self.weights.tolist()}))

    def load_state(self, path: Path) -> None:
        self.weights = np.asarray(json.loads((path / STATE_FILE).read_text())["weights"], dtype=float)


class BiasGainClimber(HillClimber):
    """Tunes a :class:`LinearMuscle`'s [bias, gain], from [0, 0]."""

    def __init__(self, noise: Sequence[float] = (0.01, 0.5)) -> None:
        super().__init__(start=[0.0, 0.0], noise=noise)
