"""``environment_steps.sim_time``, the run's scaled clock at each step: stored by the
writer's Recorder (on SQLite and PostgreSQL) as its sender gave it, NULL where none came,
also from a frame of an arl before the field; kept by the controllers' store link."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from arl.codec import decode, encode, pack, unpack
from arl.conductors.links import _as_stored
from arl.messages.store import EnvironmentStep
from arl.store.recorder import Recorder
from arl.store.schema import EnvironmentStepRow
from store_writing import T0, begun_recorder


@pytest.fixture
def recorder(store_url: str) -> Iterator[Recorder]:
    with begun_recorder(store_url) as recorder:
        yield recorder


def step(number: int, sim_time: Any) -> EnvironmentStep:
    return EnvironmentStep(0, 0, 0, number, "grid", {"s": 1.0}, {}, False, False, sim_time)


def old_frame(number: int) -> bytes:
    """An environment step as an arl before ``sim_time`` encoded it: without it (and
    without ``info``, which came later still)."""
    frame = unpack(encode(step(number, None)))
    assert len(frame) == 2 + 11
    return pack(frame[:-2])


def test_each_step_stores_the_scaled_time_it_came_with(recorder: Recorder) -> None:
    frames = [
        encode(step(1, T0 + 0.125)),
        encode(step(2, None)),  # a sender that gave none
        encode(step(3, np.float32(2.5))),
        encode(step(4, float("nan"))),  # not a time: stored as none, the step kept
        old_frame(5),
        encode(step(6, "1.5")),  # not a number: the record is malformed, dropped and counted
        encode(step(7, True)),
    ]
    for frame in frames:
        assert recorder.handle(frame) is None
    recorder.commit()
    s = EnvironmentStepRow
    stored = recorder._conn.execute(select(s.step, s.sim_time).order_by(s.id)).all()
    assert [tuple(row) for row in stored] == [(1, T0 + 0.125), (2, None), (3, 2.5), (4, None), (5, None)]
    assert (recorder.counts["environment_steps"], recorder.counts["dropped"]) == (5, 2)


def test_an_old_frame_decodes_with_no_scaled_time_and_the_store_link_keeps_it() -> None:
    assert decode(old_frame(5)) == step(5, None)
    assert decode(encode(step(1, 3.25))).sim_time == 3.25
    stored = _as_stored(step(1, T0 + 1.5))  # the controller's JSON made at the source
    assert (stored.sim_time, stored.sensors) == (T0 + 1.5, '{"s":1.0}')
