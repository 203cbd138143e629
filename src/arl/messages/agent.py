"""SimulationController <-> agent process, on the direct link (the hot path).

An agent process hosts one or more agents; a controller sends it one :class:`Act` a
step carrying the part of every agent of the turn it hosts, and gets every answer back
in one :class:`Acted`. Each agent's part carries the rewards that followed its previous
setpoints, so the agent can complete that transition (objective, experience for the
brain) before its muscle acts on the new readings. The last call of an episode has
``final=True``: it completes the last transitions and asks for no setpoints.
"""

from __future__ import annotations

from typing import Any

from arl.codec import message


@message("agent.act")
class Act:
    worker: int
    agents: dict[str, list[Any]]  # agent name -> [sensors, rewards since its last action | None]
    terminated: bool
    truncated: bool
    final: bool


@message("agent.acted")
class Acted:
    """``answers``: agent name -> [setpoints, objective of its previous action | None,
    version of the policy that chose the setpoints | None] (``Muscle.policy_version``);
    ``failures``: agent name -> [exception class, message, traceback text] for each agent
    whose code raised (the others' answers still count)."""

    answers: dict[str, list[Any]]
    failures: dict[str, list[str]]
