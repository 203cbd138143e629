"""Components of the Gymnasium-fit tests (issue 13, item 5): an agent that sets a value
outside its actuator's space, and environments that break the contract
``arl.check_environment`` checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gymnasium import spaces

from arl.api import ActuatorInfo, Muscle, StepResult
from arl.dummy import DummyEnvironment


class WildCartMuscle(Muscle):
    """Pushes CartPole's cart left and right in turn; ``value`` on its ``at``-th action."""

    def __init__(self, value: Any, at: int = 3) -> None:
        self.value, self.at, self.calls = value, at, 0

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls += 1
        return {self.actuators[0].id: self.value if self.calls == self.at else self.calls % 2}


class SloppyEnvironment(DummyEnvironment):
    """Resets fine; its steps break the contract: a reading out of its space, one no
    sensor declares, a reward that is text, and a ``terminated`` that is a number."""

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        result = super().step(setpoints)
        sensors = {**result.sensors, "s0": 7.5, "extra": 1.0}
        return StepResult(sensors, {"reward": "high"}, 0, False)  # type: ignore[dict-item,arg-type]


class TwinIds(DummyEnvironment):
    """Declares the actuator ``a0`` twice, in a ``Discrete`` and a ``Box``."""

    def actuators(self) -> Sequence[ActuatorInfo]:
        return [*super().actuators(), ActuatorInfo("a0", spaces.Discrete(2))]
