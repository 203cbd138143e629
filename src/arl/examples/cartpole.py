"""A heuristic CartPole agent: no learning, but a policy worth comparing learners to.

The muscle pushes the cart towards where the pole falls, weighing the pole's angle and
angular velocity by gains the brain tunes in train mode with a simple hill climb on
each episode's return.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from arl.api import Brain, Experience, Muscle


class BalancingMuscle(Muscle):
    """Pushes right (1) when ``angle_gain * angle + velocity_gain * angular velocity > 0``."""

    def __init__(self, angle_gain: float = 1.0, velocity_gain: float = 0.5) -> None:
        self.gains = np.array([0.0, 0.0, angle_gain, velocity_gain])

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        (obs_id,) = (s.id for s in self.sensors)
        (action_id,) = (a.id for a in self.actuators)
        return {action_id: int(float(np.dot(self.gains, sensors[obs_id])) > 0.0)}

    def update(self, update: Any) -> None:
        self.gains = np.asarray(update, dtype=float)


class HillClimbingBrain(Brain):
    """Keeps the best gains seen; after each episode tries a seeded perturbation of them."""

    def __init__(self, noise: float = 0.1) -> None:
        self.noise = noise
        self.best_gains = np.array([0.0, 0.0, 1.0, 0.5])
        self.best_return = -np.inf
        self.trying = self.best_gains.copy()
        self.episode_return = 0.0
        self._rng = np.random.default_rng(0)

    def setup(self, sensors: Any, actuators: Any, seed: int) -> None:
        super().setup(sensors, actuators, seed)
        self._rng = np.random.default_rng(seed)

    def learn(self, experience: Experience) -> Any:
        self.episode_return += experience.objective
        if not (experience.terminated or experience.truncated):
            return None
        if self.episode_return >= self.best_return:
            self.best_return, self.best_gains = self.episode_return, self.trying
        self.episode_return = 0.0
        self.trying = self.best_gains + self.noise * self._rng.standard_normal(4)
        return self.trying.tolist()

    def policy(self) -> Any:
        return self.trying.tolist()

    def save(self, directory: Path) -> None:
        state = {"best_gains": self.best_gains.tolist(), "best_return": float(self.best_return)}
        (directory / "hill_climbing.json").write_text(json.dumps(state))

    def load(self, directory: Path) -> None:
        state = json.loads((directory / "hill_climbing.json").read_text())
        self.best_gains = np.asarray(state["best_gains"], dtype=float)
        self.best_return = float(state["best_return"])
        self.trying = self.best_gains.copy()
