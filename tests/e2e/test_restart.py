"""The file's restart policy, end to end: a worker whose controller or environment
process dies is restarted and the run finishes; without the policy the same death fails
the run."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from arl.testing import poll_for
from experiment_files import write

pytestmark = pytest.mark.e2e

RESTART = "restart: {max: 1, within: 60}\n"


def _file(arl_run, uid: str, more: str, *, then: str = "lives", workers: int = 2) -> str:
    """Two workers of 3 episodes of 10 steps; the first environment to reach its 15th
    step kills its own process, half way through its worker's episode 1 (a file in
    tmp says one has died: the restarted one ``then`` lives, stalls or dies)."""
    marker = arl_run.tmp / f"{uid}.died"
    params = f"{{die_at: 15, marker: {marker}, then: {then}, episode_length: 10}}"
    env = "arl_test_components:DiesOnce"
    return write(arl_run.tmp, uid=uid, env=env, env_params=params, episodes=3, workers=workers, more=more)


def _check_restarted(arl_run, uid: str, process: str) -> None:
    """The run finished with one death stored; the dead worker's episode 1 ended
    ``worker-died`` and the two it still owed came after it; the other worker's three
    ran untouched."""
    [(run_id, status)] = arl_run.query("select id, status from experiment_runs where uid = ?", uid)
    assert status == "FINISHED"
    [(detail,)] = arl_run.query("select detail from events where kind = 'worker-died' and run_id = ?", run_id)
    died = json.loads(detail)
    worker = died["worker"]
    assert died == {
        "phase": "train", "worker": worker, "process": process.format(worker=worker), "code": -9,
        "signal": "SIGKILL", "restarts": 1,
    }  # fmt: skip
    episodes = arl_run.query(
        'select e.worker, e."index", e.steps, e.end_reason from episodes e join phases p on e.phase_id = p.id '
        'where p.run_id = ? order by e.worker, e."index"',
        run_id,
    )
    mine = [(i, steps, reason) for w, i, steps, reason in episodes if w == worker]
    assert [(i, reason) for i, _, reason in mine] == [
        (0, "terminated"), (1, "worker-died"), (2, "terminated"), (3, "terminated")
    ]  # fmt: skip
    assert [steps for i, steps, _ in mine if i != 1] == [10, 10, 10]
    assert [(i, s, r) for w, i, s, r in episodes if w != worker] == [(i, 10, "terminated") for i in range(3)]


def test_a_dead_controller_is_restarted_under_the_policy_and_fails_the_run_without(arl_run, no_leaks) -> None:
    done = arl_run.run(_file(arl_run, "restarted", RESTART))
    assert done.returncode == 0, done.stderr
    # The log says which process died and that its worker is restarted, at WARNING.
    assert "WARNING arl.governor: run restarted: process arl[controller:" in done.stderr
    assert "was killed by signal 9 (SIGKILL)" in done.stderr
    assert "is restarted (restart 1 of the run; the file's restart allows 1 within 60 s)" in done.stderr
    _check_restarted(arl_run, "restarted", "controller:{worker}")
    shown = arl_run.run("results", "show", "restarted")
    assert shown.returncode == 0, shown.stderr
    assert "worker-died  phase=train, worker=" in shown.stdout

    failed = arl_run.run(_file(arl_run, "fails", ""))
    assert failed.returncode == 1
    assert "was killed by signal 9 (SIGKILL)" in failed.stderr
    assert "; the run fails. Its last log lines:" in failed.stderr
    assert arl_run.query("select status from experiment_runs where uid = 'fails'") == [("FAILED",)]
    assert arl_run.scalar("select count(*) from events where kind = 'worker-died'") == 1  # the first run's


def test_a_dead_environment_process_is_restarted_with_its_controller(arl_run, no_leaks) -> None:
    """With environments in processes of their own, the controller that waited for the
    dead one is replaced too, and the broker hands the new one its setup."""
    done = arl_run.run(_file(arl_run, "own", RESTART + "processes: {environments: own}\n"))
    assert done.returncode == 0, done.stderr
    assert "process arl[environment:env." in done.stderr
    _check_restarted(arl_run, "own", "environment:env.{worker}")


def test_a_dead_controller_stepping_two_copies_resumes_each_copy_from_its_own_episodes(arl_run, no_leaks) -> None:
    """envs_per_worker: 2 — both copies' episodes in progress end ``worker-died`` with
    their process, and each copy then runs the episodes it still owes."""
    marker = arl_run.tmp / "copies.died"
    params = f"{{die_at: 15, marker: {marker}, episode_length: 10}}"
    file = write(
        arl_run.tmp, uid="copies", env="arl_test_components:DiesOnce", env_params=params, episodes=3,
        workers="1, envs_per_worker: 2", more=RESTART,
    )  # fmt: skip
    done = arl_run.run(file)
    assert done.returncode == 0, done.stderr
    assert arl_run.scalar("select status from experiment_runs") == "FINISHED"
    episodes = arl_run.query('select worker, "index", steps, end_reason from episodes order by worker, "index"')
    for copy in (0, 1):
        mine = [(i, reason) for w, i, _, reason in episodes if w == copy]
        assert [reason for _, reason in mine].count("worker-died") == 1, mine
        assert [i for i, _ in mine] == list(range(len(mine)))  # numbered on after the cut one
        assert sum(reason == "terminated" for _, reason in mine) == 3


def test_a_stop_during_a_restart_ends_the_run_interrupted_at_once(arl_run, no_leaks, monkeypatch) -> None:
    """Ctrl-C while the restarted worker's new environment is being built (it stalls
    30 s): the restart gives up, the run ends INTERRUPTED without waiting for the
    setup, and the stalled process is stopped."""
    monkeypatch.setenv("ARL_TIMEOUTS", "stop_grace=0.5")
    proc = arl_run.start(_file(arl_run, "stopped", RESTART, then="stalls", workers=1))
    poll_for(lambda: (arl_run.tmp / "stopped.died.stalled").exists(), timeout=30, what="the restart's setup")
    asked = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert time.monotonic() - asked < 10, err  # (the setup it gave up on stalls 30 s)
    [(run_id, status)] = arl_run.query("select id, status from experiment_runs")
    assert status == "INTERRUPTED"
    kinds = [
        kind
        for (kind,) in arl_run.query(
            "select kind from events where run_id = ? and kind != 'control' order by id", run_id
        )
    ]
    assert kinds == ["layout", "worker-died", "stop_requested"]
    episodes = arl_run.query('select "index", end_reason from episodes order by "index"')
    assert episodes == [(0, "terminated"), (1, "worker-died")]  # (the cut one's last steps died with it)


def test_a_new_process_that_dies_while_it_is_set_up_fails_the_run_at_once(arl_run, no_leaks) -> None:
    """The restart watches its new processes while it sets them up: a death there fails
    the run naming the process, not a minute later naming a silent service."""
    done = arl_run.run(_file(arl_run, "again", RESTART, then="dies", workers=1), timeout=20)
    assert done.returncode == 1, done.stderr
    assert "process arl[controller:0] was killed by signal 9 (SIGKILL)" in done.stderr
    assert "; the restart failed. Its last log lines:" in done.stderr
    [(run_id, status, error)] = arl_run.query("select id, status, error from experiment_runs")
    assert status == "FAILED"
    assert "; the restart failed." in error
    kinds = [
        kind
        for (kind,) in arl_run.query(
            "select kind from events where run_id = ? and kind != 'control' order by id", run_id
        )
    ]
    assert kinds == ["layout", "worker-died", "failed"]
