"""A heuristic CartPole agent: no learning, but a policy worth comparing learners to.

The muscle pushes the cart towards where the pole falls, weighing the pole's angle and
angular velocity by gains the brain tunes in train mode with a simple hill climb on
each episode's return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from arl.api import Muscle
from arl.examples.hill_climbing import HillClimber


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


class HillClimbingBrain(HillClimber):
    """Tunes the muscle's four gains, starting from angle gain 1 and velocity gain 0.5."""

    def __init__(self, noise: float = 0.1) -> None:
        super().__init__(start=[0.0, 0.0, 1.0, 0.5], noise=noise)
