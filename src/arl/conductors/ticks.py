"""Periodic step statistics of a worker (issue 12, item 8; pamiq-core's
``log_tick_time_statistics_interval``): steps a second and step-time percentiles over
each window of ``interval`` seconds.

Pure: no socket, no thread, the clock injected. The step loop calls :meth:`TickStats.add`
with each step's duration (cheap: an append to a C array of doubles, 8 bytes a step), asks
:meth:`TickStats.due` at step boundaries, and :meth:`TickStats.take` s the window's
:class:`Summary` when it is, to log it and store it as metrics (:func:`to_metrics`).
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PERCENTILES = (50, 90, 99)

METRIC_NAMES = ("arl/steps_per_s", "arl/step_ms_p50", "arl/step_ms_p90", "arl/step_ms_p99", "arl/step_ms_max")
"""The names :func:`to_metrics` gives, in its order."""


@dataclass(frozen=True, slots=True)
class Summary:
    """One window: ``steps`` steps in ``seconds`` of the clock; their durations' nearest-rank
    percentiles and maximum, in milliseconds."""

    steps: int
    seconds: float
    steps_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class TickStats:
    """Step durations gathered over windows of ``interval`` seconds of ``clock``.

    A window begins when the object is made and again at each :meth:`take`. ``clock`` is
    the machine's monotonic clock by default: steps a second then count the wall time,
    pauses included (pass ``arl.time.monotonic`` for the run's scaled clock, which stops
    while paused).
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0 < interval < math.inf:
            raise ValueError(f"the statistics' interval must be a number of seconds above 0, not {interval!r}")
        self.interval = float(interval)
        self._clock = clock
        self._durations = array("d")
        self._began = clock()

    def add(self, seconds: float) -> None:
        """Count one step that took ``seconds``."""
        self._durations.append(seconds)

    def due(self) -> bool:
        """Whether the window has lasted ``interval`` seconds."""
        return self._clock() - self._began >= self.interval

    def take(self) -> Summary | None:
        """The window so far (due or not: a phase's end takes its last, short one), and a
        new window from now; None when no step was added in it."""
        now = self._clock()
        durations, seconds = self._durations, now - self._began
        self._durations, self._began = array("d"), now
        if not durations:
            return None
        ordered = sorted(durations)
        p50, p90, p99 = (1000 * nearest_rank(ordered, p) for p in PERCENTILES)
        rate = len(ordered) / seconds if seconds > 0 else math.inf
        return Summary(len(ordered), seconds, rate, p50, p90, p99, 1000 * ordered[-1])


def nearest_rank(ordered: Sequence[float], percent: float) -> float:
    """The ``percent``-th percentile of ``ordered`` (sorted, not empty) by the nearest-rank
    method: the smallest value with at least ``percent`` % of the values at or below it,
    ``ordered[ceil(percent / 100 * n) - 1]``. Always a duration that was measured, never
    an interpolation between two (with few steps, p99 is the slowest)."""
    rank = math.ceil(percent / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def to_metrics(summary: Summary) -> list[tuple[str, float]]:
    """A window as (name, value) metrics: :data:`METRIC_NAMES`, in that order. A window
    with no clock time between its ends (a stopped clock) has no steps-a-second value."""
    values = (summary.steps_per_s, summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.max_ms)
    return [(name, value) for name, value in zip(METRIC_NAMES, values, strict=True) if math.isfinite(value)]
