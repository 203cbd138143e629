"""When to save: conditions asked at step boundaries.

At each step boundary the caller builds a :class:`SaveView` and asks its condition
:meth:`~SaveCondition.due`; when it saves (for this condition or any other reason: a
signal, the control API), it tells the condition :meth:`~SaveCondition.saved`, and the
condition counts again from there. ``due`` never changes a condition, so asking twice
gives the same answer. Time comes from an injected clock (seconds, monotonic): the run's
scaled clock, frozen while paused, so a pause does not count as time run.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from arl import time as arl_time
from arl.errors import ArlError

Clock = Callable[[], float]


@dataclass(frozen=True)
class SaveView:
    """What a condition sees: the run's steps and episodes so far (all workers together),
    the current phase, and whether that phase has just ended."""

    steps: int
    episodes: int
    phase: str
    phase_ended: bool = False


class SaveCondition(ABC):
    @abstractmethod
    def due(self, view: SaveView) -> bool:
        """Whether to save now."""

    @abstractmethod
    def saved(self, view: SaveView) -> None:
        """A snapshot was just taken at ``view``: count from here."""


def _positive(key: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value > 0 and math.isfinite(value)):
        raise ArlError(f"state.save.{key} must be a positive number, not {value!r}")
    return value


class EverySeconds(SaveCondition):
    """Due once ``seconds`` have passed on ``clock`` since it was made or last saved."""

    def __init__(self, seconds: float, clock: Clock = arl_time.monotonic) -> None:
        self.seconds = _positive("every_seconds", seconds)
        self.clock = clock
        self._since = clock()

    def due(self, view: SaveView) -> bool:
        return self.clock() - self._since >= self.seconds

    def saved(self, view: SaveView) -> None:
        self._since = self.clock()


class _EveryCount(SaveCondition):
    key = ""

    def __init__(self, every: int) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ArlError(f"state.save.{self.key} must be a whole number of at least 1, not {every!r}")
        self.every = every
        self._since = 0

    @abstractmethod
    def count(self, view: SaveView) -> int: ...

    def due(self, view: SaveView) -> bool:
        return self.count(view) - self._since >= self.every

    def saved(self, view: SaveView) -> None:
        self._since = self.count(view)


class EverySteps(_EveryCount):
    """Due once ``every`` steps have run since the last save (or the start)."""

    key = "every_steps"

    def count(self, view: SaveView) -> int:
        return view.steps


class EveryEpisodes(_EveryCount):
    """Due once ``every`` episodes have ended since the last save (or the start)."""

    key = "every_episodes"

    def count(self, view: SaveView) -> int:
        return view.episodes


class AtPhaseEnd(SaveCondition):
    """Due when a phase has ended and no snapshot was taken since it did."""

    def __init__(self) -> None:
        self._saved_phase: str | None = None

    def due(self, view: SaveView) -> bool:
        return view.phase_ended and view.phase != self._saved_phase

    def saved(self, view: SaveView) -> None:
        if view.phase_ended:
            self._saved_phase = view.phase


class AnyOf(SaveCondition):
    """Due when any of its conditions is; a save resets them all."""

    def __init__(self, conditions: list[SaveCondition]) -> None:
        self.conditions = conditions

    def due(self, view: SaveView) -> bool:
        return any(condition.due(view) for condition in self.conditions)

    def saved(self, view: SaveView) -> None:
        for condition in self.conditions:
            condition.saved(view)


def any_of(*conditions: SaveCondition) -> AnyOf:
    return AnyOf(list(conditions))


KEYS = {"every_seconds", "every_steps", "every_episodes", "at_phase_end"}


def from_save(save: Mapping[str, Any], clock: Clock = arl_time.monotonic) -> AnyOf:
    """The condition for an experiment file's ``save:`` table (``on_signal`` and user
    conditions are the caller's); an empty table is never due."""
    unknown = sorted(save.keys() - KEYS - {"on_signal"})
    if unknown:
        raise ArlError(f"unknown save setting(s) {unknown}; use {sorted(KEYS | {'on_signal'})}")
    conditions: list[SaveCondition] = []
    if "every_seconds" in save:
        conditions.append(EverySeconds(save["every_seconds"], clock))
    if "every_steps" in save:
        conditions.append(EverySteps(save["every_steps"]))
    if "every_episodes" in save:
        conditions.append(EveryEpisodes(save["every_episodes"]))
    if save.get("at_phase_end", False):
        conditions.append(AtPhaseEnd())
    return AnyOf(conditions)
