"""kill -9 of a whole arl-run mid-write: the store stays readable and consistent, and the
next arl-run on it marks the dead run INTERRUPTED. On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, Select, func, inspect, select, text

from arl.store.engine import open_store
from arl.store.schema import Base, EnvironmentStepRow, EpisodeRow, EventRow, PhaseRow, RunRow
from arl.testing import LEAK_TOKEN_VARIABLE, arl_processes, poll_for
from experiment_files import write

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
        events = conn.execute(select(EventRow.kind, EventRow.detail).where(EventRow.run_id == killed_id)).all()
    assert [(kind, detail["status"], detail["reason"]) for kind, detail in events] == [
        ("ended_from_outside", "INTERRUPTED", "process died")
    ]
    assert phases == ["interrupted"]
    assert episodes == ["interrupted", "interrupted"]
    check_consistent(store)


def check_consistent(engine: Engine) -> None:
    """Every table reads; the foreign keys are enforced (so no row is without its parent);
    every step stored once, with no more actions than its agents took; the backend's own
    integrity check passes."""
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            conn.execute(select(func.count()).select_from(table)).scalar_one()
        check_foreign_keys_enforced(conn)
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
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def check_foreign_keys_enforced(conn: Connection) -> None:
    """Every foreign key of the schema exists in the database and is checked on this
    connection: then no row can be without its parent, and counting orphans would prove
    nothing."""
    inspector = inspect(conn)
    for table in Base.metadata.sorted_tables:
        expected = {(fk.name, fk.referred_table.name) for fk in table.foreign_key_constraints}
        found = {(fk["name"], fk["referred_table"]) for fk in inspector.get_foreign_keys(table.name)}
        assert found == expected, table.name
    if conn.dialect.name == "sqlite":
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    else:  # "replica" would skip the triggers that check foreign keys; NOT VALID ones skip old rows
        assert conn.exec_driver_sql("SHOW session_replication_role").scalar() == "origin"
        unchecked = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"
        assert conn.exec_driver_sql(unchecked).scalar() == 0
