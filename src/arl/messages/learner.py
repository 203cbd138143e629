"""A central agent's learner: transitions in from the controllers, policies out to the
inference servers (SEED-style acting; docs/architecture.md, "Central agents").

Controllers PUSH each completed transition of a train phase straight to the agent's
learner (never through an inference server), in batches. The learner PUBlishes its
policy (numpy arrays through the codec, never pickle) every ``broadcast_period``; each
inference server SUBscribes, keeping only the latest.
"""

from __future__ import annotations

from typing import Any

from arl.codec import message

EXPERIENCE_FIELDS = (
    "worker", "inputs", "setpoints", "rewards", "objective", "next_inputs", "terminated", "truncated",
    "policy_version",
)  # fmt: skip
"""The order of an item of :attr:`Experiences.items`: the fields of :class:`arl.api.Experience`."""


@message("learner.experiences")
class Experiences:
    phase: int
    agent: str
    items: list[list[Any]]  # each EXPERIENCE_FIELDS, in order


@message("learner.weights")
class Weights:
    """``version``: the learner's count of updates in ``phase`` when it sent ``policy``
    (what :meth:`arl.api.Brain.policy` returned; None: the brain gives none)."""

    agent: str
    phase: int
    version: int
    policy: Any
