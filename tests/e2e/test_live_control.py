"""A live run controlled from outside, end to end: `arl-run ctl` pauses it (no step is
stored while paused), resumes it, has it take a snapshot (complete, verified, holding
every worker's and agent's state) and stops it (INTERRUPTED after a final snapshot);
`--max-uptime` ends a run the same way, and the file's keep rule prunes snapshots."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from arl.state import snapshot
from arl.testing import poll_for
from experiment_files import write

pytestmark = pytest.mark.e2e

LONG = "{episode_length: 100000}"  # an episode no test waits for


def _ctl(arl_run, *args: str) -> tuple[int, str]:
    done = arl_run.run("ctl", *args, "--store", f"sqlite:///{arl_run.db}", timeout=30)
    return done.returncode, done.stdout + done.stderr


def _steps(arl_run) -> int:
    return arl_run.count("environment_steps")


@pytest.mark.long(25)
def test_ctl_pauses_resumes_saves_and_stops_a_live_run(arl_run, no_leaks) -> None:
    more = "state: {dir: states}\n"
    # Steps of 2 ms: the workers sleep rather than take the cores from the ctl commands
    # (each an arl-run of its own) and from the rest of the suite.
    slow = {"env": "arl_test_components:SlowEnvironment", "env_params": "{episode_length: 100000, delay: 0.002}"}
    path = write(arl_run.tmp, uid="live", workers=2, more=more, **slow)
    proc = arl_run.start(path)
    poll_for(lambda: arl_run.count("events") and arl_run.scalar("select count(*) from events where kind='control'"),
             timeout=30, what="the run's control API")  # fmt: skip
    poll_for(lambda: _steps(arl_run) > 0, timeout=30, what="steps")

    code, said = _ctl(arl_run, "pause")
    assert code == 0, said
    paused = _steps(arl_run)
    # Nothing to poll for: a paused run stores nothing, so the check is that a while passes
    # (several store commits' worth) without a row.
    time.sleep(0.6)
    assert _steps(arl_run) == paused
    code, said = _ctl(arl_run, "status", "--json")
    assert code == 0, said
    status = json.loads(said)
    assert status["paused"] is True
    assert [w["worker"] for w in status["workers"]] == [0, 1]
    assert all(w["stepping"] and w["episode"] == 0 and w["step"] > 0 for w in status["workers"])

    code, said = _ctl(arl_run, "resume")
    assert code == 0, said
    poll_for(lambda: _steps(arl_run) > paused + 100, timeout=30, what="stepping after resume")

    code, said = _ctl(arl_run, "save")
    assert code == 0, said
    [saved] = snapshot.snapshots(arl_run.tmp / "states", "live")
    manifest = snapshot.load(saved.path)
    names = set(manifest.files)
    for worker in (0, 1):
        assert f"workers/{worker}/loop.msgpack" in names
        assert f"workers/{worker}/env.env/state.json" in names
        for agent in ("defender", "attacker"):
            assert f"agents/{agent}/muscle.{worker}/state.json" in names
    marks = manifest.fields["store"]
    assert marks["environment_steps"] > 0
    assert len(marks["open_episodes"]) == 2
    assert manifest.fields["phase_name"] == "train"
    assert manifest.fields["stepping"] == [0, 1]
    assert set(manifest.fields["progress"]) == {"0", "1"}  # each worker's episode and step

    code, said = _ctl(arl_run, "stop")
    assert code == 0, said
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    [(status,)] = arl_run.query("select status from experiment_runs")
    assert status == "INTERRUPTED"
    assert len(snapshot.snapshots(arl_run.tmp / "states", "live")) == 2  # the final one too
    kinds = [k for (k,) in arl_run.query("select kind from events order by id")]
    assert kinds.count("snapshot") == 2

    code, said = _ctl(arl_run, "status")
    assert code == 1, said
    assert "has ended" in said


def test_max_uptime_snapshots_and_ends_the_run_interrupted(arl_run, no_leaks) -> None:
    more = "state: {dir: states, save: {every_steps: 200}, keep: {latest: 2}}\n"
    path = write(arl_run.tmp, uid="aged", env_params=LONG, more=more)
    done = arl_run.run(path, "--max-uptime", "1.5")
    assert done.returncode == 130, done.stderr
    [(status, reason)] = arl_run.query("select status, end_reason from experiment_runs")
    assert (status, reason) == ("INTERRUPTED", "max-uptime")
    kept = snapshot.snapshots(Path(arl_run.tmp) / "states", "aged")
    taken = [json.loads(d) for (d,) in arl_run.query("select detail from events where kind = 'snapshot'")]
    assert len(taken) > 2
    assert len(kept) == 2
    assert kept[-1].fields["reason"] == "max-uptime"
    assert {t["reason"] for t in taken[:-1]} == {"condition"}


def test_time_scale_and_step_statistics(arl_run, no_leaks) -> None:
    more = "time_scale: 1000\nstatistics_interval: 0.05\n"
    path = write(arl_run.tmp, uid="fast", env_params="{episode_length: 300}", episodes=2, more=more)
    done = arl_run.run(path)
    assert done.returncode == 0, done.stderr
    [(first, last)] = arl_run.query("select min(sim_time), max(sim_time) from environment_steps")
    [(began, ended)] = arl_run.query("select min(started_at), max(ended_at) from episodes")
    wall = (datetime.fromisoformat(ended) - datetime.fromisoformat(began)).total_seconds()
    # 1000 times as fast: the scaled seconds between the first and last step far outrun the
    # machine's seconds between the first episode's start and the last one's end.
    assert last - first > 100 * wall > 0
    # Every statistics_interval each worker's steps a second and step-time percentiles are stored.
    stats = arl_run.query("select distinct name from metrics where agent = 'arl:controller' and worker = 0")
    assert {name for (name,) in stats} >= {"arl/steps_per_s", "arl/step_ms_p50", "arl/step_ms_p99", "arl/step_ms_max"}
