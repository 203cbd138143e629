"""The StoreWriter against a real SQLite file and a real PostgreSQL database, fed by a
producer's PUSH socket over ipc:// (as controllers feed it) and by the owner's submit (as
the governor does). Fixtures: tests/integration/conftest.py; records: tests/store_writing.py."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from arl.checkpoints import Saved
from arl.codec import encode, pack, unpack
from arl.errors import ArlError
from arl.messages.common import ErrorReply
from arl.messages.store import (
    AgentAction,
    CheckpointSaved,
    EnvironmentStep,
    EpisodeEnded,
    EpisodeStarted,
    Event,
    PhaseEnded,
    PhaseStarted,
    RunEnded,
    RunStarted,
)
from arl.store.engine import open_store
from arl.store.jsontext import to_json_text
from arl.store.query import end_run, end_run_at, find_checkpoint, run_counts
from arl.store.schema import AgentActionRow, EnvironmentStepRow, EpisodeRow, EventRow, PhaseRow, RunRow
from arl.store.writer import StoreWriter
from store_writing import (
    AGENTS,
    STEPS,
    T0,
    Producer,
    begin_run,
    count_steps,
    episode,
    run_started,
    wait_received,
    wait_until,
)

# -- the writer ---------------------------------------------------------------------------


def test_a_full_run_round_trips(
    make_writer: Callable[..., StoreWriter],
    connect: Callable[[], Producer],
    reader: Engine,
    url: str,
) -> None:
    writer = make_writer()
    producer = connect()
    writer.submit(run_started())
    writer.flush()
    run_id = writer.run_id
    assert run_id is not None
    for phase in range(2):
        writer.submit(PhaseStarted(phase, f"phase-{phase}", ("train", "test")[phase], T0 + phase))
        writer.flush()
        base = writer.received
        sent = producer.send(episode(phase, 0, 0) + episode(phase, 1, 0))
        wait_received(writer, base + sent)
        writer.submit(PhaseEnded(phase, "episodes", T0 + phase + 0.5))
    writer.submit(CheckpointSaved(0, "attacker", "/ckpt/attacker", "ab" * 32, T0 + 0.75))
    writer.submit(RunEnded("FINISHED", None, T0 + 10))
    writer.flush()

    expected = {
        "phases": 2,
        "episodes": 4,
        "environment_steps": 40,
        "agent_actions": 80,
        "checkpoints": 1,
    }
    assert writer.counts == {**expected, "metrics": 0, "dropped": 0}
    assert run_counts(reader, run_id) == expected

    with Session(reader) as session:
        run = session.get(RunRow, run_id)
        assert run is not None
        assert (run.uid, run.experiment_uid, run.seed, run.status, run.error) == (
            "exp-1", "file-1", 42, "FINISHED", None,
        )  # fmt: skip
        assert run.document == {"uid": "exp-1", "phases": [{"name": "train"}], "weights": [1, 2, 3]}
        assert run.started_at == datetime.fromtimestamp(T0, UTC)
        assert run.started_at.tzinfo is UTC
        assert run.ended_at == datetime.fromtimestamp(T0 + 10, UTC)

        phases = session.scalars(select(PhaseRow).order_by(PhaseRow.index)).all()
        assert [(p.index, p.name, p.mode, p.end_reason) for p in phases] == [
            (0, "phase-0", "train", "episodes"),
            (1, "phase-1", "test", "episodes"),
        ]
        assert phases[1].ended_at == datetime.fromtimestamp(T0 + 1.5, UTC)

        episodes = session.scalars(select(EpisodeRow).order_by(EpisodeRow.id)).all()
        assert [(e.phase_id, e.worker, e.index, e.steps, e.end_reason) for e in episodes] == [
            (phases[0].id, 0, 0, STEPS, "terminated"),
            (phases[0].id, 1, 0, STEPS, "terminated"),
            (phases[1].id, 0, 0, STEPS, "terminated"),
            (phases[1].id, 1, 0, STEPS, "terminated"),
        ]

        steps = session.scalars(
            select(EnvironmentStepRow)
            .where(EnvironmentStepRow.episode_id == episodes[3].id)
            .order_by(EnvironmentStepRow.step)
        ).all()
        assert [s.step for s in steps] == list(range(STEPS))
        assert steps[3].env_uid == "grid"
        assert steps[3].sensors == {"grid.obs": [3.0, 3.25], "grid.voltage": 0.5}
        assert steps[3].rewards == {"attacker": -0.75, "defender": 0.75}
        assert [(s.terminated, s.truncated) for s in steps[-2:]] == [(False, False), (True, False)]

        actions = session.scalars(
            select(AgentActionRow)
            .where(AgentActionRow.episode_id == episodes[3].id, AgentActionRow.step == 3)
            .order_by(AgentActionRow.agent)
        ).all()
        assert [a.agent for a in actions] == list(AGENTS)
        assert actions[1].inputs == {"grid.voltage": 0.5}
        assert actions[1].setpoints == {"grid.switch": 1, "grid.level": 0.75}
        assert actions[1].rewards == {"defender": 0.5}
        assert actions[1].objective == 3.0

    saved = Saved("/ckpt/attacker", "ab" * 32)  # the folder, and the sha256 to check before loading it
    assert find_checkpoint(url, "exp-1", "phase-0", "attacker") == saved
    assert find_checkpoint(url, "exp-1", None, "attacker") == saved
    assert find_checkpoint(url, str(run_id), "phase-0", "attacker") == saved
    assert find_checkpoint(url, "exp-1", "phase-1", "attacker") is None
    assert find_checkpoint(url, "exp-1", "phase-0", "defender") is None


def test_flush_makes_rows_visible_to_a_second_engine(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer], reader: Engine
) -> None:
    # Neither the batch size nor the timer commits: only the flush can.
    writer = make_writer(batch_rows=1_000_000, flush_interval=3600)
    producer = connect()
    run_id = begin_run(writer)
    base = writer.received
    wait_received(writer, base + producer.send(episode(0, 0, 0)))
    assert count_steps(reader, run_id) == 0

    writer.flush()
    assert count_steps(reader, run_id) == 3 * STEPS
    assert run_counts(reader, run_id)["episodes"] == 1


def test_close_drains_records_sent_just_before(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer], reader: Engine
) -> None:
    writer = make_writer(batch_rows=1_000_000, flush_interval=3600)
    producer = connect()
    run_id = begin_run(writer)
    producer.send(episode(0, 0, 0) + episode(0, 1, 0))
    writer.submit(RunEnded("INTERRUPTED", "stopped by the user", T0 + 5))
    writer.close()

    assert count_steps(reader, run_id) == 2 * 3 * STEPS
    assert writer.counts["dropped"] == 0
    with Session(reader) as session:
        run = session.get(RunRow, run_id)
        assert run is not None
        assert (run.status, run.error) == ("INTERRUPTED", "stopped by the user")
    writer.close()  # a second close does nothing


def test_close_without_settling_after_a_drain_still_commits_everything_submitted(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer], reader: Engine
) -> None:
    """A run's end: the producers exited and were drained; the governor's own last records
    (inproc) still go in when the close does not wait for quiet again."""
    writer = make_writer(batch_rows=1_000_000, flush_interval=3600)
    producer = connect()
    run_id = begin_run(writer)
    producer.send(episode(0, 0, 0))
    writer.drain()
    writer.submit(RunEnded("FINISHED", None, T0 + 5))
    writer.close(settle=False)
    assert count_steps(reader, run_id) == 3 * STEPS
    with Session(reader) as session:
        run = session.get(RunRow, run_id)
        assert run is not None
        assert run.status == "FINISHED"


def test_a_live_reader_sees_progress_without_a_flush(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer], reader: Engine
) -> None:
    writer = make_writer(batch_rows=1_000_000, flush_interval=0.05)
    producer = connect()
    run_id = begin_run(writer)
    producer.send(episode(0, 0, 0))
    wait_until(lambda: count_steps(reader, run_id) == 3 * STEPS, "the first episode's rows")
    producer.send(episode(0, 0, 1))
    wait_until(lambda: count_steps(reader, run_id) == 6 * STEPS, "the second episode's rows")
    assert writer.counts["environment_steps"] == 2 * STEPS


def test_steps_are_committed_while_their_episode_runs(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer], reader: Engine
) -> None:
    # The episode's row is committed first; then only steps and actions arrive, no parent
    # row, no episode end. Each timer commit must still make them visible (on PostgreSQL
    # the COPY once went into a transaction of the driver's that only the episode's end
    # committed, so a crash lost the whole episode).
    writer = make_writer(batch_rows=1_000_000, flush_interval=0.05)
    producer = connect()
    run_id = begin_run(writer)
    records = episode(0, 0, 0)
    producer.send(records[:1])  # EpisodeStarted
    wait_until(lambda: run_counts(reader, run_id)["episodes"] == 1, "the episode's row")
    producer.send(records[1:16])  # five steps of three rows, the episode still running
    wait_until(lambda: count_steps(reader, run_id) == 15, "the first steps", timeout=2)
    producer.send(records[16:31])
    wait_until(lambda: count_steps(reader, run_id) == 30, "the next steps", timeout=2)


def _nested(depth: int, leaf: bytes = b"\x01") -> bytes:
    """A msgpack value nested ``depth`` lists deep (msgpack's own packer stops far earlier)."""
    return b"\x91" * depth + leaf


def _frame(record: Any, **raw_fields: bytes) -> bytes:
    """``record`` encoded, with the named fields replaced by raw msgpack values."""
    message = unpack(encode(record))
    names = [f.name for f in dataclasses.fields(record)]
    parts = [pack(v) for v in message[:2]]
    parts += [raw_fields.get(name, pack(value)) for name, value in zip(names, message[2:], strict=True)]
    return bytes([0x90 + len(parts)]) + b"".join(parts)


NAN = b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"


def test_a_record_nested_too_deep_is_dropped_and_the_writer_lives_on(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer], reader: Engine
) -> None:
    writer = make_writer()
    producer = connect()
    run_id = begin_run(writer)
    deep = b"\x81" + pack("s") + _nested(1000)  # {"s": [[[...1...]]]}, deeper than JSON encoding goes
    deep_nan = b"\x81" + pack("s") + _nested(700, NAN)  # the slower path that turns NaN into null
    too_deep = b"\x81" + pack("s") + _nested(5000)  # deeper than msgpack unpacks
    base = writer.received
    sent = producer.send_raw(
        [
            encode(EpisodeStarted(0, 0, 0, T0)),
            _frame(EnvironmentStep(0, 0, 0, 1, "grid", {}, {}, False, False), sensors=deep),
            _frame(EnvironmentStep(0, 0, 0, 2, "grid", {}, {}, False, False), sensors=deep_nan),
            _frame(EnvironmentStep(0, 0, 0, 3, "grid", {}, {}, False, False), sensors=too_deep),
            _frame(AgentAction(0, 0, 0, 1, "attacker", {}, {}, {}, 0.0), setpoints=deep),
            _frame(Event("deep", {}, T0), detail=deep),  # through SQLAlchemy's JSON serializer
            encode(EnvironmentStep(0, 0, 0, 4, "grid", {"s": 1.0}, {}, False, False)),
        ]
    )
    wait_received(writer, base + sent)
    writer.flush()
    assert writer.error is None
    assert writer.counts["dropped"] == 5
    assert count_steps(reader, run_id) == 1


def test_a_value_the_database_refuses_costs_its_row_only(
    make_writer: Callable[..., StoreWriter], url: str, reader: Engine
) -> None:
    # PostgreSQL cannot store a NUL character in text or JSONB; SQLite can.
    writer = make_writer()
    run_id = begin_run(writer)
    writer.submit(EpisodeStarted(0, 0, 0, T0))
    writer.submit(EnvironmentStep(0, 0, 0, 1, "grid", {"s": 1.0}, {}, False, False))
    writer.submit(EnvironmentStep(0, 0, 0, 2, "grid", {"s": "a\x00b"}, {}, False, False))
    writer.submit(AgentAction(0, 0, 0, 1, "attacker", {}, {"sp": 1.0}, {}, 0.0))
    writer.flush()
    writer.submit(EpisodeEnded(0, 0, 0, 2, "terminated", T0 + 1))
    writer.flush()
    refused = url.startswith("postgresql")
    assert writer.error is None
    assert writer.counts["dropped"] == (1 if refused else 0)
    assert count_steps(reader, run_id) == (2 if refused else 3)
    assert run_counts(reader, run_id)["episodes"] == 1


def test_a_record_of_an_unknown_episode_is_dropped_and_counted(
    make_writer: Callable[..., StoreWriter], reader: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="arl.store")
    writer = make_writer()
    run_id = begin_run(writer)
    writer.submit(EpisodeStarted(0, 0, 0, T0))
    writer.submit(EnvironmentStep(0, 0, 7, 0, "grid", {}, {}, False, False))  # no episode 7
    writer.submit(AgentAction(3, 0, 0, 0, "attacker", {}, {}, {}, 0.0))  # no phase 3
    writer.submit(EpisodeStarted(9, 0, 0, T0))  # no phase 9
    writer.submit(EnvironmentStep(0, 0, 0, 0, "grid", {"s": 1.0}, {}, False, False))
    writer.flush()

    assert writer.counts["dropped"] == 3
    assert (writer.counts["environment_steps"], writer.counts["episodes"]) == (1, 1)
    assert count_steps(reader, run_id) == 1
    dropped = [r.getMessage() for r in caplog.records if r.name == "arl.store"]
    assert len(dropped) == 3
    assert "unknown episode (0, 0, 7)" in dropped[0]


def test_malformed_frames_are_dropped_and_the_rest_stored(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer], reader: Engine
) -> None:
    writer = make_writer()
    producer = connect()
    run_id = begin_run(writer)
    base = writer.received
    sent = producer.send_raw(
        [
            b"\xc1 not msgpack",
            encode(ErrorReply("x", "y", "z", "")),  # a message, but not a store record
            encode(EpisodeStarted(0, 0, 0, T0)),
            encode(EnvironmentStep(0, 0, 0, 0, "grid", ["not", "a", "dict"], {}, False, False)),
            encode(EnvironmentStep(0, 0, 0, 1, "grid", {"s": 1.0}, {}, False, False)),
        ]
    )
    wait_received(writer, base + sent)
    writer.flush()
    assert writer.counts["dropped"] == 3
    assert count_steps(reader, run_id) == 1


def test_numpy_scalars_in_rewards_become_plain_json(make_writer: Callable[..., StoreWriter], reader: Engine) -> None:
    writer = make_writer()
    begin_run(writer)
    rewards = {
        "f32": np.float32(0.5),
        "f64": np.float64(0.25),
        "i64": np.int64(3),
        "b": np.bool_(True),
    }
    writer.submit(EpisodeStarted(0, 0, 0, T0))
    writer.submit(
        EnvironmentStep(0, 0, 0, 0, "grid", {"m": np.eye(2, dtype=np.float32)}, rewards, np.bool_(True), False)
    )
    writer.submit(AgentAction(0, 0, 0, 0, "attacker", {}, {}, rewards, np.float32(1.5)))
    writer.flush()

    plain = {"f32": 0.5, "f64": 0.25, "i64": 3, "b": True}
    with Session(reader) as session:
        step = session.scalars(select(EnvironmentStepRow)).one()
        action = session.scalars(select(AgentActionRow)).one()
    assert step.rewards == plain
    assert type(step.rewards["i64"]) is int
    assert step.rewards["b"] is True
    assert step.sensors == {"m": [[1.0, 0.0], [0.0, 1.0]]}
    assert step.terminated is True
    assert action.rewards == plain
    assert action.objective == 1.5


JSON_FIELDS = {EnvironmentStep: ("sensors", "rewards"), AgentAction: ("inputs", "setpoints", "rewards")}


def _json_at_source(record: Any) -> Any:
    """``record`` with its JSON columns' values made JSON text by the sender."""
    fields = JSON_FIELDS.get(type(record), ())
    return dataclasses.replace(record, **{name: to_json_text(getattr(record, name)) for name in fields})


def test_json_made_by_the_sender_is_stored_as_the_writer_would_make_it(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer], reader: Engine, url: str
) -> None:
    # A sender may make a record's JSON text itself, so that its values are encoded once,
    # where they arise, and not once for the socket and again in the one writer. Each
    # step goes as one multipart message, as a controller sends it.
    writer = make_writer()
    producer = connect()
    run_id = begin_run(writer)
    by_writer, by_sender = episode(0, 0, 0), [_json_at_source(r) for r in episode(0, 0, 1)]
    wrong = [
        EnvironmentStep(0, 0, 1, 99, "grid", "grid.voltage", "{}", False, False),  # text, but no JSON object
        AgentAction(0, 0, 1, 99, "attacker", "{}", "[0.5]", "{}", 0.0),
    ]
    base = writer.received
    sent = 0
    for records in (by_writer, by_sender[:-1] + wrong + by_sender[-1:]):
        messages = [records[:1], *(records[i : i + 3] for i in range(1, len(records) - 1, 3)), records[-1:]]
        for message in messages:
            producer.sock.send_multipart([encode(r) for r in message])
            sent += len(message)
    wait_received(writer, base + sent)
    writer.flush()

    assert writer.counts["dropped"] == 2
    assert count_steps(reader, run_id) == 2 * 3 * STEPS
    columns = {
        "environment_steps": "sensors, rewards",
        "agent_actions": "inputs, setpoints, rewards",
    }
    for name, json_columns in columns.items():
        with reader.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT episode_id, step, {json_columns} FROM {name} ORDER BY id").all()
        episode_ids = sorted({r[0] for r in rows})
        first, second = ([r[1:] for r in rows if r[0] == e] for e in episode_ids)
        assert first == second  # SQLite: the same text; PostgreSQL: the same JSONB
        if url.startswith("sqlite") and name == "environment_steps":
            assert first[3][1] == '{"grid.obs":[3.0,3.25],"grid.voltage":0.5}'


def test_nan_and_infinity_are_stored_as_null(make_writer: Callable[..., StoreWriter], reader: Engine) -> None:
    # JSON has neither; PostgreSQL's JSONB refuses them, so they must not reach it as text.
    writer = make_writer()
    begin_run(writer)
    writer.submit(EpisodeStarted(0, 0, 0, T0))
    sensors = {"nan": math.nan, "inf": np.float32(np.inf), "obs": np.array([0.5, -np.inf]), "ok": 1.5}
    writer.submit(EnvironmentStep(0, 0, 0, 0, "grid", sensors, {"r": np.float64(np.nan)}, False, False))
    writer.submit(AgentAction(0, 0, 0, 0, "attacker", {"in": math.inf}, {"sp": 0.25}, {"r": -math.inf}, 0.0))
    writer.submit(Event("run_condition", {"best": math.nan, "values": [1.0, math.inf]}, T0 + 1))
    writer.flush()

    assert writer.counts["dropped"] == 0
    with Session(reader) as session:
        step = session.scalars(select(EnvironmentStepRow)).one()
        action = session.scalars(select(AgentActionRow)).one()
        event = session.scalars(select(EventRow)).one()
    assert step.sensors == {"nan": None, "inf": None, "obs": [0.5, None], "ok": 1.5}
    assert step.rewards == {"r": None}
    assert (action.inputs, action.setpoints, action.rewards) == ({"in": None}, {"sp": 0.25}, {"r": None})
    assert event.detail == {"best": None, "values": [1.0, None]}


def test_a_database_error_stops_the_writer_and_is_reported(
    make_writer: Callable[..., StoreWriter], reader: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="arl.store")  # the failure is expected
    writer = make_writer()
    begin_run(writer)
    writer.submit(EpisodeStarted(0, 0, 0, T0))
    writer.flush()
    with reader.begin() as conn:
        conn.exec_driver_sql("DROP TABLE agent_actions")
    writer.submit(AgentAction(0, 0, 0, 0, "attacker", {}, {}, {}, 0.0))

    with pytest.raises(ArlError, match="failed") as failed:
        writer.flush()
    assert failed.value.__cause__ is writer.error
    assert "agent_actions" in str(writer.error)
    with pytest.raises(ArlError):
        writer.submit(AgentAction(0, 0, 0, 1, "attacker", {}, {}, {}, 0.0))
    with pytest.raises(ArlError):
        writer.close()
    writer.close()  # closed now: nothing more to report


def test_sqlite_commits_reach_the_database_file_while_the_writer_runs(
    tmp_path: Path, endpoint: str, connect: Callable[[], Producer]
) -> None:
    # A checkpoint (the write-ahead log copied into the database file, which only then
    # grows) runs in a thread of the writer's, after its commits, not inside one of them
    # once the log holds 1,000 pages (SQLite's own way, which 300 rows never reach).
    path = tmp_path / "store.db"
    writer = StoreWriter(f"sqlite:///{path}", endpoint)
    writer.start()
    try:
        begin_run(writer)
        before = path.stat().st_size
        base = writer.received
        wait_received(writer, base + connect().send(episode(0, 0, 0, steps=100)))
        writer.flush()
        wait_until(lambda: path.stat().st_size > before, "the rows to reach the database file")
    finally:
        writer.close()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_sqlite_file_deleted_or_replaced_under_the_writer_fails_it_naming_the_file(
    tmp_path: Path, endpoint: str, how: str
) -> None:
    path = tmp_path / "store.db"
    failures: list[BaseException] = []
    writer = StoreWriter(f"sqlite:///{path}", endpoint, on_failure=failures.append)
    writer.start()
    try:
        begin_run(writer)
        if how == "deleted":
            for leftover in tmp_path.glob("store.db*"):  # as `rm store.db*` would
                leftover.unlink()
        else:
            other = tmp_path / "other.db"
            open_store(f"sqlite:///{other}").dispose()
            other.replace(path)
        writer.submit(EpisodeStarted(0, 0, 0, T0))
        with pytest.raises(ArlError, match=f"the store file {path} was {how}"):
            writer.flush()
        assert [str(f) for f in failures] == [str(writer.error)]
    finally:
        with contextlib.suppress(ArlError):
            writer.close()
    assert (how == "deleted") == (not path.exists())  # nothing made anew in its place


def test_start_fails_clearly_on_a_bad_endpoint(url: str, tmp_path: Path) -> None:
    writer = StoreWriter(url, f"ipc://{tmp_path}/missing/dir/store")
    with pytest.raises(ArlError, match="cannot start the store writer"):
        writer.start()
    writer.close()


def test_end_run_ends_only_an_unfinished_run_and_closes_its_open_rows(
    make_writer: Callable[..., StoreWriter], reader: Engine
) -> None:
    ended = make_writer()
    first = begin_run(ended)
    ended.submit(RunEnded("FINISHED", None, T0 + 1))
    ended.close()
    died = make_writer()  # the same file runs again, and its process dies mid-episode
    second = begin_run(died)
    died.submit(EpisodeStarted(0, 0, 0, T0))
    died.close()

    assert end_run(reader, second, "FAILED", "the governor died") is True
    assert end_run(reader, second, "FAILED", "again") is False
    assert end_run(reader, first, "FAILED", "not this one") is False
    assert end_run(reader, 999, "FAILED", "x") is False
    with Session(reader) as session:
        runs = {r.id: r for r in session.scalars(select(RunRow))}
        assert session.scalar(select(EpisodeRow.end_reason)) == "failed"
        assert session.scalars(select(PhaseRow.end_reason).order_by(PhaseRow.run_id)).all() == ["finished", "failed"]
    assert (runs[first].status, runs[first].error) == ("FINISHED", None)
    assert (runs[second].status, runs[second].error) == ("FAILED", "the governor died")


def test_end_run_at_ends_a_run_and_only_logs_when_the_store_is_broken(
    make_writer: Callable[..., StoreWriter], reader: Engine, url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = make_writer()
    run_id = begin_run(writer)
    writer.close()
    end_run_at(url, run_id, "INTERRUPTED", "stopped at once", reason="second interrupt")
    with Session(reader) as session:
        run = session.get(RunRow, run_id)
        assert run is not None
        assert (run.status, run.error, run.end_reason) == ("INTERRUPTED", "stopped at once", "second interrupt")

    caplog.set_level(logging.ERROR, logger="arl.store")
    end_run_at(f"sqlite:///{tmp_path}", run_id, "FAILED", "x")  # a directory: no store can be opened there
    [logged] = [r.getMessage() for r in caplog.records if r.name == "arl.store"]
    assert logged.startswith(f"store: could not record the end of run id {run_id} in {tmp_path}: ")


def test_a_run_start_that_cannot_be_stored_fails_the_writer_rather_than_drop_the_run(
    make_writer: Callable[..., StoreWriter],
) -> None:
    # Without its run row every later record would be dropped one by one: the run must fail.
    writer = make_writer()
    writer.submit(RunStarted("big", None, 2**64 - 1, {"uid": "big"}, "0.1.0", "testhost", T0))
    with pytest.raises(ArlError, match=r"the run's start cannot be stored|bigint out of range"):
        writer.flush()
    assert writer.counts["dropped"] == 0


def test_long_end_reasons_are_cut_to_their_columns_on_either_backend(
    make_writer: Callable[..., StoreWriter], reader: Engine
) -> None:
    # A condition's reason is its author's text; PostgreSQL refused a long one and failed the run.
    writer = make_writer()
    run_id = begin_run(writer)
    writer.submit(EpisodeStarted(0, 0, 0, T0))
    writer.submit(EpisodeEnded(0, 0, 0, 0, "e" * 500, T0 + 1))
    writer.submit(PhaseEnded(0, "p" * 500, T0 + 2))
    writer.submit(RunEnded("FINISHED", None, T0 + 3, "r" * 500))
    writer.flush()
    assert writer.error is None
    with reader.connect() as conn:
        episode = conn.exec_driver_sql("SELECT end_reason FROM episodes").scalar_one()
        phase = conn.exec_driver_sql("SELECT end_reason FROM phases").scalar_one()
        run = conn.exec_driver_sql(f"SELECT end_reason FROM experiment_runs WHERE id = {run_id}").scalar_one()
    assert (episode, phase, run) == ("e" * 29 + "...", "p" * 61 + "...", "r" * 61 + "...")
