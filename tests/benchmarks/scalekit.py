"""The environment of the scaling benchmark, imported by arl's processes (bench_scaling.py
puts this folder on their PYTHONPATH)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from arl.api import ActuatorInfo, Environment, SensorInfo, StepResult
from arl.dummy import DummyEnvironment


def burn(seconds: float) -> None:
    """Busy for ``seconds`` of this thread's CPU time."""
    if seconds <= 0:
        return
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


class BurnEnvironment(DummyEnvironment):
    """arl's dummy environment that also burns ``burn_ms`` milliseconds of CPU each step:
    a busy loop on the thread's CPU clock (not a sleep, and not wall time: a process that
    waits for a core still burns the full amount once it runs)."""

    def __init__(self, burn_ms: float = 1.0, sensors: int = 4, actuators: int = 1, episode_length: int = 200) -> None:
        super().__init__(sensors=sensors, actuators=actuators, episode_length=episode_length)
        self.burn_s = burn_ms / 1e3

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        burn(self.burn_s)
        return super().step(setpoints)


class VectorEnvironment(Environment):
    """One Box sensor ``obs`` of ``obs_size`` values and one Discrete actuator ``action``
    of ``actions`` choices, random readings (seeded), reward 1 a step, ``episode_length``
    steps: what arl's DQN acts on, for the inference benchmark. Burns ``burn_ms`` of CPU
    a step as BurnEnvironment does."""

    def __init__(self, obs_size: int = 64, actions: int = 8, episode_length: int = 200, burn_ms: float = 0.0) -> None:
        self.obs_space = spaces.Box(-1.0, 1.0, shape=(obs_size,), dtype=np.float32)
        self.actions, self.episode_length, self.burn_s = actions, episode_length, burn_ms / 1e3
        self._rng = np.random.default_rng(0)
        self._step = 0

    def sensors(self) -> Sequence[SensorInfo]:
        return [SensorInfo("obs", self.obs_space)]

    def actuators(self) -> Sequence[ActuatorInfo]:
        return [ActuatorInfo("action", spaces.Discrete(self.actions))]

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        self._rng, self._step = np.random.default_rng(seed), 0
        return self._readings()

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        burn(self.burn_s)
        self._step += 1
        return StepResult(
            sensors=self._readings(), rewards={"reward": 1.0}, terminated=self._step >= self.episode_length
        )

    def _readings(self) -> dict[str, Any]:
        return {"obs": self._rng.uniform(-1.0, 1.0, self.obs_space.shape).astype(np.float32)}
