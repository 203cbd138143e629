"""kill -9 of a whole arl-run mid-write: the store stays readable and consistent, and the
next arl-run on it marks the dead run INTERRUPTED. On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, Select, func, select, text

from arl.store.engine import open_store
from arl.store.query import run_counts
from arl.store.schema import Base, EnvironmentStepRow, EpisodeRow, EventRow, PhaseRow, RunRow
from arl.testing import LEAK_TOKEN_VARIABLE, arl_processes, poll_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EXPERIMENT = """\
uid: {uid}
seed: 7
schedule:
  - train:
      environments:
        - environment:
            name: {env}
            uid: env
            params: {params}
      agents:
        - name: defender
          brain: {{name: arl.dummy:DummyBrain}}
          muscle: {{name: arl.dummy:DummyMuscle}}
          objective: {{name: arl.dummy:DummyObjective}}
          sensors: [env.s0, env.s1]
          actuators: [env.a0, env.a1]
        - name: attacker
          brain: {{name: arl.dummy:DummyBrain}}
          muscle: {{name: arl.dummy:DummyMuscle}}
          objective: {{name: arl.dummy:DummyObjective, params: {{sign: -1}}}}
          sensors: [env.s2, env.s3]
          actuators: [env.a2, env.a3]
      simulation: {{name: vanilla}}
      phase_config: {{mode: train, episodes: 1, workers: 2}}
"""


def write(tmp: Path, uid: str, env: str, params: str) -> str:
    path = tmp / f"{uid}.yml"
    path.write_text(EXPERIMENT.format(uid=uid, env=env, params=params))
    return str(path)


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
    slow = write(arl_run.tmp, "killed", "arl_test_components:SlowEnvironment", "{delay: 0.005, episode_length: 100000}")
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

    done = arl_run.run(write(arl_run.tmp, "after", "arl.dummy:DummyEnvironment", "{episode_length: 5}"))
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
        events = conn.execute(select(EventRow.kind, EventRow.detail).where(EventRow.run_id == killed_id)).all()
    assert [(kind, detail["status"], detail["reason"]) for kind, detail in events] == [
        ("ended_from_outside", "INTERRUPTED", "process died")
    ]
    assert phases == ["interrupted"]
    assert episodes == ["interrupted", "interrupted"]
    check_consistent(store)


def check_consistent(engine: Engine) -> None:
    """Every table reads; no row without its parent; every step stored once, with no more
    actions than its agents took; the backend's own integrity check passes."""
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            conn.execute(select(func.count()).select_from(table)).scalar_one()
        orphans = {
            "episodes": "SELECT count(*) FROM episodes e LEFT JOIN phases p ON e.phase_id = p.id WHERE p.id IS NULL",
            "phases": "SELECT count(*) FROM phases p LEFT JOIN experiment_runs r ON p.run_id = r.id WHERE r.id IS NULL",
            "steps": "SELECT count(*) FROM environment_steps s LEFT JOIN episodes e ON s.episode_id = e.id "
            "WHERE e.id IS NULL",
            "actions": "SELECT count(*) FROM agent_actions a LEFT JOIN episodes e ON a.episode_id = e.id "
            "WHERE e.id IS NULL",
        }
        found = {name: conn.execute(text(sql)).scalar_one() for name, sql in orphans.items()}
        assert found == dict.fromkeys(orphans, 0)
        per_episode = conn.execute(
            text(
                "SELECT e.id, count(s.id), count(DISTINCT s.step), "
                "(SELECT count(*) FROM agent_actions a WHERE a.episode_id = e.id) "
                "FROM episodes e LEFT JOIN environment_steps s ON s.episode_id = e.id GROUP BY e.id"
            )
        ).all()
        for episode, rows, distinct, actions in per_episode:
            assert rows == distinct, f"episode {episode} stored a step twice"
            assert 2 * (rows - 1) <= actions <= 2 * rows, f"episode {episode}: {actions} actions for {rows} steps"
        run_ids = conn.scalars(select(RunRow.id)).all()
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    total = {"environment_steps": 0, "agent_actions": 0}
    for run_id in run_ids:
        counts = run_counts(engine, run_id)
        total = {name: total[name] + counts[name] for name in total}
    with engine.connect() as conn:
        assert total == {
            "environment_steps": conn.execute(text("SELECT count(*) FROM environment_steps")).scalar_one(),
            "agent_actions": conn.execute(text("SELECT count(*) FROM agent_actions")).scalar_one(),
        }
