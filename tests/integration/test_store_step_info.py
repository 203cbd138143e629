"""``environment_steps.info``: stored by the writer's Recorder (SQLite and PostgreSQL) as
the JSON text its environment's host made, NULL where none came, also from frames of an
arl before the field; kept by the controllers' store link."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from types import MappingProxyType

import pytest
from sqlalchemy import select

from arl import results
from arl.codec import decode, encode, pack, unpack
from arl.conductors.links import _as_stored
from arl.messages.store import EnvironmentStep
from arl.stepinfo import info_text
from arl.store.recorder import Recorder
from arl.store.schema import EnvironmentStepRow
from store_writing import T0, begun_recorder


@pytest.fixture
def recorder(store_url: str) -> Iterator[Recorder]:
    with begun_recorder(store_url) as recorder:
        yield recorder


def step(number: int, info: str | None) -> EnvironmentStep:
    return EnvironmentStep(0, 0, 0, number, "grid", {"s": 1.0}, {}, False, False, T0 + number, info)


def without_info(number: int) -> bytes:
    """A step as an arl before ``info`` encoded it: the field left out."""
    frame = unpack(encode(step(number, None)))
    assert len(frame) == 2 + 11
    return pack(frame[:-1])


def test_each_step_stores_the_info_it_came_with(recorder: Recorder, store_url: str) -> None:
    frames = [
        encode(step(1, '{"lives":3,"pos":[0.5,1.5]}')),
        encode(step(2, None)),
        without_info(3),
        encode(step(4, '{"_truncated":9000}')),
        encode(step(5, "not json")),  # not an object's text: the record is malformed, dropped and counted
    ]
    for frame in frames:
        assert recorder.handle(frame) is None
    recorder.commit()
    s = EnvironmentStepRow
    stored = recorder._conn.execute(select(s.step, s.info, s.sim_time).order_by(s.id)).all()
    assert [tuple(row) for row in stored] == [
        (1, {"lives": 3, "pos": [0.5, 1.5]}, T0 + 1),
        (2, None, T0 + 2),
        (3, None, T0 + 3),
        (4, {"_truncated": 9000}, T0 + 4),
    ]
    assert (recorder.counts["environment_steps"], recorder.counts["dropped"]) == (4, 1)
    # arl.results reads it back as a column per key (in the order the store gives them:
    # JSONB keeps its own), missing where a step said nothing of it.
    frame = results.steps("exp-1", store_url)
    assert {c for c in frame.columns if c.startswith("info.")} == {"info.lives", "info.pos", "info._truncated"}
    assert frame["info.pos"][0] == [0.5, 1.5]
    assert frame["info.pos"][1:].isna().all()
    assert frame["info._truncated"].tolist()[3] == 9000


def test_a_frame_without_info_decodes_with_none_and_the_store_link_keeps_info() -> None:
    assert decode(without_info(3)) == step(3, None)
    stored = _as_stored(step(1, '{"a":1}'))  # the controller's JSON made at the source
    assert (stored.info, stored.sensors) == ('{"a":1}', '{"s":1.0}')
    assert json.loads(stored.info) == {"a": 1}


def test_a_step_whose_info_is_a_mapping_but_no_dict_is_stored_whole(recorder: Recorder) -> None:
    """The environment's host makes the text (arl.stepinfo); before, a mappingproxy became
    its repr, a JSON string the store refuses: the step itself was dropped."""
    info = MappingProxyType({"lives": 3, "inner": MappingProxyType({"hits": deque([1, 2])})})
    assert recorder.handle(encode(step(1, info_text(info)))) is None
    recorder.commit()
    s = EnvironmentStepRow
    stored = recorder._conn.execute(select(s.step, s.info)).all()
    assert [tuple(row) for row in stored] == [(1, {"lives": 3, "inner": {"hits": [1, 2]}})]
    assert (recorder.counts["environment_steps"], recorder.counts["dropped"]) == (1, 0)
