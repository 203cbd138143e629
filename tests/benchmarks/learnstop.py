"""The run-level condition of `make bench-learning`'s arl runs, imported by arl's processes
(bench_learning.py puts this folder on their PYTHONPATH).

arl's own RewardThreshold, at the top level, also looks at the phase a worker is in: a
train phase whose exploring episodes happen to average the threshold would end the run
before any test showed it. The bench counts test phases only.
"""

from __future__ import annotations

import statistics
from typing import Annotated

from annotated_types import Ge

from arl.conditions import RunView, TerminationCondition


class TestedThreshold(TerminationCondition):
    """Ends the run once a test phase that completed at least ``episodes`` episodes gave
    ``agent`` a mean return of ``threshold`` or more."""

    __test__ = False  # a benchmark component, not a pytest class

    def __init__(self, agent: str, threshold: float, episodes: Annotated[int, Ge(1)]) -> None:
        self.agent, self.threshold, self.episodes = agent, float(threshold), episodes

    def run_over(self, view: RunView) -> str | None:
        if view.current is not None or not view.phases:  # a worker asking mid-phase
            return None
        latest = view.phases[-1]
        returns = latest.returns.get(self.agent, ())
        if latest.mode == "test" and len(returns) >= self.episodes and statistics.fmean(returns) >= self.threshold:
            return "tested_threshold"
        return None
