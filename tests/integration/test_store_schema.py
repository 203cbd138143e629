"""The store's schema on SQLite and PostgreSQL: migrations from an empty database, the
revision check on opening, a row of every table round-tripped, and `arl-run db`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session

from arl.errors import ArlError
from arl.store import migrate
from arl.store.engine import StoreNotFound, connect_engine, describe_location, open_store
from arl.store.schema import (
    AgentActionRow,
    Base,
    CheckpointRow,
    EnvironmentStepRow,
    EpisodeRow,
    EventRow,
    MetricRow,
    PhaseRow,
    RunRow,
)

T0 = datetime(2024, 5, 1, 12, 30, 15, 250_000, tzinfo=UTC)


@pytest.fixture
def bare(store_url: str) -> Iterator[Engine]:
    """An engine on the empty store, the schema neither created nor checked."""
    engine = connect_engine(store_url)
    yield engine
    engine.dispose()


def schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, Base.metadata))


def revision_rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


# -- migrations ----------------------------------------------------------------------------


def test_the_revision_list_is_the_migration_scripts() -> None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert [s.revision for s in reversed(list(scripts.walk_revisions()))] == list(migrate.REVISIONS)
    assert scripts.get_current_head() == migrate.HEAD


def test_migrating_an_empty_database_yields_exactly_the_schema(bare: Engine) -> None:
    assert migrate.upgrade(bare, "the store") == (None, migrate.HEAD)
    assert schema_differences(bare) == []
    assert set(inspect(bare).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    assert revision_rows(bare) == [migrate.HEAD]
    assert migrate.upgrade(bare, "the store") == (migrate.HEAD, migrate.HEAD)  # nothing more to do


def test_downgrading_to_nothing_and_upgrading_again(bare: Engine) -> None:
    migrate.upgrade(bare, "the store")
    with bare.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "base")
    with bare.connect() as conn:
        assert migrate.schema_state(conn).empty
    migrate.upgrade(bare, "the store")
    assert schema_differences(bare) == []


def test_opening_an_empty_database_creates_the_schema_through_the_migrations(store_url: str, bare: Engine) -> None:
    open_store(store_url).dispose()
    assert revision_rows(bare) == [migrate.HEAD]
    assert schema_differences(bare) == []


def test_opening_a_store_of_an_older_revision_says_to_upgrade(
    store_url: str, bare: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate.upgrade(bare, "the store")
    head = migrate.HEAD
    monkeypatch.setattr(migrate, "REVISIONS", (*migrate.REVISIONS, "9999"))  # as a later arl would be
    monkeypatch.setattr(migrate, "HEAD", "9999")
    with pytest.raises(ArlError, match=rf"at schema revision {head}, this arl needs 9999\. .*`arl-run db upgrade`"):
        open_store(store_url)


OLD_ROWS = [
    "INSERT INTO experiment_runs (uid, status, seed, document, arl_version, host, started_at) "
    "VALUES ('old', 'FINISHED', 1, '{}', '0.1.0', 'h', '2024-05-01 12:30:15')",
    "INSERT INTO phases (run_id, \"index\", name, mode, started_at) VALUES (1, 0, 'p', 'train', '2024-05-01 12:30:15')",
    "INSERT INTO episodes (phase_id, worker, \"index\", started_at) VALUES (1, 0, 0, '2024-05-01 12:30:15')",
    "INSERT INTO agent_actions (episode_id, step, agent, inputs, setpoints, rewards, objective) "
    "VALUES (1, 1, 'd', '{}', '{}', '{}', 0.5)",
]


def test_a_store_of_the_first_revision_is_refused_then_upgraded_keeping_its_rows(store_url: str, bare: Engine) -> None:
    """Revision 0002 (metrics, policy versions) on a store written before it: opening it
    refuses with the advice, `arl-run db upgrade`'s migration keeps every row, and the
    actions stored before have no policy version."""
    with bare.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0001")
        for statement in OLD_ROWS:
            conn.execute(text(statement))
    with pytest.raises(
        ArlError, match=rf"at schema revision 0001, this arl needs {migrate.HEAD}\. .*`arl-run db upgrade`"
    ):
        open_store(store_url)
    assert migrate.upgrade(bare, "the store") == ("0001", migrate.HEAD)
    assert schema_differences(bare) == []
    with bare.connect() as conn:
        assert conn.execute(text("SELECT step, agent, objective, policy_version FROM agent_actions")).all() == [
            (1, "d", 0.5, None)
        ]
        assert conn.execute(text("SELECT count(*) FROM metrics")).scalar() == 0
    open_store(store_url).dispose()  # at HEAD now


def test_a_store_of_revision_0002_upgrades_with_its_steps_and_they_have_no_sim_time(
    store_url: str, bare: Engine, tmp_path: Path
) -> None:
    """Revisions 0003 (``environment_steps.sim_time``) and 0004 (``experiment_runs.swept``,
    ``environment_steps.info``) on a store of 0002 with steps in it, through `arl-run db
    upgrade` as a user runs it: the steps stay, with no scaled time, info nor swept values;
    down to 0003 drops 0004's columns, down to 0002 drops sim_time, keeping the rows."""
    step = (
        "INSERT INTO environment_steps (episode_id, step, env_uid, sensors, rewards, terminated, truncated) "
        "VALUES (1, 3, 'env', '{\"env.s0\": 0.5}', '{}', true, false)"
    )
    with bare.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0002")
        for statement in (*OLD_ROWS, step):
            conn.execute(text(statement))
    with pytest.raises(
        ArlError, match=rf"at schema revision 0002, this arl needs {migrate.HEAD}\. .*`arl-run db upgrade`"
    ):
        open_store(store_url)
    done = arl_db("upgrade", "--store", store_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert schema_differences(bare) == []
    with bare.connect() as conn:
        assert conn.execute(text("SELECT step, env_uid, terminated, sim_time, info FROM environment_steps")).all() == [
            (3, "env", True, None, None)
        ]
        assert conn.execute(text("SELECT uid, swept FROM experiment_runs")).all() == [("old", None)]
    open_store(store_url).dispose()  # at HEAD now
    with bare.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0003")
    with bare.connect() as conn:
        assert "info" not in {c["name"] for c in inspect(conn).get_columns("environment_steps")}
        assert "swept" not in {c["name"] for c in inspect(conn).get_columns("experiment_runs")}
    with bare.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0002")
    with bare.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("environment_steps")}
        assert "sim_time" not in columns
        assert conn.execute(text("SELECT step, env_uid FROM environment_steps")).all() == [(3, "env")]


def test_opening_a_store_of_a_newer_revision_is_refused(store_url: str, bare: Engine) -> None:
    migrate.upgrade(bare, "the store")
    with bare.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ArlError, match=r"revision 9999, which this arl does not know .* a newer arl"):
        open_store(store_url)
    with pytest.raises(ArlError, match="a newer arl"):
        migrate.upgrade(bare, "the store")


def test_tables_without_a_revision_are_refused_not_guessed_at(store_url: str, bare: Engine) -> None:
    Base.metadata.create_all(bare)  # as arl made stores before it kept revisions
    with pytest.raises(ArlError, match="no schema revision"):
        open_store(store_url)
    with pytest.raises(ArlError, match="no schema revision"):
        migrate.upgrade(bare, "the store")


def test_opening_without_create_refuses_an_empty_database_and_creates_nothing(store_url: str, bare: Engine) -> None:
    with pytest.raises(StoreNotFound, match=f"^no store at {re.escape(describe_location(store_url))}$"):
        open_store(store_url, create=False)
    with bare.connect() as conn:
        assert inspect(conn).get_table_names() == []
    open_store(store_url).dispose()
    open_store(store_url, create=False).dispose()  # there is one now


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("sqlite:///sub/missing.db", StoreNotFound, "^no store at {tmp}/sub/missing.db$"),
        # A store that keeps nothing is refused (test_store_writer), to read as to write.
        ("sqlite://", ArlError, "is an in-memory SQLite database"),
        ("sqlite:///file:arl?mode=memory&uri=true", ArlError, "is an in-memory SQLite database"),
    ],
)
def test_opening_a_sqlite_store_without_create_creates_no_file(
    url: str, error: type[ArlError], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message.format(tmp=re.escape(str(tmp_path)))):
        open_store(url, create=False)
    assert list(tmp_path.iterdir()) == []


def test_several_openers_of_a_new_store_create_it_once(store_url: str, bare: Engine) -> None:
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_at_once() -> None:
        start.wait()
        try:
            open_store(store_url).dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_at_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert revision_rows(bare) == [migrate.HEAD]


# -- every table ---------------------------------------------------------------------------


def test_a_row_of_every_table_round_trips(store_url: str) -> None:
    engine = open_store(store_url)
    big = 2**40  # ids and seeds are 64-bit
    with Session(engine) as session:
        run = RunRow(
            uid="exp", experiment_uid=None, status="RUNNING", seed=big, document={"a": [1, 2.5, None], "b": {"c": "é"}},
            arl_version="0.1.0", host="h", pid=4321, pid_started_at=T0, started_at=T0, ended_at=None,
            end_reason=None, error=None,
        )  # fmt: skip
        session.add(run)
        session.flush()
        phase = PhaseRow(run_id=run.id, index=0, name="train", mode="train", started_at=T0)
        session.add(phase)
        session.flush()
        episode = EpisodeRow(phase_id=phase.id, worker=1, index=2, started_at=T0, ended_at=T0, steps=3, end_reason="x")
        session.add(episode)
        session.flush()
        session.add_all(
            [
                EnvironmentStepRow(episode_id=episode.id, step=0, env_uid="env", sensors={"env.s0": [0.5, -1]},
                                   rewards={"r": 1.0}, terminated=True, truncated=False, sim_time=1.7e9 + 0.125),
                AgentActionRow(episode_id=episode.id, step=0, agent="a", inputs={"env.s0": 0.5}, setpoints={},
                               rewards={"r": -1.0}, objective=0.125, policy_version=big),
                MetricRow(run_id=run.id, phase_id=phase.id, agent="a", worker=None, name="loss", step=big, value=0.25,
                          time=T0),
                CheckpointRow(run_id=run.id, phase_id=phase.id, agent="a", path="/c", sha256="f" * 64, saved_at=T0),
                EventRow(run_id=run.id, at=T0, kind="restart", detail={"why": None}),
            ]
        )  # fmt: skip
        session.commit()
    expected = {
        RunRow: {"seed": big, "document": {"a": [1, 2.5, None], "b": {"c": "é"}}, "pid": 4321, "pid_started_at": T0},
        PhaseRow: {"index": 0, "name": "train", "mode": "train", "started_at": T0, "ended_at": None},
        EpisodeRow: {"worker": 1, "index": 2, "ended_at": T0, "steps": 3, "end_reason": "x"},
        EnvironmentStepRow: {
            "sensors": {"env.s0": [0.5, -1]},
            "terminated": True,
            "truncated": False,
            "sim_time": 1.7e9 + 0.125,
        },
        AgentActionRow: {
            "inputs": {"env.s0": 0.5},
            "setpoints": {},
            "rewards": {"r": -1.0},
            "objective": 0.125,
            "policy_version": big,
        },
        MetricRow: {"agent": "a", "worker": None, "name": "loss", "step": big, "value": 0.25, "time": T0},
        CheckpointRow: {"path": "/c", "sha256": "f" * 64, "saved_at": T0},
        EventRow: {"at": T0, "kind": "restart", "detail": {"why": None}},
    }
    assert {model.__tablename__ for model in expected} == set(Base.metadata.tables)
    with Session(engine) as session:
        for model, values in expected.items():
            row = session.scalars(select(model)).one()
            assert {name: getattr(row, name) for name in values} == values, model.__tablename__
            times = [getattr(row, c) for c in ("started_at", "saved_at", "at", "time") if getattr(row, c, None)]
            assert all(t.tzinfo is UTC for t in times)
    engine.dispose()


# -- arl-run db ----------------------------------------------------------------------------


def arl_db(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arl.cli", "db", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_db_init_upgrade_and_current(store_url: str, bare: Engine, tmp_path: Path) -> None:
    done = arl_db("init", "--store", store_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "created the store" in done.stdout
    assert f"at schema revision {migrate.HEAD}" in done.stdout
    assert schema_differences(bare) == []

    done = arl_db("upgrade", "--store", store_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "already at schema revision" in done.stdout

    done = arl_db("current", cwd=tmp_path, env={**os.environ, "ARL_STORE_URL": store_url})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "up to date"


def test_db_upgrade_creates_an_empty_store_and_current_says_what_is_wrong(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    done = arl_db("current", "--store", url, cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (1, f"error: there is no store at {tmp_path / 'new.db'}")
    assert not (tmp_path / "new.db").exists()

    done = arl_db("upgrade", "--store", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"created the store {tmp_path / 'new.db'} at schema revision {migrate.HEAD}"

    engine = connect_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    done = arl_db("current", "--store", url, cwd=tmp_path)
    assert done.returncode == 1
    assert "schema revision 9999" in done.stdout
    assert "a newer arl" in done.stderr
    assert "Traceback" not in done.stderr
