"""Resume, end to end: kill -9 of the whole process tree mid-run, then `arl-run --resume`,
stores exactly the rows an uninterrupted run of the same file stores (two workers, two
phases, the second loading the first's brains); `--from-state` picks a snapshot; a
finished run is skipped."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from arl.state import snapshot
from arl.testing import LEAK_TOKEN_VARIABLE, arl_processes, poll_for
from arl_runner import ArlRun

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

FILE = """\
uid: res
seed: 11
state: {dir: states, save: {every_steps: 100}, keep: {latest: 3}}
schedule:
  - train:
      environments:
        - environment: {name: arl.dummy:DummyEnvironment, uid: env, params: {episode_length: 300}}
      agents:
        - name: defender
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl.dummy:DummyMuscle}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [env.s0, env.s1]
          actuators: [env.a0, env.a1]
        - name: attacker
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl.dummy:DummyMuscle}
          objective: {name: arl.dummy:DummyObjective, params: {sign: -1}}
          sensors: [env.s2, env.s3]
          actuators: [env.a2, env.a3]
      simulation: {name: taking_turns}
      phase_config: {mode: train, episodes: 3, workers: 2}
  - test:
      agents:
        - {name: defender, load: {phase: train}, brain: {name: arl.dummy:DummyBrain},
           muscle: {name: arl.dummy:DummyMuscle}, objective: {name: arl.dummy:DummyObjective},
           sensors: [env.s0, env.s1], actuators: [env.a0, env.a1]}
        - {name: attacker, load: {phase: train}, brain: {name: arl.dummy:DummyBrain},
           muscle: {name: arl.dummy:DummyMuscle}, objective: {name: arl.dummy:DummyObjective, params: {sign: -1}},
           sensors: [env.s2, env.s3], actuators: [env.a2, env.a3]}
      phase_config: {mode: test, episodes: 2, workers: 2}
"""

STEPS = (
    'select p."index", e.worker, e."index", s.step, s.env_uid, s.sensors, s.rewards, s.terminated, s.truncated '
    "from environment_steps s join episodes e on s.episode_id = e.id join phases p on e.phase_id = p.id "
    "order by 1, 2, 3, 4, 5"
)
ACTIONS = (
    'select p."index", e.worker, e."index", a.step, a.agent, a.inputs, a.setpoints, a.rewards, a.objective '
    "from agent_actions a join episodes e on a.episode_id = e.id join phases p on e.phase_id = p.id "
    "order by 1, 2, 3, 4, 5"
)
EPISODES = (
    'select p."index", e.worker, e."index", e.steps, e.end_reason from episodes e '
    "join phases p on e.phase_id = p.id order by 1, 2, 3"
)
PHASES = 'select "index", name, end_reason from phases order by 1'


def _stored(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(db) as conn:
        tables = {name: conn.execute(sql).fetchall() for name, sql in
                  (("steps", STEPS), ("actions", ACTIONS), ("episodes", EPISODES), ("phases", PHASES))}  # fmt: skip
        tables["runs"] = conn.execute("select id, uid, status, end_reason from experiment_runs").fetchall()
        tables["checkpoints"] = conn.execute("select agent from brain_checkpoints order by agent").fetchall()
    return tables


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[object, ...]]]:
    """What an uninterrupted run of FILE stores (the same whatever its save rules)."""
    runner = ArlRun(tmp_path_factory.mktemp("whole"))
    try:
        path = runner.tmp / "res.yml"
        path.write_text(FILE)
        done = runner.run(str(path), "--no-probe")
        assert done.returncode == 0, done.stderr
        return _stored(runner.db)
    finally:
        runner.reap()


@pytest.mark.parametrize("save", ["every_steps: 100", "at_phase_end: true"])
def test_kill_9_of_everything_then_resume_stores_what_an_uninterrupted_run_stores(
    arl_run, no_leaks, whole, save
) -> None:
    path = arl_run.tmp / "res.yml"
    path.write_text(FILE.replace("every_steps: 100", save))
    cut = arl_run.tmp / "cut.db"
    taken = _killed_after_a_snapshot(arl_run, path, "res", "--store", f"sqlite:///{cut}")
    assert len(_stored(cut)["steps"]) < len(whole["steps"])

    resumed = arl_run.run(str(path), "--store", f"sqlite:///{cut}", "--no-probe", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "goes on from snapshot" in resumed.stdout
    assert f"steps {len(whole['steps'])}," in resumed.stdout  # the summary counts the whole run's rows
    assert _stored(cut) == whole
    # The run's scaled time goes on from the snapshot's: each worker's steps, in order, never go back.
    with sqlite3.connect(cut) as conn:
        times = conn.execute(
            "select e.worker, s.sim_time from environment_steps s join episodes e on s.episode_id = e.id "
            'join phases p on e.phase_id = p.id order by p."index", e.worker, e."index", s.step'
        ).fetchall()
    for worker in (0, 1):
        mine = [t for w, t in times if w == worker]
        assert None not in mine
        assert mine == sorted(mine)
    with sqlite3.connect(cut) as conn:
        kinds = [k for (k,) in conn.execute("select kind from events order by id")]
        [(detail,)] = conn.execute("select detail from events where kind = 'resumed'").fetchall()
    # The crash is in the run's history (ended from outside), then the resume, from a
    # snapshot at least as new as the first one seen before the kill.
    assert kinds.index("ended_from_outside") < kinds.index("resumed")
    assert "/states/res/" in detail
    if save.startswith("at_phase_end"):  # the one snapshot: before the test phase was set up
        assert json.loads(detail)["phase"] == "test"
    assert taken

    if save.startswith("every_steps"):  # (once is enough)
        again = arl_run.run(str(path), "--store", f"sqlite:///{cut}", "--no-probe", "--resume")
        assert again.returncode == 0, again.stderr
        assert "FINISHED already; skipped" in again.stdout


def test_from_state_goes_on_from_the_snapshot_named(arl_run, no_leaks) -> None:
    path = arl_run.tmp / "res.yml"
    path.write_text(FILE.replace("keep: {latest: 3}", "keep: {latest: 50}"))
    db = arl_run.tmp / "one.db"
    _killed_after_a_snapshot(arl_run, path, "res", "--store", f"sqlite:///{db}")
    first = snapshot.snapshots(arl_run.tmp / "states", "res")[0]
    resumed = arl_run.run(str(path), "--store", f"sqlite:///{db}", "--no-probe", "--from-state", str(first.path))
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(db) as conn:
        [(status,)] = conn.execute("select status from experiment_runs").fetchall()
        [(detail,)] = conn.execute("select detail from events where kind = 'resumed'").fetchall()
    assert status == "FINISHED"
    assert str(first.path) in detail

    other = arl_run.run(str(path), "--store", f"sqlite:///{db}", "--no-probe", "--from-state", str(arl_run.tmp))
    assert other.returncode == 2
    assert "manifest" in other.stderr


def _alive(arl_run) -> bool:
    return bool(arl_processes(os.environ[LEAK_TOKEN_VARIABLE]))


def _killed_after_a_snapshot(arl_run, path, uid: str, *options: str) -> list[Any]:
    """Run ``path`` until its first snapshot, then kill -9 arl-run (the run's processes,
    in a process group of their own, die with it by PDEATHSIG) and wait until none is
    left; the snapshots taken by the kill."""
    proc = arl_run.start(str(path), *options, "--no-probe")
    poll_for(
        lambda: snapshot.snapshots(arl_run.tmp / "states", uid) or proc.poll() is not None,
        timeout=60, what="a snapshot",
    )  # fmt: skip
    taken = snapshot.snapshots(arl_run.tmp / "states", uid)
    assert proc.poll() is None, proc.communicate()  # (the run must not end before the kill)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    poll_for(lambda: not _alive(arl_run), timeout=10, what="the killed processes to go")
    return taken


@pytest.mark.long(14)
def test_a_run_with_a_central_agent_resumes_after_kill_9(arl_run, no_leaks) -> None:
    """The learner's brain and counts and the inference servers' muscles go into the
    snapshot (the learner first takes every transition sent before the pause); after
    kill -9 the run goes on to finish every episode and its saved brain walks the chain."""
    from test_learning import CENTRAL

    path = arl_run.tmp / "central.yml"
    path.write_text(
        CENTRAL.replace("uid: chain-central", "uid: chain-central\nstate: {dir: states, save: {every_steps: 300}}")
    )
    _killed_after_a_snapshot(arl_run, path, "chain-central")
    [latest] = snapshot.snapshots(arl_run.tmp / "states", "chain-central")[-1:]
    assert any(name.startswith("servers/") for name in latest.files)  # the inference servers' part
    assert "agents/dqn/learner.msgpack" in latest.files

    resumed = arl_run.run(str(path), "--no-probe", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    episodes = arl_run.query(
        'select p.name, e.worker, e."index", e.end_reason from episodes e join phases p on p.id = e.phase_id'
    )
    train = [(w, i) for name, w, i, _ in episodes if name == "train"]
    assert sorted(train) == [(w, i) for w in range(3) for i in range(150)]  # each once
    assert [reason for name, *_, reason in episodes if name == "test"] == ["terminated"] * 6
