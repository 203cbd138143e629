"""arl.results and ``arl-run results`` on a store a real run wrote, on SQLite and PostgreSQL.

The dummy experiment runs once per module and backend (2 phases, 2 agents, 10 steps an
episode); what the results say is checked against the store's rows read with the
database's own driver (sqlite3, psycopg), not through arl.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import arl.results as results
from arl.cli import main
from arl.store.engine import open_store, sqlite_path
from arl.testing import poll_for
from store_fixtures import BACKENDS

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ROOT / "tests" / "components"
DUMMY = ROOT / "experiments" / "dummy.yml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SENSORS = [f"sensors.env.s{i}" for i in range(10)]
STEP_COLUMNS = ["episode_id", "phase", "worker", "episode", "step", "env_uid", "terminated", "truncated", "sim_time"]
ACTION_COLUMNS = ["episode_id", "phase", "worker", "episode", "step", "agent", "objective", "policy_version"]
EXPECTED_COLUMNS = {
    "steps": {*STEP_COLUMNS, *SENSORS, "rewards.env.reward"},
    "actions": {
        *ACTION_COLUMNS,
        *(f"inputs.env.s{i}" for i in range(10)),
        *(f"setpoints.env.a{i}" for i in range(10)),
        "rewards.env.reward",
    },
    "episodes": {
        "episode_id", "phase", "phase_name", "mode", "worker", "episode", "started_at", "ended_at", "steps",
        "end_reason", "return.attacker", "return.defender", "rewards.env.reward",
    },
}  # fmt: skip
STORED_ROWS = {"steps": 20, "actions": 40, "episodes": 2}
RAW_TABLE = {"steps": "environment_steps", "actions": "agent_actions", "episodes": "episodes"}


# -- the store and the run ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def module_store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty store for this module: a SQLite file, or a database on the session's
    PostgreSQL server (``store_fixtures``; skipped where there is none)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('results') / 'arl.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


def arl_env(private: str) -> dict[str, str]:
    """The environment tests/conftest.py's ArlRun gives arl-run."""
    env = {**os.environ, "PYTHONPATH": str(COMPONENTS), "TMPDIR": private}
    env.pop("PYTHONWARNINGS", None)
    env.pop("ARL_STORE_URL", None)
    return env


@dataclass(frozen=True)
class Stored:
    url: str
    tmp: Path


@pytest.fixture(scope="module")
def dummy(module_store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Stored:
    """The dummy experiment, run once into the module's store by the real ``arl-run``."""
    tmp = tmp_path_factory.mktemp("dummy")
    private = tempfile.mkdtemp(prefix="arl-res-")  # short: ipc socket paths are limited
    try:
        done = subprocess.run(
            [sys.executable, "-m", "arl.cli", str(DUMMY), "--store", module_store_url,
             "--checkpoint-dir", str(tmp / "ckpt")],
            env=arl_env(private), cwd=tmp, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        shutil.rmtree(private, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    return Stored(module_store_url, tmp)


def raw(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read with the database's own driver, bypassing arl and SQLAlchemy."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return db.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as db:
        return db.execute(sql.encode()).fetchall()


def cli(*args: str) -> Any:
    """``arl-run`` in this process; stdout and stderr apart."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- listing and showing ------------------------------------------------------------------------


def test_runs_lists_the_run_finished_with_its_counts(dummy: Stored) -> None:
    runs = results.runs(dummy.url)
    assert len(runs) == 1
    run = runs.iloc[0]
    assert (run["uid"], run["experiment_uid"], run["status"], run["end_reason"]) == (
        "dummy-run", "dummy", "FINISHED", "completed",
    )  # fmt: skip
    assert (run["phases"], run["episodes"], run["steps"], run["actions"]) == (2, 2, 20, 40)
    assert run["seed"] == 42
    assert 0 < run["duration_s"] < 120
    assert run["ended_at"] > run["started_at"]
    assert results.runs(dummy.url, status="failed").empty
    assert len(results.runs(dummy.url, uid="dummy*", experiment="dummy", status="finished", last=1)) == 1
    assert results.runs(dummy.url, uid="other*").empty
    assert results.runs(dummy.url, experiment="nope").empty


def test_a_store_may_be_an_open_engine_which_is_left_open(dummy: Stored) -> None:
    engine = open_store(dummy.url)
    try:
        assert list(results.runs(engine)["uid"]) == ["dummy-run"]
        assert list(results.phases("dummy-run", engine)["name"]) == ["phase_0", "phase_1"]
    finally:
        engine.dispose()


def test_a_store_may_be_the_path_of_a_sqlite_file(dummy: Stored) -> None:
    path = sqlite_path(dummy.url)
    if path is None:
        pytest.skip("the store is not a SQLite file")
    assert list(results.runs(Path(path))["uid"]) == ["dummy-run"]


def test_results_list_prints_a_table_and_parsable_json_and_csv(dummy: Stored) -> None:
    table = cli("results", "list", "--store", dummy.url)
    assert table.exit_code == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:3] == ["uid", "id", "status"]
    assert row.split()[:3] == ["dummy-run", "1", "FINISHED"]
    assert row.split()[-4:] == ["2", "2", "20", "completed"]

    listed = json.loads(cli("results", "list", "--store", dummy.url, "--format", "json").stdout)
    assert [(r["uid"], r["status"], r["steps"], r["actions"]) for r in listed] == [("dummy-run", "FINISHED", 20, 40)]
    assert listed[0]["started_at"].endswith("+00:00")

    rows = list(csv.DictReader(io.StringIO(cli("results", "list", "--store", dummy.url, "--format", "csv").stdout)))
    assert [(r["uid"], r["status"], r["steps"]) for r in rows] == [("dummy-run", "FINISHED", "20")]

    nothing = cli("results", "list", "--store", dummy.url, "--status", "failed")
    assert (nothing.exit_code, nothing.stdout) == (0, "")


def test_results_show_prints_the_run_its_phases_and_returns(dummy: Stored) -> None:
    shown = cli("results", "show", "dummy-run", "--store", dummy.url)
    assert shown.exit_code == 0, shown.stderr
    out = shown.stdout
    assert out.startswith("run dummy-run (run id 1): FINISHED\n")
    assert "seed         42" in out
    assert "2 phases, 2 episodes, 20 steps, 40 actions, 2 checkpoints" in out
    assert any(line.split()[:3] == ["0", "phase_0", "train"] for line in out.splitlines())
    assert any(line.split()[:3] == ["1", "phase_1", "test"] for line in out.splitlines())
    defender = dict(
        raw(
            dummy.url,
            'select p."index", sum(a.objective) from agent_actions a join episodes e on a.episode_id = e.id '
            "join phases p on e.phase_id = p.id where a.agent = 'defender' group by p.\"index\"",
        )
    )
    episodes, events = out.split("\nepisodes\n")[1].split("\n\nevents\n")
    episode_lines = [line.split() for line in episodes.splitlines()[1:]]
    assert episode_lines == [
        ["phase_0", "0", "0", "10", "terminated", f"{-defender[0]:.3f}", f"{defender[0]:.3f}"],
        ["phase_1", "0", "0", "10", "terminated", f"{-defender[1]:.3f}", f"{defender[1]:.3f}"],
    ]
    # The run's layout first, then the brains saved after the train phase, one event each.
    # (Where the run's control API was, arl-run ctl's, aside.)
    event_lines = [line for line in events.splitlines()[1:] if line.split()[2] != "control"]
    assert [line.split()[2] for line in event_lines] == ["layout", "brain_saved", "brain_saved"]
    assert sorted(line.split("agent=")[1].split(",")[0] for line in event_lines[1:]) == ["attacker", "defender"]


def test_events_are_a_frame_too(dummy: Stored) -> None:
    frame = results.events("dummy-run", dummy.url)
    assert list(frame.columns) == ["at", "kind", "detail"]
    frame = frame[frame["kind"] != "control"].reset_index(drop=True)  # (arl-run ctl's)
    assert list(frame["kind"]) == ["layout", "brain_saved", "brain_saved"]
    assert frame["detail"][0]["agent_processes"] == [["defender", "attacker"]]
    saved = list(frame["detail"])[1:]
    assert {d["agent"] for d in saved} == {"attacker", "defender"}
    assert all(d["phase"] == "phase_0" and len(d["sha256"]) == 64 for d in saved)


def test_a_run_that_logged_no_metrics_has_an_empty_frame_and_says_so(dummy: Stored) -> None:
    """The dummy components log none (tests/e2e/test_metrics_run.py lists a run's that do)."""
    frame = results.metrics("dummy-run", dummy.url)
    assert list(frame.columns) == ["phase", "phase_name", "agent", "worker", "name", "step", "value", "time"]
    assert frame.empty
    done = cli("results", "metrics", "dummy-run", "--store", dummy.url)
    assert (done.exit_code, done.stdout, done.stderr) == (0, "", "the run logged no metrics\n")
    filtered = cli("results", "metrics", "dummy-run", "--name", "loss", "--format", "csv", "--store", dummy.url)
    assert filtered.stdout == "phase,phase_name,agent,worker,name,step,value,time\n"


def test_an_unknown_run_is_an_error_naming_the_nearest_uid(dummy: Stored) -> None:
    with pytest.raises(results.RunNotFound) as caught:
        results.episodes("dumy-run", dummy.url)
    assert caught.value.suggestions == ["dummy-run"]
    done = subprocess.run(
        [sys.executable, "-m", "arl.cli", "results", "show", "dumy-run", "--store", dummy.url],
        capture_output=True, text=True, timeout=60, env=arl_env(str(dummy.tmp)),
    )  # fmt: skip
    assert done.returncode == 1
    assert "error: no run 'dumy-run'" in done.stderr
    assert "did you mean 'dummy-run'?" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_run_is_found_by_its_id_too(dummy: Stored) -> None:
    assert list(results.phases(1, dummy.url)["name"]) == ["phase_0", "phase_1"]
    assert list(results.phases("1", dummy.url)["mode"]) == ["train", "test"]
    assert cli("results", "show", "7", "--store", dummy.url).exit_code == 1


# -- the numbers ----------------------------------------------------------------------------------


def test_episodes_hold_each_agents_return_and_the_summed_rewards(dummy: Stored) -> None:
    episodes = results.episodes("dummy-run", dummy.url)
    assert list(episodes["phase_name"]) == ["phase_0", "phase_1"]
    assert list(episodes["mode"]) == ["train", "test"]
    assert list(episodes["steps"]) == [10, 10]
    assert list(episodes["end_reason"]) == ["terminated", "terminated"]
    expected = raw(
        dummy.url,
        'select p."index", a.agent, sum(a.objective), count(*) from agent_actions a '
        "join episodes e on a.episode_id = e.id join phases p on e.phase_id = p.id "
        'group by p."index", a.agent',
    )
    assert len(expected) == 4
    for phase, agent, total, actions in expected:
        assert actions == 10
        stored = episodes.loc[episodes["phase"] == phase, f"return.{agent}"].item()
        assert stored == pytest.approx(total, rel=1e-12, abs=1e-12)
    # Objectives of sign 1 and -1 on one reward.
    assert list(episodes["return.attacker"]) == pytest.approx(list(-episodes["return.defender"]), rel=1e-12)
    rewards = {}
    for episode_id, text in raw(dummy.url, "select episode_id, rewards from environment_steps"):
        reward = (json.loads(text) if isinstance(text, str) else text)["env.reward"]
        rewards[episode_id] = rewards.get(episode_id, 0.0) + reward
    for episode_id, total in rewards.items():
        stored = episodes.loc[episodes["episode_id"] == episode_id, "rewards.env.reward"].item()
        assert stored == pytest.approx(total, rel=1e-12)

    tidy = results.returns("dummy-run", dummy.url)
    assert list(tidy.columns) == ["phase", "phase_name", "mode", "worker", "episode", "agent", "return"]
    assert len(tidy) == 4
    assert tidy["return"].sum() == pytest.approx(0.0, abs=1e-9)


def test_steps_and_actions_spread_their_json_into_columns(dummy: Stored) -> None:
    steps = results.steps("dummy-run", dummy.url)
    assert set(steps.columns) == EXPECTED_COLUMNS["steps"]
    assert list(steps.columns[: len(STEP_COLUMNS)]) == STEP_COLUMNS
    assert len(steps) == 20
    assert list(steps["step"][:10]) == list(range(1, 11))
    assert steps["terminated"].sum() == 2
    assert steps["sim_time"].dtype == "float64"  # numbers, NaN where a step has none
    assert len(results.steps("dummy-run", dummy.url, phase="phase_1")) == 10
    assert len(results.steps("dummy-run", dummy.url, phase=0)) == 10
    actions = results.actions("dummy-run", dummy.url)
    assert set(actions.columns) == EXPECTED_COLUMNS["actions"]
    assert len(actions) == 40
    defender = actions[actions["agent"] == "defender"]
    assert defender["inputs.env.s0"].notna().all()
    assert defender["inputs.env.s5"].isna().all()  # the attacker's sensor
    assert actions["policy_version"].isna().all()  # the dummy muscle gives no versions


# -- export and plot ---------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["steps", "actions", "episodes"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_reads_back_with_every_stored_row(dummy: Stored, tmp_path: Path, table: str, fmt: str) -> None:
    import pandas as pd

    path = tmp_path / f"{table}.{fmt}"
    done = cli("results", "export", "dummy-run", "--table", table, "-o", str(path), "--store", dummy.url)
    assert done.exit_code == 0, done.stderr
    stored = raw(dummy.url, f"select count(*) from {RAW_TABLE[table]}")[0][0]
    assert stored == STORED_ROWS[table]
    assert done.stdout == f"{stored} rows of {table} written to {path}\n"
    frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    assert len(frame) == stored
    assert set(frame.columns) == EXPECTED_COLUMNS[table]
    if table == "steps":
        (total,) = raw(dummy.url, "select sum(objective) from agent_actions where agent = 'defender'")[0]
        assert frame["rewards.env.reward"].sum() == pytest.approx(total, rel=1e-12)
        assert frame["sensors.env.s3"].dtype == "float64"
    assert not list(tmp_path.glob(".*partial"))


def test_export_in_small_chunks_writes_the_same_rows(dummy: Stored, tmp_path: Path) -> None:
    import pandas as pd

    whole, chunked = tmp_path / "whole.parquet", tmp_path / "chunked.parquet"
    assert results.export("dummy-run", whole, table="actions", store=dummy.url) == 40
    assert results.export("dummy-run", chunked, table="actions", store=dummy.url, chunk_rows=3) == 40
    pd.testing.assert_frame_equal(pd.read_parquet(whole), pd.read_parquet(chunked))


def test_the_returns_plot_is_a_png_of_some_size(dummy: Stored, tmp_path: Path) -> None:
    path = results.plot_returns("dummy-run", tmp_path / "returns.png", dummy.url)
    assert path == tmp_path / "returns.png"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000


def test_results_plot_writes_to_the_run_uid_by_default(dummy: Stored, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    done = cli("results", "plot", "dummy-run", "--store", dummy.url)
    assert done.exit_code == 0, done.stderr
    assert done.stdout == "returns plotted to dummy-run-returns.png\n"
    assert (tmp_path / "dummy-run-returns.png").read_bytes().startswith(PNG_MAGIC)


def test_a_file_that_cannot_be_written_is_an_error(dummy: Stored) -> None:
    for args in (
        ("export", "dummy-run", "-o", "/proc/arl-no/steps.csv"),
        ("plot", "dummy-run", "-o", "/proc/arl-no/returns.png"),
    ):
        done = cli("results", *args, "--store", dummy.url)
        assert done.exit_code == 1
        assert done.stderr.startswith("error: cannot write /proc/arl-no/")
    unknown = cli("results", "export", "dummy-run", "-o", "steps.txt", "--store", dummy.url)
    assert unknown.exit_code == 2  # a usage error, as click's own
    assert "--format csv or parquet" in unknown.stderr


def test_a_store_that_does_not_exist_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    done = cli("results", "list", "--store", url)
    assert done.exit_code == 1
    assert done.stderr == f"error: no store at {tmp_path / 'none.db'}: give --store URL or set ARL_STORE_URL\n"
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(results.StoreNotFound) as caught:
        results.runs(tmp_path / "none.db")
    assert str(caught.value) == f"no store at {tmp_path / 'none.db'}"  # --store is the CLI's
    assert not (tmp_path / "none.db").exists()
    sqlite3.connect(tmp_path / "none.db").close()  # a database, but not a store
    with pytest.raises(results.StoreNotFound):
        results.runs(url)
    assert raw(url, "select name from sqlite_master") == []
    open_store(url).dispose()
    for args in (("list",), ("show", "x"), ("metrics", "x"), ("plot", "x")):
        empty = cli("results", *args, "--store", url)
        assert empty.exit_code == 1
        assert "holds no runs yet" in empty.stderr


# -- a run in progress ---------------------------------------------------------------------------

SLOW = """\
uid: live
seed: 1
schedule:
  - train:
      environments:
        - environment:
            name: arl_test_components:SlowEnvironment
            uid: env
            params: {delay: 0.01, episode_length: 300}
      agents:
        - name: defender
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl.dummy:DummyMuscle}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [env.s0]
          actuators: [env.a0]
      simulation: {name: vanilla}
      phase_config: {mode: train, episodes: 1}
"""


@pytest.fixture
def private_tmp() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="arl-res-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_run_can_be_queried_while_it_runs(store_url: str, tmp_path: Path, private_tmp: str, no_leaks) -> None:
    import pandas as pd

    open_store(store_url).dispose()  # the schema exists before arl-run and the queries race for it
    file = tmp_path / "live.yml"
    file.write_text(SLOW)
    proc = subprocess.Popen(
        [sys.executable, "-m", "arl.cli", str(file), "--store", store_url, "--checkpoint-dir", str(tmp_path / "c")],
        env=arl_env(private_tmp), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def running_with_steps() -> Any:
            runs = results.runs(store_url)
            live = runs[(runs["status"] == "RUNNING") & (runs["steps"] > 0)]
            return live.iloc[0].to_dict() if len(live) else None

        live = poll_for(running_with_steps, timeout=60, interval=0.05, what="a RUNNING run with steps")
        assert pd.isna(live["ended_at"])
        episodes = results.episodes("live", store_url)
        assert len(episodes) == 1
        assert 0 < episodes["steps"].item() < 300
        assert episodes["return.defender"].item() > 0
        shown = cli("results", "show", "live", "--store", store_url)
        assert shown.stdout.startswith("run live (run id 1): RUNNING\n")
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    done = results.runs(store_url).iloc[0]
    assert (done["status"], done["steps"], done["actions"]) == ("FINISHED", 300, 300)


def test_results_compare_puts_runs_side_by_side(dummy: Stored) -> None:
    defender = dict(
        raw(
            dummy.url,
            'select p."index", sum(a.objective) from agent_actions a join episodes e on a.episode_id = e.id '
            "join phases p on e.phase_id = p.id where a.agent = 'defender' group by p.\"index\"",
        )
    )
    shown = cli("results", "compare", "dummy-run", "1", "--store", dummy.url)
    assert shown.exit_code == 0, shown.stderr
    header, *rows = [line.split() for line in shown.stdout.splitlines()]
    assert header == [
        "run", "id", "status", "phase_0/episodes", "phase_0/attacker", "phase_0/defender",
        "phase_1/episodes", "phase_1/attacker", "phase_1/defender",
    ]  # fmt: skip
    assert rows == [["dummy-run", "1", "FINISHED", "1", f"{-defender[0]:.3f}", f"{defender[0]:.3f}",
                     "1", f"{-defender[1]:.3f}", f"{defender[1]:.3f}"]] * 2  # fmt: skip
    frame = results.compare(["dummy-run"], dummy.url)
    assert frame.loc[0, "phase_1/defender"] == pytest.approx(defender[1])
    missing = cli("results", "compare", "dummy-run", "no-such-run", "--store", dummy.url)
    assert missing.exit_code != 0
    assert "no-such-run" in missing.stderr


def test_a_runs_swept_values_are_stored_and_read_back_and_a_run_with_no_actions_is_not_plotted(
    store_url: str, tmp_path: Path
) -> None:
    """The recorder writes the swept values of a run's RunStarted into its row (SQL NULL for
    a run no sweep made); list, compare and the frames read them back, keys in order on
    every backend (PostgreSQL's JSONB keeps none)."""
    from arl.codec import encode
    from arl.errors import ArlError
    from arl.messages.store import PhaseStarted, RunStarted
    from arl.store.recorder import COUNTED, Recorder
    from store_writing import episode

    swept = {"seed": 1, "a.b": [1, "x"]}
    engine = open_store(store_url)
    try:
        for uid, values in (("plain", None), ("swept-0123456789", swept)):
            with engine.connect() as conn:
                recorder = Recorder(conn, dict.fromkeys(COUNTED, 0))
                acted = [PhaseStarted(0, "train", "train", 1.7e9), *episode(0, 0, 0, steps=2)] if values else []
                for record in (RunStarted(uid, None, 1, {}, "0", "host", 1.7e9, values), *acted):
                    assert recorder.handle(encode(record)) is None
                recorder.commit()
    finally:
        engine.dispose()
    assert raw(store_url, "select uid from experiment_runs where swept is null") == [("plain",)]
    assert list(results.runs(store_url)["swept"]) == [None, {"a.b": [1, "x"], "seed": 1}]
    assert list(results.compare(["plain", "swept-0123456789"], store_url).columns) == [
        "run", "id", "status", "a.b", "seed", "train/episodes", "train/attacker", "train/defender",
    ]  # fmt: skip
    listed = cli("results", "list", "--store", store_url, "--format", "csv")
    assert [row["swept"] for row in csv.DictReader(io.StringIO(listed.stdout))] == ["", '{"a.b": [1, "x"], "seed": 1}']
    shown = cli("results", "show", "swept-0123456789", "--store", store_url)
    assert '  swept        a.b=[1,"x"], seed=1\n' in shown.stdout
    with pytest.raises(ArlError, match=r"^run plain \(run id 1\) has no agent actions to plot$"):
        results.plot_runs(["swept-0123456789", "plain"], tmp_path / "runs.png", store_url)
    assert not (tmp_path / "runs.png").exists()
