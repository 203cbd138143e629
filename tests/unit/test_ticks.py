"""The periodic step statistics (``arl.conductors.ticks``) on an injected clock."""

from __future__ import annotations

import math

import pytest

from arl.conductors.ticks import METRIC_NAMES, Summary, TickStats, nearest_rank, to_metrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_window_is_due_after_its_interval_and_taking_it_starts_the_next() -> None:
    clock = Clock()
    stats = TickStats(10, clock)
    for ms in range(1, 101):  # 1 ms, 2 ms, ... 100 ms
        stats.add(ms / 1000)
    clock.now += 9.999
    assert not stats.due()
    clock.now += 0.001
    assert stats.due()
    summary = stats.take()
    assert summary is not None
    assert (summary.steps, summary.seconds, summary.steps_per_s) == (100, pytest.approx(10), pytest.approx(10))
    assert (summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.max_ms) == pytest.approx((50, 90, 99, 100))
    assert not stats.due()  # a new window began at the take
    assert stats.take() is None  # and has no steps yet
    clock.now += 4
    stats.add(0.002)
    stats.add(0.001)
    clock.now += 1
    last = stats.take()  # taken before it is due: a phase's last, short window
    assert last == Summary(2, 5.0, 0.4, 1.0, 2.0, 2.0, 2.0)  # over the 5 s since the empty take


def test_percentiles_are_by_nearest_rank_a_measured_value() -> None:
    assert nearest_rank([7.0], 50) == nearest_rank([7.0], 99) == 7.0
    ordered = [1.0, 2.0, 3.0, 4.0]
    assert [nearest_rank(ordered, p) for p in (0, 25, 26, 50, 51, 90, 99, 100)] == [1, 1, 2, 2, 3, 4, 4, 4]
    clock = Clock()
    stats = TickStats(1, clock)
    for seconds in (0.004, 0.001, 0.003, 0.002):  # in any order
        stats.add(seconds)
    clock.now += 2
    summary = stats.take()
    assert summary is not None
    assert (summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.max_ms) == pytest.approx((2, 4, 4, 4))


def test_metrics_are_named_and_a_stopped_clock_gives_no_rate() -> None:
    summary = Summary(10, 2.0, 5.0, 1.5, 2.5, 3.5, 4.5)
    assert to_metrics(summary) == list(zip(METRIC_NAMES, (5.0, 1.5, 2.5, 3.5, 4.5), strict=True))
    assert METRIC_NAMES == (
        "arl/steps_per_s", "arl/step_ms_p50", "arl/step_ms_p90", "arl/step_ms_p99", "arl/step_ms_max",
    )  # fmt: skip
    stopped = TickStats(5, lambda: 0.0)  # the scaled clock, paused the whole window
    stopped.add(0.01)
    taken = stopped.take()
    assert taken is not None
    assert math.isinf(taken.steps_per_s)
    assert [name for name, _ in to_metrics(taken)] == list(METRIC_NAMES[1:])


@pytest.mark.parametrize("interval", [0, -1, math.inf, math.nan, True, "10"])
def test_an_interval_that_is_not_a_positive_number_of_seconds_is_refused(interval: object) -> None:
    with pytest.raises(ValueError, match="interval must be a number of seconds above 0"):
        TickStats(interval)  # type: ignore[arg-type]
