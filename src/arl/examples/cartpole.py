"""A CartPole agent with a linear policy and a hill-climbing brain: a baseline worth
comparing learners to.

The muscle pushes the cart towards where the pole falls, weighing the cart's and the
pole's state by four gains (at first only the pole's angle and angular velocity count).
In train mode the brain tunes the gains by hill climbing on each episode's return; in a
test phase the muscles keep the gains the brain starts them with (the best it found, when
it loads a trained brain).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from arl.api import Muscle
from arl.examples.hill_climbing import HillClimber

STATE_FILE = "muscle_state.json"  # the muscle's, in its own state folder


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

    def save_state(self, path: Path) -> None:  # the gains its brain sent last
        (path / STATE_FILE).write_text(json.dumps({"gains": self.gains.tolist()}))

    def load_state(self, path: Path) -> None:
        self.gains = np.asarray(json.loads((path / STATE_FILE).read_text())["gains"], dtype=float)


class HillClimbingBrain(HillClimber):
    """Tunes the muscle's four gains, starting from angle gain 1 and velocity gain 0.5."""

    def __init__(self, noise: float = 0.1) -> None:
        super().__init__(start=[0.0, 0.0, 1.0, 0.5], noise=noise)
