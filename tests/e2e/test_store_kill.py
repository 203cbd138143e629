"""kill -9 of a whole arl-run mid-write: the store stays readable and consistent, and the
next arl-run on it marks the dead run INTERRUPTED. On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, Select, func, select

from arl.store.engine import open_store
from arl.store.schema import EnvironmentStepRow, EpisodeRow, EventRow, PhaseRow, RunRow
from arl.testing import LEAK_TOKEN_VARIABLE, arl_processes, poll_for
from experiment_files import write
from store_checks import check_consistent

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def store(store_url: str) -> Iterator[Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def scalar(engine: Engine, query: Select[tuple[int]]) -> int:
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def test_kill_9_mid_write_leaves_a_consistent_store_and_the_next_run_interrupts_it(
    arl_run, no_leaks, store_url: str, store: Engine
) -> None:
    arl_run.url = store_url
    slow = write(
        arl_run.tmp,
        uid="killed",
        env="arl_test_components:SlowEnvironment",
        env_params="{delay: 0.005, episode_length: 100000}",
        workers=2,
    )
    proc = arl_run.start(slow)
    steps = select(func.count()).select_from(EnvironmentStepRow)
    poll_for(lambda: scalar(store, steps) >= 40, timeout=30, what="steps in the store")

    os.killpg(proc.pid, signal.SIGKILL)  # arl-run, the governor with its writer, every child
    proc.communicate(timeout=10)
    poll_for(lambda: not arl_processes(os.environ[LEAK_TOKEN_VARIABLE]), timeout=10, what="the run's processes to die")
    with store.connect() as conn:
        killed_id, status = conn.execute(select(RunRow.id, RunRow.status)).one()
    assert status == "RUNNING"  # nobody was left to end it
    assert scalar(store, select(func.count()).select_from(EpisodeRow).where(EpisodeRow.ended_at.is_(None))) == 2
    check_consistent(store)

    done = arl_run.run(write(arl_run.tmp, uid="after", env_params="{episode_length: 5}", workers=2))
    assert done.returncode == 0, done.stderr

    with store.connect() as conn:
        runs = {r.uid: r for r in conn.execute(select(RunRow))}
        assert runs["after"].status == "FINISHED"
        killed = runs["killed"]
        assert (killed.id, killed.status, killed.end_reason) == (killed_id, "INTERRUPTED", "process died")
        assert killed.ended_at is not None
        assert "died without ending the run" in killed.error
        phases = conn.scalars(select(PhaseRow.end_reason).where(PhaseRow.run_id == killed_id)).all()
        episodes = conn.scalars(select(EpisodeRow.end_reason).join(PhaseRow).where(PhaseRow.run_id == killed_id)).all()
        events = conn.execute(
            select(EventRow.kind, EventRow.detail).where(
                EventRow.run_id == killed_id, EventRow.kind.not_in(("layout", "control"))
            )
        ).all()
    assert [(kind, detail["status"], detail["reason"]) for kind, detail in events] == [
        ("ended_from_outside", "INTERRUPTED", "process died")
    ]
    assert phases == ["interrupted"]
    assert episodes == ["interrupted", "interrupted"]
    check_consistent(store)
