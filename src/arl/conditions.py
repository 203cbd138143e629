"""Termination conditions: when does an episode end?

A condition is asked after every step. Built-ins: :class:`EnvironmentDone` (an
environment terminated or truncated) and :class:`MaxSteps`. Users subclass
:class:`TerminationCondition` and name their class in the experiment file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class StepView:
    """What a condition may look at after a step of an episode."""

    step: int  # steps done in this episode, counting from 1
    terminated: bool  # any environment terminated
    truncated: bool  # any environment truncated
    rewards: dict[str, float]


class TerminationCondition(ABC):
    """Decides whether an episode is over. Constructed with the file's ``params``."""

    @abstractmethod
    def episode_over(self, view: StepView) -> str | None:
        """The reason the episode ends now (stored with the episode), or None to go on."""


class EnvironmentDone(TerminationCondition):
    """Ends the episode when an environment says it terminated or was truncated."""

    def episode_over(self, view: StepView) -> str | None:
        if view.terminated:
            return "terminated"
        if view.truncated:
            return "truncated"
        return None


class MaxSteps(TerminationCondition):
    """Ends the episode after ``steps`` steps."""

    def __init__(self, steps: int) -> None:
        if steps < 1:
            raise ValueError(f"MaxSteps needs steps >= 1, got {steps}")
        self.steps = steps

    def episode_over(self, view: StepView) -> str | None:
        return "max_steps" if view.step >= self.steps else None
