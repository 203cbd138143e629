"""Metrics and policy versions into the store: the writer's Recorder on one connection,
without its thread or sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, select

from arl.codec import encode
from arl.messages.store import AgentAction, Metrics, RunEnded
from arl.store.recorder import Recorder
from arl.store.schema import AgentActionRow, MetricRow, PhaseRow
from store_writing import T0, begun_recorder


@pytest.fixture
def recorder(store_url: str) -> Iterator[Recorder]:
    with begun_recorder(store_url) as recorder:
        yield recorder


def _conn(recorder: Recorder) -> Connection:
    return recorder._conn


def _handle(recorder: Recorder, *records: Any) -> None:
    for record in records:
        recorder.handle(encode(record))
    recorder.commit()


def test_metrics_are_stored_with_run_phase_agent_and_worker(recorder: Recorder) -> None:
    values = [[None, "loss", 1, 0.5, T0 + 1], [0, "q", 2**40, -1, T0 + 2], [1, "q", 0, 2.5, T0 + 3]]
    _handle(recorder, Metrics(0, "defender", values))
    m = MetricRow
    rows = _conn(recorder).execute(
        select(m.run_id, m.phase_id, m.agent, m.worker, m.name, m.step, m.value, m.time).order_by(m.id)
    )
    phase_id = _conn(recorder).execute(select(PhaseRow.id)).scalar()
    at = [datetime.fromtimestamp(T0 + s, tz=UTC) for s in (1, 2, 3)]
    assert [tuple(row) for row in rows] == [
        (recorder.run_id, phase_id, "defender", None, "loss", 1, 0.5, at[0]),
        (recorder.run_id, phase_id, "defender", 0, "q", 2**40, -1.0, at[1]),
        (recorder.run_id, phase_id, "defender", 1, "q", 0, 2.5, at[2]),
    ]
    assert recorder.counts["metrics"] == 3
    assert recorder.counts["dropped"] == 0


def test_a_malformed_metric_is_dropped_alone_and_a_metric_of_an_unknown_phase_with_its_record(
    recorder: Recorder,
) -> None:
    bad: list[Any] = [
        [0, "", 1, 1.0, T0],  # no name
        [0, "x" * 65, 1, 1.0, T0],  # too long for its column
        [0, "q", 1, "1.0", T0],  # not a number
        [0, "q", 1, float("nan"), T0],  # not finite
        ["0", "q", 1, 1.0, T0],  # a worker that is not one
        [0, "q", 1.5, 1.0, T0],  # a step that is not one
        [0, "q", 1, 1.0],  # too short
        "q",
    ]
    _handle(recorder, Metrics(0, "d", [*bad, [0, "kept", 1, 1.0, T0]]), Metrics(5, "d", [[0, "q", 1, 1.0, T0]]))
    names = _conn(recorder).execute(select(MetricRow.name)).scalars().all()
    assert names == ["kept"]
    assert recorder.counts["metrics"] == 1
    assert recorder.counts["dropped"] == len(bad) + 1


def test_an_action_keeps_its_policy_version_and_one_without_stores_null(recorder: Recorder) -> None:
    _handle(
        recorder,
        AgentAction(0, 0, 0, 1, "d", {}, {"a": 1.0}, {}, 0.5, 2**40),
        AgentAction(0, 0, 0, 1, "a", {}, {}, {}, 0.5),
        AgentAction(0, 0, 0, 2, "d", {}, {}, {}, 0.5, 1.5),  # not a version: the record is dropped
    )
    rows = _conn(recorder).execute(select(AgentActionRow.agent, AgentActionRow.policy_version).order_by("id")).all()
    assert [tuple(row) for row in rows] == [("d", 2**40), ("a", None)]
    assert recorder.counts["dropped"] == 1


def test_metrics_waiting_when_the_run_ends_are_stored(recorder: Recorder) -> None:
    recorder.handle(encode(Metrics(0, "d", [[None, "loss", 1, 0.5, T0]])))
    recorder.handle(encode(RunEnded("FINISHED", None, T0 + 5, "completed")))  # commits at once
    assert recorder.counts["metrics"] == 1
    assert _conn(recorder).execute(select(MetricRow.value)).scalars().all() == [0.5]
