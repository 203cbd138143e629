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


@message("agent.act_many")
class ActMany:
    """Several workers' :class:`Act` in one request: a controller stepping several copies
    of its environments (``envs_per_worker``) asks each agent process once a round for
    all of them. Each list holds one entry a worker, in the same order. Reply:
    :class:`ActedMany`."""

    workers: list[int]
    agents: list[dict[str, list[Any]]]
    terminated: list[bool]
    truncated: list[bool]
    final: list[bool]

    def acts(self) -> list[Act]:
        if not len(self.workers) == len(self.agents) == len(self.terminated) == len(self.truncated) == len(self.final):
            raise ValueError("an ActMany's lists differ in length")
        return [
            Act(w, a, t, u, f)
            for w, a, t, u, f in zip(
                self.workers, self.agents, self.terminated, self.truncated, self.final, strict=True
            )
        ]


@message("agent.acted_many")
class ActedMany:
    """The answer to :class:`ActMany`: each worker's :class:`Acted` fields, in order."""

    answers: list[dict[str, list[Any]]]
    failures: list[dict[str, list[str]]]
