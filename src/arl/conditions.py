"""Termination conditions: when does an episode, a phase, a run end?

A condition answers up to three questions, each with a reason (stored as the end reason
of the episode, phase or run) or None to go on:

* :meth:`TerminationCondition.episode_over` after every step: ends the episode;
* :meth:`TerminationCondition.phase_over` after every step and every episode: ends the
  phase (the running episode ends with the same reason);
* :meth:`TerminationCondition.run_over` ends the run: asked by each worker after every
  step and episode, and by the governor after every phase.

The experiment file lists conditions under ``simulation.conditions`` (episode and phase)
and at the top level under ``conditions`` (run). A condition is asked only the questions
of the list it is in, and must answer at least one of them. Workers are asked
separately: a phase condition that fires on one worker ends that worker's phase.

Built-ins: :class:`EnvironmentDone`, :class:`MaxSteps`, :class:`MaxEpisodes`,
:class:`WallClock` and :class:`RewardThreshold`. Users subclass
:class:`TerminationCondition` and name their class in the file.

A constructor's annotations are what the file check holds params to, ranges included
(``Annotated[int, Ge(1)]``): ``MaxSteps`` with ``steps: 0`` or ``"ten"`` is refused
at the param's line before anything runs. The constructors check again for callers in
Python.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from annotated_types import Ge, Gt


@dataclass(frozen=True)
class StepView:
    """What a condition may look at after a step of an episode."""

    step: int  # steps done in this episode, counting from 1
    terminated: bool  # any environment terminated
    truncated: bool  # any environment truncated
    rewards: Mapping[str, float]
    episode: int = 0  # index of the episode in this worker's phase


@dataclass(frozen=True)
class PhaseView:
    """One worker's progress through its phase."""

    phase: str
    worker: int
    episodes: int  # episodes completed by this worker
    steps: int  # steps this worker made in this phase
    elapsed: float  # seconds since the phase began on this worker
    returns: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """Per agent, the return (sum of its objective values) of each completed episode."""
    workers: int = 1  # how many workers run the phase


@dataclass(frozen=True)
class PhaseSummary:
    """An ended phase, over all its workers."""

    name: str
    mode: str
    reason: str
    episodes: int
    steps: int
    returns: Mapping[str, Sequence[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunView:
    """The run so far: its ended phases, and (asked by a worker) that worker's phase."""

    elapsed: float  # seconds since the run started
    phases: Sequence[PhaseSummary]
    current: PhaseView | None = None


class TerminationCondition:
    """Decides whether an episode, a phase or a run is over. Constructed with the file's
    ``params``; override the questions it answers."""

    def episode_over(self, view: StepView) -> str | None:
        """The reason the episode ends now, or None to go on."""
        return None

    def phase_over(self, view: PhaseView) -> str | None:
        """The reason this worker's phase ends now, or None to go on."""
        return None

    def run_over(self, view: RunView) -> str | None:
        """The reason the run ends now (its remaining phases are skipped), or None."""
        return None

    def save_state(self, path: Path) -> None:
        """Write what this condition keeps between questions (a count, a window of
        returns) into ``path``, a folder of its own that arl has created; at step
        boundaries only. The default writes nothing (the built-ins keep nothing: they
        look only at the views they are given). See docs/state.md."""

    def load_state(self, path: Path) -> None:
        """Read back what :meth:`save_state` wrote. The default reads nothing."""

    @classmethod
    def answers(cls) -> set[str]:
        """The questions this class answers: the names of the methods it overrides."""
        return {q for q in QUESTIONS if getattr(cls, q) is not getattr(TerminationCondition, q)}


QUESTIONS = ("episode_over", "phase_over", "run_over")


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

    def __init__(self, steps: Annotated[int, Ge(1)]) -> None:
        if steps < 1:
            raise ValueError(f"MaxSteps needs steps >= 1, got {steps}")
        self.steps = steps

    def episode_over(self, view: StepView) -> str | None:
        return "max_steps" if view.step >= self.steps else None


class MaxEpisodes(TerminationCondition):
    """Ends the phase after ``episodes`` episodes on a worker (palaestrAI's condition;
    ``phase_config.episodes`` says the same)."""

    def __init__(self, episodes: Annotated[int, Ge(1)]) -> None:
        if episodes < 1:
            raise ValueError(f"MaxEpisodes needs episodes >= 1, got {episodes}")
        self.episodes = episodes

    def phase_over(self, view: PhaseView) -> str | None:
        return "max_episodes" if view.episodes >= self.episodes else None


class MaxEnvironmentSteps(TerminationCondition):
    """Ends the phase once its workers have made ``steps`` environment steps in all
    (SEED's ``max_environment_steps``): each worker makes its share, the steps split
    evenly and the first workers taking one more where they do not divide."""

    def __init__(self, steps: Annotated[int, Ge(1)]) -> None:
        if steps < 1:
            raise ValueError(f"MaxEnvironmentSteps needs steps >= 1, got {steps}")
        self.steps = steps

    def share(self, worker: int, workers: int) -> int:
        return self.steps // workers + (1 if worker < self.steps % workers else 0)

    def phase_over(self, view: PhaseView) -> str | None:
        return "max_environment_steps" if view.steps >= self.share(view.worker, view.workers) else None


class WallClock(TerminationCondition):
    """Ends the phase (in ``simulation.conditions``) or the run (at the top level) once
    ``seconds`` have passed since it began. Checked after every step."""

    def __init__(self, seconds: Annotated[float, Gt(0)]) -> None:
        if not seconds > 0:
            raise ValueError(f"WallClock needs seconds > 0, got {seconds}")
        self.seconds = seconds

    def _passed(self, elapsed: float) -> str | None:
        return "wall_clock" if elapsed >= self.seconds else None

    def phase_over(self, view: PhaseView) -> str | None:
        return self._passed(view.elapsed)

    def run_over(self, view: RunView) -> str | None:
        return self._passed(view.elapsed)


class RewardThreshold(TerminationCondition):
    """Ends the phase, or the run, once ``agent`` does well enough: the mean return of its
    last ``window`` episodes reaches ``threshold``.

    In ``simulation.conditions`` it looks at the worker's episodes of the phase; at the
    top level at the episodes of the latest phase (a test phase that shows the skill is
    there ends the run; the phases after it are skipped).
    """

    def __init__(self, agent: str, threshold: float, window: Annotated[int, Ge(1)] = 1) -> None:
        if window < 1:
            raise ValueError(f"RewardThreshold needs window >= 1, got {window}")
        self.agent, self.threshold, self.window = agent, float(threshold), window

    def _reached(self, returns: Mapping[str, Sequence[float]]) -> str | None:
        recent = returns.get(self.agent, ())[-self.window :]
        if len(recent) == self.window and statistics.fmean(recent) >= self.threshold:
            return "reward_threshold"
        return None

    def phase_over(self, view: PhaseView) -> str | None:
        return self._reached(view.returns)

    def run_over(self, view: RunView) -> str | None:
        latest = view.current or (view.phases[-1] if view.phases else None)
        return self._reached(latest.returns) if latest is not None else None
