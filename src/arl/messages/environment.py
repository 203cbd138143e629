"""SimulationController <-> EnvironmentConductor, on the direct link (the hot path)."""

from __future__ import annotations

from typing import Any

from arl.codec import message


@message("env.reset")
class Reset:
    """Start an episode. Reply: :class:`Observation`."""

    seed: int


@message("env.observation")
class Observation:
    sensors: dict[str, Any]  # qualified sensor id -> value


@message("env.step")
class Step:
    """Apply setpoints (qualified actuator id -> value). Reply: :class:`Stepped`."""

    setpoints: dict[str, Any]


@message("env.stepped")
class Stepped:
    sensors: dict[str, Any]
    rewards: dict[str, float]
    terminated: bool
    truncated: bool
    info: str | None = None  # the step's info as JSON text (arl.stepinfo), None when it gave none
