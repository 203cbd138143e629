"""The store's side of snapshots and resume (``arl.store.marks``) on SQLite and PostgreSQL:
marks taken while a run's writer is flushed, then rows added and the run ended (by its
writer, or from outside as after a crash), then ``rewind``: the run's rows are exactly
those at the marks again, its events all kept, another run in the same store untouched."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, text

from arl.codec import encode
from arl.errors import ArlError
from arl.messages.store import (
    AgentAction,
    CheckpointSaved,
    EnvironmentStep,
    EpisodeEnded,
    EpisodeStarted,
    Event,
    Metrics,
    PhaseEnded,
    PhaseStarted,
    RunEnded,
)
from arl.store import marks as store_marks
from arl.store.engine import open_store
from arl.store.marks import REWOUND, TABLES, checked_marks, marks, rewind, run_keys
from arl.store.query import end_run_at, this_process
from arl.store.recorder import COUNTED, Recorder
from arl.store.writer import StoreWriter
from store_writing import AGENTS, T0, run_started

# The rows of a run, table by table, in the test's own SQL (not arl.store.marks' queries).
_EPISODES = "select e.id from episodes e join phases p on e.phase_id = p.id where p.run_id = :r"
OF_RUN = {
    "experiment_runs": "select * from experiment_runs where id = :r",
    "phases": "select * from phases where run_id = :r",
    "episodes": f"select * from episodes where id in ({_EPISODES})",
    "environment_steps": f"select * from environment_steps where episode_id in ({_EPISODES})",
    "agent_actions": f"select * from agent_actions where episode_id in ({_EPISODES})",
    "metrics": "select * from metrics where run_id = :r",
    "brain_checkpoints": "select * from brain_checkpoints where run_id = :r",
    "events": "select * from events where run_id = :r",
}

Rows = dict[str, list[tuple[Any, ...]]]


def started(uid: str) -> Any:
    """A run's start as its governor records it, on this host (a resumed run's host)."""
    return dataclasses.replace(run_started(uid), host=socket.gethostname())


def rows_of(engine: Engine, run_id: int) -> Rows:
    """Every row of run ``run_id``, whole, table by table, in id order."""
    with engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(f"{sql} order by id"), {"r": run_id})]
            for table, sql in OF_RUN.items()
        }


def total_rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table: conn.execute(text(f"select count(*) from {table}")).scalar_one() for table in OF_RUN}


def plain_marks(engine: Engine, run_id: int) -> dict[str, Any]:
    """What the marks must be, by plain ``max(id)`` over the run's rows."""
    stored = rows_of(engine, run_id)
    ids = {table: max((row[0] for row in stored[table]), default=0) for table in TABLES}
    open_phases = [row[0] for row in stored["phases"] if row[6] is None]  # ended_at
    open_episodes = [row[0] for row in stored["episodes"] if row[5] is None]
    return {"run_id": run_id, **ids, "open_phases": open_phases, "open_episodes": open_episodes}


def steps(phase: int, worker: int, episode: int, numbers: range) -> list[Any]:
    """Steps as a controller records them: an environment step and each agent's action."""
    records: list[Any] = []
    for step in numbers:
        records.append(
            EnvironmentStep(phase, worker, episode, step, "grid", {"grid.obs": np.array([step, 0.5])},
                            {"r": 0.25 * step}, False, False, T0 + 0.5 * step)
        )  # fmt: skip
        records += [
            AgentAction(phase, worker, episode, step, agent, {"grid.obs": [step]}, {"grid.a": step % 2},
                        {agent: 0.5}, float(step), step)
            for agent in AGENTS
        ]  # fmt: skip
    return records


def whole_episode(phase: int, worker: int, episode: int, count: int) -> list[Any]:
    return [
        EpisodeStarted(phase, worker, episode, T0 + episode),
        *steps(phase, worker, episode, range(1, count + 1)),
        EpisodeEnded(phase, worker, episode, count, "terminated", T0 + episode + 1),
    ]


class OtherRun:
    """A second run in the same store, written by a Recorder of its own in between."""

    def __init__(self, url: str) -> None:
        self.engine = open_store(url)
        self.conn = self.engine.connect()
        self.recorder = Recorder(self.conn, dict.fromkeys(COUNTED, 0))
        self.write([started("other"), PhaseStarted(0, "train", "train", T0)])
        self.episodes = 0

    def write(self, records: list[Any]) -> None:
        for record in records:
            assert self.recorder.handle(encode(record)) is None
        self.recorder.commit()

    def episode(self, count: int) -> None:
        self.write(whole_episode(0, 0, self.episodes, count))
        self.episodes += 1

    @property
    def run_id(self) -> int:
        assert self.recorder.run_id is not None
        return self.recorder.run_id

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


@pytest.fixture
def other(url: str) -> Iterator[OtherRun]:
    run = OtherRun(url)
    yield run
    run.close()


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = open_store(url)
    yield engine
    engine.dispose()


def submit(writer: StoreWriter, records: list[Any]) -> None:
    for record in records:
        writer.submit(record)


def run_to_the_snapshot(writer: StoreWriter, other: OtherRun) -> int:
    """Phase 0 whole (a saved brain), phase 1 running: worker 0 in its second episode,
    worker 1 in its first; the other run's rows before, among and after them."""
    other.episode(2)
    submit(writer, [started("main"), Event("layout", {"controllers": 2}, T0), PhaseStarted(0, "a", "train", T0)])
    submit(writer, whole_episode(0, 0, 0, 3))
    submit(writer, [PhaseEnded(0, "completed", T0 + 5), CheckpointSaved(0, "defender", "/c/0", "a" * 64, T0 + 5)])
    submit(writer, [PhaseStarted(1, "b", "train", T0 + 6), *whole_episode(1, 0, 0, 2)])
    writer.flush()
    other.episode(3)
    submit(writer, [EpisodeStarted(1, 0, 1, T0 + 7), *steps(1, 0, 1, range(1, 3))])
    submit(writer, [EpisodeStarted(1, 1, 0, T0 + 7), *steps(1, 1, 0, range(1, 2))])
    submit(writer, [Metrics(1, "defender", [[None, "loss", 1, 0.5, T0 + 7], [0, "q", 1, 1.5, T0 + 7]])])
    writer.flush()
    other.episode(2)  # after the main run's last rows: its marks are found below these
    assert writer.run_id is not None
    return writer.run_id


def after_the_snapshot(writer: StoreWriter, other: OtherRun) -> None:
    """What the main run stores after its snapshot; its workers' episodes end or go on."""
    submit(writer, [*steps(1, 0, 1, range(3, 5)), EpisodeEnded(1, 0, 1, 4, "terminated", T0 + 8)])
    submit(writer, [EpisodeStarted(1, 0, 2, T0 + 8), *steps(1, 0, 2, range(1, 3)), *steps(1, 1, 0, range(2, 4))])
    submit(writer, [Metrics(1, "defender", [[None, "loss", 2, 0.25, T0 + 9]]), Event("stop_requested", {}, T0 + 9)])
    writer.flush()
    other.episode(2)


@pytest.mark.parametrize("ended", ["by_its_writer", "from_outside"])
def test_rewind_puts_the_run_back_at_its_marks_and_keeps_its_events(
    ended: str,
    url: str,
    make_writer: Callable[..., StoreWriter],
    other: OtherRun,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_marks, "FIRST_WINDOW", 2)  # the walk down past the other run's rows, in few rows
    writer = make_writer()
    run_id = run_to_the_snapshot(writer, other)

    taken = marks(engine, run_id)
    assert taken == plain_marks(engine, run_id)
    assert len(taken["open_episodes"]) == 2
    assert len(taken["open_phases"]) == 1
    assert taken == checked_marks(taken, run_id)  # as it comes back from a manifest
    at_snapshot = rows_of(engine, run_id)

    after_the_snapshot(writer, other)
    if ended == "by_its_writer":  # the run went on to its end: phase 1 ended, phase 2 whole
        submit(writer, [PhaseEnded(1, "completed", T0 + 10), CheckpointSaved(1, "defender", "/c/1", "b" * 64, T0 + 10)])
        submit(writer, [PhaseStarted(2, "c", "test", T0 + 11), *whole_episode(2, 0, 0, 2)])
        submit(writer, [RunEnded("FINISHED", None, T0 + 12, "completed")])
        writer.close(settle=False)
    else:  # its governor was killed: the executor ends it, closing what is open
        writer.close(settle=False)
        assert end_run_at(url, run_id, "FAILED", "the governor was killed", "failed") is not None
    at_end = rows_of(engine, run_id)
    other_at_end = rows_of(engine, other.run_id)
    assert at_end["experiment_runs"][0][3] != "RUNNING"

    deleted = rewind(engine, run_id, taken)

    now = rows_of(engine, run_id)
    for table in (*REWOUND, "experiment_runs"):
        assert now[table] == at_snapshot[table], table  # whole rows: open ones reopened, the run RUNNING
    assert now["events"] == at_end["events"]  # every event kept, the ones after the snapshot too
    assert len(now["events"]) > len(at_snapshot["events"])
    assert rows_of(engine, other.run_id) == other_at_end
    assert deleted == {
        **{table: len(at_end[table]) - len(at_snapshot[table]) for table in REWOUND},
        "reopened_phases": 1,
        "reopened_episodes": 2,
    }
    assert min(deleted[t] for t in ("environment_steps", "agent_actions", "metrics", "episodes")) > 0
    totals = total_rows(engine)
    assert all(totals[t] == len(now[t]) + len(other_at_end[t]) for t in OF_RUN)  # nothing else in the store

    with engine.connect() as conn:
        phases, episodes = run_keys(conn, run_id)
    assert sorted(phases) == [0, 1]
    assert sorted(episodes) == [(1, 0, 1), (1, 1, 0)]
    assert sorted(episodes.values()) == taken["open_episodes"]

    # Rewound again (a resume that died before its first snapshot): nothing more goes.
    assert rewind(engine, run_id, taken) == {**dict.fromkeys(deleted, 0)}
    assert rows_of(engine, run_id) == now


def test_marks_of_a_run_without_rows_are_zero_and_rows_added_later_are_above_them(
    make_writer: Callable[..., StoreWriter], other: OtherRun, engine: Engine
) -> None:
    writer = make_writer()
    submit(writer, [started("main")])
    writer.flush()
    assert writer.run_id is not None
    other.episode(3)
    empty = marks(engine, writer.run_id)
    assert empty == {"run_id": writer.run_id, **dict.fromkeys(TABLES, 0), "open_phases": [], "open_episodes": []}
    submit(writer, [PhaseStarted(0, "a", "train", T0), EpisodeStarted(0, 0, 0, T0), *steps(0, 0, 0, range(1, 3))])
    writer.flush()
    assert rewind(engine, writer.run_id, empty)["environment_steps"] == 2
    assert marks(engine, writer.run_id) == empty


# -- refusals -------------------------------------------------------------------------------------


@pytest.fixture
def ended_run(make_writer: Callable[..., StoreWriter], other: OtherRun, url: str) -> tuple[int, Any]:
    """A run ended FAILED after its marks were taken, and the marks."""
    writer = make_writer()
    run_id = run_to_the_snapshot(writer, other)
    engine = open_store(url)
    taken = marks(engine, run_id)
    engine.dispose()
    after_the_snapshot(writer, other)
    writer.close(settle=False)
    assert end_run_at(url, run_id, "FAILED", "killed", "failed") is not None
    return run_id, taken


BAD_MARKS = [
    ({"run_id": 999}, "of run id 999, not of run id"),
    ({"phases": -1}, "mark phases is -1, not an id"),
    ({"metrics": True}, "mark metrics is True, not an id"),
    ({"open_episodes": [1, "2"]}, "open_episodes is .*, not a list of ids"),
    ({"events": None}, "mark events is None"),
]


def test_marks_that_are_not_a_runs_marks_are_refused_and_nothing_changes(
    ended_run: tuple[int, Any], engine: Engine
) -> None:
    run_id, taken = ended_run
    before = rows_of(engine, run_id)
    for change, message in BAD_MARKS:
        with pytest.raises(ArlError, match=message):
            rewind(engine, run_id, {**taken, **change})
    missing = {key: value for key, value in taken.items() if key != "agent_actions"}
    with pytest.raises(ArlError, match="lack agent_actions: it was not written by this arl"):
        rewind(engine, run_id, missing)
    assert rows_of(engine, run_id) == before


def test_a_store_older_than_the_snapshot_is_refused_and_nothing_changes(
    ended_run: tuple[int, Any], engine: Engine
) -> None:
    run_id, taken = ended_run
    with engine.begin() as conn:  # as a backup from before the snapshot would have it
        conn.execute(text("delete from agent_actions where id = :m"), {"m": taken["agent_actions"]})
    before = rows_of(engine, run_id)
    with pytest.raises(ArlError, match=rf"lacks the run's row {taken['agent_actions']} of agent_actions.*backup"):
        rewind(engine, run_id, taken)
    assert rows_of(engine, run_id) == before
    with pytest.raises(ArlError, match="lacks 1 of the run's episodes the snapshot saw open"):
        rewind(engine, run_id, {**taken, "agent_actions": 0, "open_episodes": [*taken["open_episodes"], 10**9]})
    assert rows_of(engine, run_id) == before


def test_a_run_whose_process_still_runs_is_refused(ended_run: tuple[int, Any], engine: Engine) -> None:
    run_id, taken = ended_run
    with engine.begin() as conn:  # RUNNING, written by a live process of this host (not this one)
        conn.execute(text("update experiment_runs set status = 'RUNNING', pid = :p where id = :r"),
                     {"p": os.getppid(), "r": run_id})  # fmt: skip
    with pytest.raises(ArlError, match=rf"is still running \(pid {os.getppid()}\): stop it"):
        rewind(engine, run_id, taken)
    with engine.begin() as conn:
        conn.execute(text("update experiment_runs set host = 'elsewhere' where id = :r"), {"r": run_id})
    with pytest.raises(ArlError, match=r"RUNNING on host elsewhere, and only there .* resume it on elsewhere"):
        rewind(engine, run_id, taken)
    with pytest.raises(ArlError, match="run id 999 is not in the store"):
        rewind(engine, 999, {**taken, "run_id": 999})


def test_a_run_whose_process_is_gone_is_rewound_and_takes_the_new_writers_process(
    ended_run: tuple[int, Any], engine: Engine
) -> None:
    run_id, taken = ended_run
    with engine.begin() as conn:  # RUNNING still: nobody noticed its death yet
        conn.execute(text("update experiment_runs set status = 'RUNNING', pid = 2000000000 where id = :r"),
                     {"r": run_id})  # fmt: skip
    pid, started = this_process()
    rewind(engine, run_id, taken, process=(pid + 1, started))
    with engine.connect() as conn:
        row = conn.execute(text("select status, pid from experiment_runs where id = :r"), {"r": run_id}).one()
    assert tuple(row) == ("RUNNING", pid + 1)
