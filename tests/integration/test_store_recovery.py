"""Runs whose process died without ending them (kill -9) are found when a writer next opens
the store and ended INTERRUPTED; every other run is left alone. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from arl.messages.store import PhaseStarted, RunStarted
from arl.store.engine import open_store
from arl.store.query import interrupt_dead_runs, process_alive, this_process
from arl.store.schema import EnvironmentStepRow, EpisodeRow, EventRow, PhaseRow, RunRow, utc
from arl.store.writer import StoreWriter

HOST = socket.gethostname()
T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    short = tempfile.mkdtemp(prefix="arl-")  # ipc paths are limited to about 100 characters
    yield f"ipc://{short}/store"
    shutil.rmtree(short, ignore_errors=True)


@pytest.fixture(scope="module")
def dead() -> tuple[int, datetime]:
    """The pid and start time of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    started_at = utc(psutil.Process(proc.pid).create_time())
    proc.communicate(b"")
    return proc.pid, started_at


def add_run(engine: Engine, uid: str, *, pid: int | None, started_at: datetime | None, host: str = HOST,
            status: str = "RUNNING") -> int:  # fmt: skip
    """A run with a phase, an ended episode and one still open, as a killed writer leaves it."""
    with Session(engine) as session:
        run = RunRow(uid=uid, status=status, seed=1, document={}, arl_version="t", host=host, pid=pid,
                     pid_started_at=started_at, started_at=T0)  # fmt: skip
        session.add(run)
        session.flush()
        phase = PhaseRow(run_id=run.id, index=0, name="p", mode="train", started_at=T0)
        session.add(phase)
        session.flush()
        session.add_all(
            [
                EpisodeRow(phase_id=phase.id, worker=0, index=0, started_at=T0, ended_at=T0, steps=5,
                           end_reason="terminated"),
                EpisodeRow(phase_id=phase.id, worker=0, index=1, started_at=T0),
            ]
        )  # fmt: skip
        session.commit()
        return run.id


def state(engine: Engine, run_id: int) -> tuple[str, str | None, list[str | None], list[str | None]]:
    """A run's status, end reason, and its phases' and episodes' end reasons."""
    with Session(engine) as session:
        run = session.get(RunRow, run_id)
        assert run is not None
        phases = session.scalars(select(PhaseRow.end_reason).where(PhaseRow.run_id == run_id)).all()
        episodes = session.scalars(
            select(EpisodeRow.end_reason).join(PhaseRow).where(PhaseRow.run_id == run_id).order_by(EpisodeRow.index)
        ).all()
        return run.status, run.end_reason, list(phases), list(episodes)


def test_process_alive_tells_a_live_process_from_a_dead_or_reused_pid(dead: tuple[int, datetime]) -> None:
    pid, started_at = this_process()
    assert pid == os.getpid()
    assert process_alive(pid, started_at)
    assert process_alive(pid, None)
    assert not process_alive(pid, started_at - timedelta(seconds=30))  # this pid, another process
    assert not process_alive(*dead)


def test_opening_a_writer_interrupts_the_dead_runs_of_this_host_only(
    engine: Engine, store_url: str, endpoint: str, dead: tuple[int, datetime]
) -> None:
    me, my_start = this_process()
    killed = add_run(engine, "killed", pid=dead[0], started_at=dead[1])
    reused = add_run(engine, "reused", pid=me, started_at=my_start - timedelta(seconds=30))
    alive = add_run(engine, "alive", pid=me, started_at=my_start)
    elsewhere = add_run(engine, "elsewhere", pid=dead[0], started_at=dead[1], host="another-host")
    unknown = add_run(engine, "unknown", pid=None, started_at=None)
    ended = add_run(engine, "ended", pid=dead[0], started_at=dead[1], status="FINISHED")

    with StoreWriter(store_url, endpoint) as writer:
        writer.submit(RunStarted("new", None, 1, {}, "t", HOST, T0.timestamp()))
        writer.submit(PhaseStarted(0, "p", "train", T0.timestamp()))
        writer.flush()
        new = writer.run_id

    interrupted = ("INTERRUPTED", "process died", ["interrupted"], ["terminated", "interrupted"])
    untouched = ("RUNNING", None, [None], ["terminated", None])
    assert state(engine, killed) == interrupted
    assert state(engine, reused) == interrupted
    assert state(engine, alive) == untouched
    assert state(engine, elsewhere) == untouched
    assert state(engine, unknown) == untouched
    assert state(engine, ended) == ("FINISHED", None, [None], ["terminated", None])
    with Session(engine) as session:
        run = session.get(RunRow, killed)
        assert run is not None
        assert run.ended_at is not None
        assert f"pid {dead[0]} on {HOST}" in (run.error or "")
        mine = session.get(RunRow, new)
        assert mine is not None
        assert (mine.pid, mine.pid_started_at, mine.status) == (me, my_start, "RUNNING")  # the writer's process
    assert interrupt_dead_runs(engine) == []  # each run is ended once


def test_a_dead_run_ends_when_it_was_last_heard_of_with_the_steps_it_stored(
    engine: Engine, dead: tuple[int, datetime]
) -> None:
    killed = add_run(engine, "killed", pid=dead[0], started_at=dead[1])
    last_heard = T0 + timedelta(minutes=5)
    with Session(engine) as session:
        phase = session.scalars(select(PhaseRow).where(PhaseRow.run_id == killed)).one()
        session.add(EventRow(run_id=killed, at=last_heard, kind="stop_requested", detail={}))
        open_episode = session.scalars(select(EpisodeRow).where(EpisodeRow.ended_at.is_(None))).one()
        session.add_all(
            EnvironmentStepRow(episode_id=open_episode.id, step=step, env_uid="env", sensors={}, rewards={},
                               terminated=False, truncated=False)
            for step in range(1, 8)
        )  # fmt: skip
        session.commit()
        phase_id, episode_id = phase.id, open_episode.id

    before = datetime.now(UTC)
    assert interrupt_dead_runs(engine) == [killed]
    with Session(engine) as session:
        run = session.get(RunRow, killed)
        phase = session.get(PhaseRow, phase_id)
        episode = session.get(EpisodeRow, episode_id)
        assert run is not None
        assert phase is not None
        assert episode is not None
        # Found later, it ends when it was last heard of, not when it was found.
        assert run.ended_at == phase.ended_at == episode.ended_at == last_heard
        assert episode.steps == 7  # the steps it stored, not NULL
        [event_at] = session.scalars(select(EventRow.at).where(EventRow.kind == "ended_from_outside")).all()
        assert event_at >= before  # the ending itself is dated when it happened
