"""SimulationController <-> AgentConductor, on the direct link (the hot path).

Each :class:`Act` carries the rewards that followed the agent's previous setpoints, so
the conductor can complete that transition (objective, experience for the brain)
before the muscle acts on the new readings. The last call of an episode has
``final=True``: it completes the last transition and asks for no setpoints.
"""

from __future__ import annotations

from typing import Any

from arl.codec import message


@message("agent.act")
class Act:
    worker: int
    sensors: dict[str, Any]
    rewards: dict[str, float] | None  # None on an episode's first step
    terminated: bool
    truncated: bool
    final: bool


@message("agent.acted")
class Acted:
    setpoints: dict[str, Any]
    objective: float | None  # objective of the previous transition, None on the first step
