"""arl.time: a clock scaled by time_scale that stands still while paused, and comes back
from a snapshot where it stood."""

from __future__ import annotations

import pytest

import arl.time
from arl.time import ScaledClock


class Source:
    """A machine clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_scaled_clock_runs_scale_times_as_fast_and_sleeps_scaled_time() -> None:
    source = Source()
    clock = ScaledClock(4.0, epoch=1_000.0, source=source, sleeper=source.sleep)
    source.now += 2.5
    assert clock.monotonic() == 10.0
    assert clock.time() == 1_010.0
    clock.sleep(8.0)  # 8 s of scaled time: 2 s of the machine's
    assert source.slept == [2.0]
    assert clock.monotonic() == 18.0


def test_a_paused_clock_stands_still_and_goes_on_from_there() -> None:
    source = Source()
    clock = ScaledClock(2.0, source=source)
    source.now += 1.0
    clock.pause()
    clock.pause()  # idempotent
    source.now += 50.0  # a long pause: no time for the components
    assert clock.paused
    assert clock.monotonic() == 2.0
    clock.resume()
    clock.resume()
    source.now += 1.0
    assert clock.monotonic() == 4.0


def test_a_clock_comes_back_from_a_snapshot_where_it_stood() -> None:
    source = Source()
    clock = ScaledClock(3.0, epoch=5.0, source=source)
    source.now += 2.0
    state = clock.state()
    resumed = ScaledClock(source=Source())  # another process, after a crash
    resumed.restore(state)
    assert (resumed.monotonic(), resumed.scale, resumed.time()) == (6.0, 3.0, 11.0)


def test_the_module_reads_the_process_clock_and_refuses_a_scale_that_is_no_speed() -> None:
    source = Source()
    old = arl.time.set_clock(ScaledClock(10.0, epoch=0.0, source=source, sleeper=source.sleep))
    try:
        source.now += 1.0
        assert arl.time.monotonic() == 10.0
        assert arl.time.time() == 10.0
        arl.time.sleep(5.0)
        assert source.slept == [0.5]
    finally:
        arl.time.set_clock(old)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="more than 0"):
            ScaledClock(bad)
