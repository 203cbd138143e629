"""arl-run end to end: a real subprocess, real processes, a real SQLite file."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from arl.testing import poll_for, titled
from experiment_files import write

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]


def test_help_explains_every_option(arl_run) -> None:
    top = arl_run.run("--help")
    assert top.returncode == 0
    assert "run" in top.stdout
    sub = arl_run.run("run", "--help")
    assert sub.returncode == 0
    for option in ("--parallel", "--store", "--checkpoint-dir", "--verbose"):
        assert option in sub.stdout


def test_the_dummy_experiment_stores_every_step_exactly_once(arl_run, no_leaks) -> None:
    done = arl_run.run(str(ROOT / "experiments" / "dummy.yml"), "-v")
    assert done.returncode == 0, done.stderr
    assert "run dummy-run (run id 1): FINISHED" in done.stdout
    # -v: each state change once (reporting the run's id is not another STARTING).
    states = [line.split("run dummy-run: ")[1] for line in done.stderr.splitlines() if "run dummy-run: " in line]
    assert states == ["STARTING", "RUNNING", "STOPPING", "FINISHED"]
    assert "phases 2, episodes 2, steps 20" in done.stdout
    assert str(arl_run.db) in done.stdout
    q = arl_run.scalar
    assert q("select status from experiment_runs") == "FINISHED"
    assert q("select count(*) from phases") == 2
    assert q("select count(*) from episodes") == 2
    assert q("select count(*) from environment_steps") == 20
    assert q("select count(*) from agent_actions") == 40
    assert q("select count(distinct episode_id || '/' || step || '/' || agent) from agent_actions") == 40
    assert q("select count(distinct episode_id || '/' || step) from environment_steps") == 20
    assert q("select count(*) from episodes where end_reason = 'terminated' and steps = 10") == 2
    # Both brains saved after the train phase, and loaded by the test phase.
    checkpoints = arl_run.query("select agent, path from brain_checkpoints order by agent")
    assert [agent for agent, _ in checkpoints] == ["attacker", "defender"]
    for _, path in checkpoints:
        assert json.loads((Path(path) / "dummy_brain.json").read_text())["experiences"] == 10
    assert done.stderr.count("loaded its brain from") == 2
    # Each log line names the process it came from, through the LogServer.
    # Both agents live in one agent process by default.
    loaded = [line for line in done.stderr.splitlines() if "loaded its brain from" in line]
    assert all("agent:defender+attacker" in line for line in loaded)
    assert "agent defender loaded its brain" in done.stderr
    assert "agent attacker loaded its brain" in done.stderr
    layout = json.loads(arl_run.scalar("select detail from events where kind = 'layout'"))
    assert layout == {
        "environments": "in_controller", "agent_processes": [["defender", "attacker"]], "controllers": 1, "processes": 2
    }  # fmt: skip
    # The defender sees and sets only its own ids.
    inputs, setpoints = arl_run.query("select inputs, setpoints from agent_actions where agent = 'defender'")[0]
    assert sorted(json.loads(inputs)) == ["env.s0", "env.s1", "env.s2", "env.s3", "env.s4"]
    assert sorted(json.loads(setpoints)) == ["env.a0", "env.a1", "env.a2", "env.a3", "env.a4"]


def test_the_short_form_equals_run_and_runs_twice_into_one_store(arl_run, no_leaks) -> None:
    file = write(arl_run.tmp, episodes=2)
    assert arl_run.run(file).returncode == 0
    second = arl_run.run("run", file, "--checkpoint-dir", str(arl_run.tmp / "c2"))
    assert second.returncode == 0, second.stderr
    assert arl_run.query("select id, status from experiment_runs order by id") == [(1, "FINISHED"), (2, "FINISHED")]
    assert arl_run.scalar("select count(*) from environment_steps") == 2 * 2 * 10


def test_an_exception_in_the_environment_fails_the_run_with_its_traceback(arl_run, no_leaks) -> None:
    file = write(arl_run.tmp, env="arl_test_components:CrashingEnvironment", env_params="{crash_at: 5}")
    done = arl_run.run(file)
    assert done.returncode == 1
    assert "RuntimeError: boom at step 5" in done.stderr
    assert "Traceback" in done.stderr
    assert "FAILED" in done.stdout
    status, error = arl_run.query("select status, error from experiment_runs")[0]
    assert status == "FAILED"
    # The traceback is the environment's own, from its process, not a re-wrapped one.
    assert error.startswith("env.env.0: RuntimeError: boom at step 5")
    assert "arl_test_components.py" in error
    assert "in step" in error
    assert arl_run.scalar("select end_reason from episodes") == "failed"
    # Steps 1-4 completed before the crash: each stored once, with both agents' actions.
    assert arl_run.query("select step from environment_steps order by step") == [(1,), (2,), (3,), (4,)]
    assert arl_run.scalar("select count(*) from agent_actions") == 8


def test_a_muscle_that_raises_fails_the_run_instead_of_acting_empty(arl_run, no_leaks) -> None:
    file = write(arl_run.tmp, muscle="arl_test_components:CrashingMuscle", muscle_params="{crash_at: 3}")
    done = arl_run.run(file)
    assert done.returncode == 1
    assert "ValueError: the muscle cannot decide" in done.stderr
    assert arl_run.scalar("select status from experiment_runs") == "FAILED"
    assert arl_run.scalar("select count(*) from environment_steps") == 2
    assert arl_run.scalar("select count(*) from agent_actions where setpoints = '{}'") == 0
    # Step 1's two actions, and the attacker's step 2 (its reply came with the crash).
    actions = arl_run.query("select step, agent from agent_actions order by step, agent")
    assert actions == [(1, "attacker"), (1, "defender"), (2, "attacker")]


OWN_PROCESSES = "processes: {environments: own, agents: 2}\n"  # each component in a process of its own


def _slow_run(arl_run, *options: str, more: str = "") -> subprocess.Popen[str]:
    file = write(
        arl_run.tmp,
        env="arl_test_components:SlowEnvironment",
        env_params="{delay: 0.01, episode_length: 100000}",
        more=more,
    )
    proc = arl_run.start(file, *options)
    poll_for(lambda: _steps(arl_run) >= 5, timeout=30, what="steps in the store")
    return proc


def _steps(arl_run) -> int:
    return arl_run.count("environment_steps")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_to_the_group_stops_at_a_step_boundary_and_marks_the_run_interrupted(
    arl_run, no_leaks, sig: signal.Signals
) -> None:
    """To the whole process group, as a terminal sends Ctrl-C and coreutils' timeout (or
    ``kill -TERM -PGID``) SIGTERM: arl-run alone gets it (its runs' processes are in a group
    of their own) and stops the runs between steps; nothing is killed under it."""
    proc = _slow_run(arl_run)
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "INTERRUPTED" in out
    assert arl_run.scalar("select status from experiment_runs") == "INTERRUPTED"
    assert arl_run.scalar("select end_reason from episodes") == "interrupted"
    steps = arl_run.scalar("select steps from episodes")
    assert _steps(arl_run) == steps
    assert arl_run.scalar("select count(distinct step) from environment_steps") == steps
    # Every stored step has both agents' actions: the run stopped between steps.
    assert arl_run.scalar("select count(*) from agent_actions") == 2 * steps
    events = [
        (kind, json.loads(detail))
        for kind, detail in arl_run.query("select kind, detail from events where kind != 'control'")
    ]
    assert events[1:] == [("stop_requested", {"reason": "interrupted"})]


def test_an_unknown_class_is_reported_with_its_location_and_nothing_runs(arl_run, no_leaks) -> None:
    file = write(arl_run.tmp, env="arl.dummy:NoSuchEnvironment")
    done = arl_run.run(file)
    assert done.returncode == 2
    assert f"{file}:7:19: schedule.0.train.environments.0.environment.name" in done.stderr
    assert "NoSuchEnvironment" in done.stderr
    assert not arl_run.db.exists()


def test_an_unknown_module_is_reported_as_such(arl_run, no_leaks) -> None:
    file = write(arl_run.tmp, muscle="no_such_package.muscles:Muscle")
    done = arl_run.run(file)
    assert done.returncode == 2
    assert f"{file}:13:26: schedule.0.train.agents.0.muscle" in done.stderr
    assert "no_such_package" in done.stderr
    assert not arl_run.db.exists()


def test_parallel_runs_each_get_their_own_governor_and_rows(arl_run, no_leaks) -> None:
    a = write(arl_run.tmp, uid="first", episodes=2)
    b = write(arl_run.tmp, uid="second", episodes=3)
    done = arl_run.run(a, b, "--parallel", "2")
    assert done.returncode == 0, done.stderr
    assert "run first" in done.stdout
    assert "run second" in done.stdout
    rows = arl_run.query(
        "select r.uid, count(s.id) from experiment_runs r join phases p on p.run_id = r.id "
        "join episodes e on e.phase_id = p.id join environment_steps s on s.episode_id = e.id "
        "group by r.uid order by r.uid"
    )
    assert rows == [("first", 20), ("second", 30)]
    assert {s for (s,) in arl_run.query("select status from experiment_runs")} == {"FINISHED"}


TWO_PHASES = """\
uid: two-phases
schedule:
  - wide:
      environments:
        - environment:
            name: arl.dummy:DummyEnvironment
            uid: env
            params: {episode_length: 5}
      agents:
        - name: solo
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl.dummy:DummyMuscle}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [env.s0]
          actuators: [env.a0]
      simulation: {name: vanilla}
      phase_config: {mode: train, episodes: 1, workers: 2}
  - narrow:
      environments:
        - environment:
            name: arl_test_components:SlowEnvironment
            uid: env
            params: {delay: 0.01, episode_length: 100000}
      phase_config: {mode: test, workers: 1}
"""


def test_ctrl_c_with_a_worker_idle_in_this_phase_still_ends_interrupted(arl_run, no_leaks) -> None:
    """Phase 1 uses one of two controllers; the idle one exits on the stop word: not a crash."""
    file = arl_run.tmp / "two.yml"
    file.write_text(TWO_PHASES)
    proc = arl_run.start(str(file))
    poll_for(lambda: arl_run.count("phases") == 2 and _steps(arl_run) > 20, timeout=30, what="phase 2 to step")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert arl_run.scalar("select status from experiment_runs") == "INTERRUPTED"


def test_a_second_ctrl_c_stops_at_once_and_still_says_interrupted(arl_run, no_leaks) -> None:
    file = write(
        arl_run.tmp, env="arl_test_components:SlowEnvironment", env_params="{delay: 30, episode_length: 10}"
    )  # a step that will not end soon, nor stop when asked
    proc = arl_run.start(file)
    poll_for(lambda: arl_run.count("episodes") == 1, timeout=30, what="the episode to start")
    os.killpg(proc.pid, signal.SIGINT)
    # Two signals sent at once would arrive as one: the second goes once the first is seen.
    stop_seen = "select count(*) from events where kind = 'stop_requested'"
    poll_for(lambda: arl_run.scalar(stop_seen), timeout=30, what="the stop request")
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "SIGINT again: stopping the runs now" in err
    assert arl_run.query("select status, error from experiment_runs") == [
        ("INTERRUPTED", "stopped at once by a second interrupt")
    ]


@pytest.mark.parametrize("when", ["as conductors start", "mid-run"])
def test_kill_9_of_arl_run_leaves_no_process_behind(arl_run, no_leaks, when: str) -> None:
    file = write(
        arl_run.tmp, env="arl_test_components:SlowEnvironment", env_params="{delay: 0.01, episode_length: 100000}"
    )
    proc = arl_run.start(file)
    if when == "mid-run":
        poll_for(lambda: _steps(arl_run) >= 5, timeout=30, what="steps")
    else:
        poll_for(lambda: titled(proc.pid, ("arl[agent", "arl[environment")), interval=0.001, what="a conductor")
    proc.kill()
    proc.communicate(timeout=10)


def test_user_modules_are_imported_only_where_components_live(arl_run, no_leaks, monkeypatch) -> None:
    """arl-run checks classes in a short-lived child: torch-like imports stay out of it."""
    imports = arl_run.tmp / "imports.log"
    monkeypatch.setenv("ARL_TEST_IMPORT_LOG", str(imports))
    file = write(arl_run.tmp)
    text = Path(file).read_text().replace("arl.dummy:DummyBrain}", "arl_test_heavy:HeavyBrain}", 1)
    Path(file).write_text(text)
    proc = arl_run.start(file)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    pids = [int(line) for line in imports.read_text().split()]
    assert proc.pid not in pids
    assert len(pids) == 2  # the checking child, and the defender's agent conductor


def test_a_store_that_cannot_be_opened_is_an_error_before_anything_runs(arl_run, no_leaks) -> None:
    file = write(arl_run.tmp)
    done = arl_run.run(file, "--store", "sqlite:////proc/arl-cannot-write-here/x.db")
    assert done.returncode == 2
    assert "error: cannot open the store" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (arl_run.tmp / "ckpt").exists()


def test_the_same_file_twice_stores_identical_trajectories(arl_run, no_leaks) -> None:
    """Every component's seed derives from the run's seed: deterministic components repeat,
    whichever processes they run in (the second run gives each a process of its own)."""
    for more in ("", OWN_PROCESSES):
        done = arl_run.run(write(arl_run.tmp, episodes=2, more=more))
        assert done.returncode == 0, done.stderr

    def trajectory(run_id: int, table: str, columns: str) -> list[tuple[object, ...]]:
        return arl_run.query(
            f'select e.worker, e."index", t.step, {columns} from {table} t join episodes e on t.episode_id = e.id '
            f"join phases p on e.phase_id = p.id where p.run_id = ? "
            f'order by e."index", t.step, {columns.split(",")[0]}',
            run_id,
        )

    steps = "t.env_uid, t.sensors, t.rewards, t.terminated, t.truncated"
    actions = "t.agent, t.inputs, t.setpoints, t.rewards, t.objective"
    assert trajectory(1, "environment_steps", steps) == trajectory(2, "environment_steps", steps)
    assert trajectory(1, "agent_actions", actions) == trajectory(2, "agent_actions", actions)
    assert len(trajectory(1, "agent_actions", actions)) == 2 * 2 * 10
    # ... and the episodes differ from each other (seeds differ per episode).
    first, second = (
        arl_run.query(
            "select sensors from environment_steps s join episodes e on s.episode_id = e.id "
            'where e."index" = ? and s.step = 1 and e.phase_id = 1',
            i,
        )[0]
        for i in (0, 1)
    )
    assert first != second


def test_envs_per_worker_stores_the_rows_of_as_many_workers_of_their_own(arl_run, no_leaks) -> None:
    """Two controllers stepping two copies each (one ActMany a round to the agents) store
    what four workers store: the copies are workers 0-3, with the same seeds."""
    for workers in ("4", "2, envs_per_worker: 2"):
        # (statistics_interval: each copy's step statistics are its own worker's too)
        more = "statistics_interval: 0.001\n" if "envs" in workers else ""
        done = arl_run.run(write(arl_run.tmp, uid=f"w{workers[0]}", episodes=2, workers=workers, more=more))
        assert done.returncode == 0, done.stderr

    def rows(run_id: int) -> list[tuple[object, ...]]:
        return arl_run.query(
            'select e.worker, e."index", e.steps, e.end_reason, t.step, t.agent, t.inputs, t.setpoints, t.objective '
            "from agent_actions t join episodes e on t.episode_id = e.id join phases p on e.phase_id = p.id "
            'where p.run_id = ? order by e.worker, e."index", t.step, t.agent',
            run_id,
        )

    assert rows(1) == rows(2)
    assert {r[0] for r in rows(2)} == {0, 1, 2, 3}
    assert len(rows(2)) == 4 * 2 * 10 * 2
    layout = json.loads(arl_run.scalar("select detail from events e where e.run_id = 2 and kind = 'layout'"))
    assert layout["controllers"] == 2
    stats = "select distinct worker from metrics where run_id = 2 and agent = 'arl:controller' order by worker"
    assert [w for (w,) in arl_run.query(stats)] == [0, 1, 2, 3]


def test_the_cartpole_example_trains_then_tests_a_gymnasium_environment(arl_run, no_leaks) -> None:
    # Two test episodes of the example's five: each runs to the 500-step limit.
    done = arl_run.run(str(ROOT / "experiments" / "cartpole.yml"), "--set", "schedule.test.phase_config.episodes=2")
    assert done.returncode == 0, done.stderr
    assert arl_run.query('select name, mode from phases order by "index"') == [("train", "train"), ("test", "test")]
    assert arl_run.scalar("select count(*) from episodes") == 22
    # Gymnasium's two endings stay apart, step by step and per episode.
    for steps, reason, last_terminated, last_truncated in arl_run.query(
        "select e.steps, e.end_reason, s.terminated, s.truncated from episodes e "
        "join environment_steps s on s.episode_id = e.id and s.step = e.steps"
    ):
        assert reason == ("terminated" if last_terminated else "truncated")
        assert bool(last_truncated) == (reason == "truncated")
        assert steps <= 500
    sensors, setpoints = arl_run.query("select inputs, setpoints from agent_actions limit 1")[0]
    assert len(json.loads(sensors)["cartpole.obs"]) == 4
    assert json.loads(setpoints)["cartpole.action"] in (0, 1)
    # The tuned gains reached the test phase's muscle: it balances to the time limit.
    assert arl_run.query(
        "select distinct e.end_reason from episodes e join phases p on e.phase_id = p.id where p.name = 'test'"
    ) == [("truncated",)]


def test_check_prints_the_runs_and_touches_no_store(arl_run) -> None:
    done = arl_run.run("check", str(ROOT / "experiments" / "dummy.yml"), str(ROOT / "experiments" / "cartpole.yml"))
    assert done.returncode == 0, done.stderr
    assert "run dummy-run, experiment dummy, seed 42" in done.stdout
    assert "agent defender: 5 sensors, 5 actuators, loads defender from phase_0" in done.stdout
    assert "2 files checked, 2 run(s): no problems." in done.stdout
    assert not arl_run.db.exists()


def test_check_and_dry_run_report_problems_like_run(arl_run) -> None:
    file = write(arl_run.tmp, muscle="arl.dummy:DummyMuscel")
    for args in (("check", file), ("run", "--dry-run", file)):
        done = arl_run.run(*args)
        assert done.returncode == 2
        assert f"{file}:13:26: schedule.0.train.agents.0.muscle.name" in done.stderr
        assert "did you mean 'DummyMuscle'?" in done.stderr
    assert not arl_run.db.exists()


def test_dry_run_prints_the_runs_and_runs_nothing(arl_run, no_leaks) -> None:
    done = arl_run.run("run", "--dry-run", str(ROOT / "experiments" / "dummy.yml"))
    assert done.returncode == 0, done.stderr
    assert "phase 1 phase_1: test, 1 episode(s) x 1 worker(s), vanilla" in done.stdout
    assert not arl_run.db.exists()


def test_ctrl_c_while_agents_act_still_stores_every_completed_action(arl_run, no_leaks) -> None:
    file = write(arl_run.tmp, muscle="arl_test_components:SlowMuscle", muscle_params="{delay: 0.02}",
                 env_params="{episode_length: 100000}")  # fmt: skip
    proc = arl_run.start(file)
    poll_for(lambda: _steps(arl_run) >= 10, timeout=30, what="steps")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    steps = arl_run.scalar("select steps from episodes")
    assert _steps(arl_run) == steps
    assert arl_run.scalar("select count(*) from agent_actions") == 2 * steps


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"brain": "arl_test_components:LearnRaisingBrain"}, "RuntimeError: this brain cannot learn"),
        ({"objective": "arl_test_components:RaisingObjective"}, "ArithmeticError: no objective today"),
    ],
    ids=["brain", "objective"],
)
def test_a_brain_or_objective_that_raises_fails_the_run(arl_run, no_leaks, fields, message) -> None:
    done = arl_run.run(write(arl_run.tmp, **fields))
    assert done.returncode == 1
    assert message in done.stderr
    status, error = arl_run.query("select status, error from experiment_runs")[0]
    assert status == "FAILED"
    assert error.startswith(f"agent.defender: {message}")


def test_a_test_phase_never_asks_a_brain_to_learn(arl_run, no_leaks) -> None:
    done = arl_run.run(write(arl_run.tmp, brain="arl_test_components:LearnRaisingBrain", mode="test"))
    assert done.returncode == 0, done.stderr
    assert arl_run.scalar("select count(*) from agent_actions") == 20
    assert arl_run.scalar("select count(*) from brain_checkpoints") == 0  # test phases save nothing


def test_several_workers_each_run_their_episodes(arl_run, no_leaks) -> None:
    done = arl_run.run(write(arl_run.tmp, episodes=2, workers=2))
    assert done.returncode == 0, done.stderr
    assert "phases 1, episodes 4, steps 40, actions 80" in done.stdout
    assert arl_run.query("select worker, count(*) from episodes group by worker") == [(0, 2), (1, 2)]
    assert arl_run.scalar("select count(distinct episode_id || '/' || step) from environment_steps") == 40


@pytest.mark.parametrize(
    ("role", "reason", "last"),
    [
        ("environment:env.0", "process arl[environment:env.0] was killed by signal 9 (SIGKILL)", "set up for phase 0"),
        ("agent:attacker", "process arl[agent:attacker] was killed by signal 9 (SIGKILL)", ""),
        ("agent:defender+attacker", "process arl[agent:defender+attacker] was killed by signal 9 (SIGKILL)", ""),
        ("controller:0", "process arl[controller:0] was killed by signal 9 (SIGKILL)", ""),
        ("governor:e2e", "the run's governor process was killed by signal 9 (SIGKILL) without reporting", "Begin"),
    ],
)
def test_sigkill_of_any_process_of_a_run_fails_it_cleanly(arl_run, no_leaks, role: str, reason: str, last: str) -> None:
    # -vv: the conductors' debug lines, to find in the report. The default layout for the
    # controller and the agents' shared process; for the others, a process each.
    shared = role in ("controller:0", "agent:defender+attacker")
    proc = _slow_run(arl_run, "-vv", more="" if shared else OWN_PROCESSES)
    victim = poll_for(lambda: titled(proc.pid, f"arl[{role}]"))
    victim[0].kill()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    # The terminal says which process died, how, and what it logged last.
    report = _report(err, reason)
    assert "Its last log lines:" in report[0]
    assert len(report) > 1
    assert any(last in line for line in report[1:]), report
    status, error = arl_run.query("select status, error from experiment_runs")[0]
    assert status == "FAILED"
    assert reason in error
    assert "Its last log lines:" in error
    _assert_rows_consistent(arl_run)


def test_a_conductor_stopped_and_continued_holds_the_run_up_without_failing_it(arl_run, no_leaks) -> None:
    """SIGSTOP (a debugger, a paused job) is not death: nothing times a step out, and
    after SIGCONT the run goes on to the end."""
    file = write(
        arl_run.tmp,
        env="arl_test_components:SlowEnvironment",
        env_params="{delay: 0.01, episode_length: 60}",
        more=OWN_PROCESSES,
    )
    proc = arl_run.start(file)
    poll_for(lambda: _steps(arl_run) >= 5, timeout=30, what="steps")
    conductor = titled(proc.pid, "arl[environment:env.0]")[0]
    conductor.suspend()
    try:
        poll_for(lambda: conductor.status() == psutil.STATUS_STOPPED, what="the conductor to stop")
        time.sleep(1.2)  # stopped for longer than a heartbeat: the broker hears nothing from it meanwhile
        assert proc.poll() is None
        assert _steps(arl_run) < 60
    finally:
        conductor.resume()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "phases 1, episodes 1, steps 60, actions 120" in out
    _assert_rows_consistent(arl_run)


def test_an_environment_step_longer_than_the_liveness_window_does_not_fail_the_run(
    arl_run, no_leaks, monkeypatch
) -> None:
    """The controller hosting the environment sends the broker no heartbeat while it steps."""
    monkeypatch.setenv("ARL_TIMEOUTS", "liveness=1")
    file = write(arl_run.tmp, env="arl_test_components:SlowEnvironment", env_params="{delay: 1.6, episode_length: 1}")
    done = arl_run.run(file, "-v")
    assert done.returncode == 0, done.stderr
    assert "phases 1, episodes 1, steps 1, actions 2" in done.stdout
    # (Idle workers may be purged and re-register at so short a liveness: not the controller.)
    assert "a worker of 'controller.0' was silent" not in done.stderr
    assert "'controller.0': no word from the broker" not in done.stderr


def _report(err: str, first: str) -> list[str]:
    """The console lines of the message that starts with ``first``: its line, then the
    indented lines that follow it."""
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if first in line)
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return lines[start:end]


def _assert_rows_consistent(arl_run) -> None:
    """However a run ended: every row in its place, everything ended, counts that add up."""
    q = arl_run.scalar
    for table in ("environment_steps", "agent_actions"):
        assert q(f"select count(*) from {table} t left join episodes e on t.episode_id = e.id where e.id is null") == 0
    assert q("select count(distinct episode_id || '/' || step) from environment_steps") == _steps(arl_run)
    assert q("select count(*) from episodes where ended_at is null or steps is null or end_reason is null") == 0
    assert (
        arl_run.query(
            "select e.id, e.steps from episodes e where e.steps != "
            "(select count(*) from environment_steps s where s.episode_id = e.id)"
        )
        == []
    )
    assert q("select count(*) from phases where ended_at is null or end_reason is null") == 0
    assert q("select count(*) from experiment_runs where ended_at is null or status in ('RUNNING', 'SCHEDULED')") == 0
    assert q("select count(*) from experiment_runs where status = 'FAILED' and coalesce(error, '') = ''") == 0


def test_ctrl_c_while_the_run_starts_ends_it_interrupted(arl_run, no_leaks) -> None:
    proc = arl_run.start(write(arl_run.tmp))
    poll_for(lambda: titled(proc.pid, "arl[governor:e2e]"), timeout=30, interval=0.001, what="the governor")
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "INTERRUPTED" in out
    assert {s for (s,) in arl_run.query("select status from experiment_runs")} <= {"INTERRUPTED"}


def test_a_store_that_fails_mid_run_fails_the_run_without_hanging(arl_run, no_leaks, monkeypatch) -> None:
    monkeypatch.setenv("ARL_TIMEOUTS", "store=1")  # the store's patience: 1 s, not a minute
    proc = _slow_run(arl_run)
    import sqlite3

    with sqlite3.connect(arl_run.db, timeout=1) as blocker:
        blocker.execute("begin exclusive")  # the writer's next commit waits its patience, then fails
        assert proc.stderr is not None
        seen = list(itertools.takewhile(lambda line: "database is locked" not in line, proc.stderr))
        blocker.rollback()  # the writer has given up: the run's end goes in on a connection of its own
    out, err = proc.communicate(timeout=30)
    err = "".join(seen) + err
    assert proc.returncode == 1, err
    assert f"error: the store failed: writing to {arl_run.db}: OperationalError: database is locked" in out
    assert "Traceback" not in err
    status, error = arl_run.query("select status, error from experiment_runs")[0]
    assert status == "FAILED"
    assert error.startswith("the store failed")


def test_a_sweep_runs_every_value_side_by_side_with_its_own_uid(arl_run, no_leaks) -> None:
    """Each run of a sweep: a short uid safe in paths (the file's uid and a hash of its
    values), its swept values stored as such, shown as columns by `results compare`, and
    the runs drawn in one figure by `results plot`."""
    from click.testing import CliRunner

    from arl.cli import main
    from arl.config.overrides import sweep_uid
    from arl.names import name_problem

    file = write(arl_run.tmp)
    done = arl_run.run(file, "--sweep", "seed=1,2", "--set", "schedule.train.phase_config.episodes=2", "-j", "2")
    assert done.returncode == 0, done.stderr
    seeds = (1, 2)
    uids = [sweep_uid("e2e", {"seed": seed}) for seed in seeds]
    runs = arl_run.query(
        "select uid, seed, status, json_extract(document, '$.seed'), json_extract(document, '$.uid'), swept "
        "from experiment_runs order by seed"
    )
    stored = [(uid, seed, "FINISHED", seed, uid, f'{{"seed":{seed}}}') for uid, seed in zip(uids, seeds, strict=True)]
    assert runs == stored
    assert all(name_problem(uid) is None for uid in uids)
    assert arl_run.scalar("select count(*) from episodes") == 4
    # The brains' folders are named by the uid as it is (it needs no escaping).
    folders = arl_run.query(
        "select r.uid, r.id, c.path from brain_checkpoints c join phases p on c.phase_id = p.id "
        "join experiment_runs r on p.run_id = r.id"
    )
    assert len(folders) == 4  # two agents' brains a run
    assert all(Path(path).parts[-3].startswith(f"{uid}-{run}-") for uid, run, path in folders)
    # Different seeds, different trajectories.
    first_steps = arl_run.query(
        "select s.sensors from environment_steps s join episodes e on s.episode_id = e.id "
        'join phases p on e.phase_id = p.id where s.step = 1 and e."index" = 0 order by p.run_id'
    )
    assert first_steps[0] != first_steps[1]
    # Side by side: the swept value a column of its own, as is the list's.
    compared = CliRunner().invoke(main, ["results", "compare", *uids, "--store", arl_run.url, "--format", "csv"])
    assert compared.exit_code == 0, compared.output
    header, *rows = [line.split(",") for line in compared.output.splitlines()]
    assert header == ["run", "id", "status", "seed", "train/episodes", "train/attacker", "train/defender"]
    ids = dict(arl_run.query("select uid, id from experiment_runs"))
    expected = [[uid, str(ids[uid]), "FINISHED", str(seed), "2"] for uid, seed in zip(uids, seeds, strict=True)]
    assert [row[:5] for row in rows] == expected
    listed = CliRunner().invoke(main, ["results", "list", "--store", arl_run.url])
    header, *lines = listed.output.splitlines()  # newest first: the runs started side by side
    assert (header.split()[-1], sorted(line.split()[-1] for line in lines)) == ("swept", ["seed=1", "seed=2"])
    figure = arl_run.tmp / "compared.png"
    plotted = CliRunner().invoke(main, ["results", "plot", *uids, "-o", str(figure), "--store", arl_run.url])
    assert plotted.output == f"returns plotted to {figure}\n"
    assert figure.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    checked = arl_run.run("check", file, "--sweep", "seed=1,2")  # says which run is which
    said = [line for line in checked.stdout.splitlines() if line.startswith(("run ", "  swept"))]
    assert said == [f"run {uids[0]}, seed 1  ({file})", "  swept seed=1", f"run {uids[1]}, seed 2  ({file})",
                    "  swept seed=2"]  # fmt: skip
    # Another arl-run makes the same uids of the same values: --resume finds the runs finished.
    again = arl_run.run(file, "--sweep", "seed=1,2", "--set", "schedule.train.phase_config.episodes=2", "--resume")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        *(f"run {uid}: FINISHED already; skipped" for uid in uids),
        "nothing to run: every run has finished",
    ]


TINY = """\
uid: tiny
schedule:
  - only:
      environments:
        - environment: {name: arl.dummy:DummyEnvironment, uid: env, params: {episode_length: 2}}
      agents:
        - name: solo
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl.dummy:DummyMuscle}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [env.s0]
          actuators: [env.a0]
      simulation: {name: vanilla}
      phase_config: {mode: test, episodes: 1}
"""


def test_runs_side_by_side_take_turns_to_start_and_all_finish_under_a_deep_tmpdir(
    arl_run, no_leaks, monkeypatch
) -> None:
    """More runs than cores: only as many start at once as there are cores, the rest
    wait their turn, and every one finishes. A $TMPDIR too deep for ipc socket paths
    (107 bytes) makes arl use a short private folder of its own, removed at the end."""
    deep = Path(arl_run.private) / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(arl_run, "private", str(deep))  # its TMPDIR; put back before it is removed
    file = arl_run.tmp / "tiny.yml"
    file.write_text(TINY)
    runs = 3  # more than the cores of the machine it was written on (2)
    seeds = ",".join(str(seed) for seed in range(runs))
    done = arl_run.run(str(file), "--sweep", f"seed={seeds}", "-j", str(runs), "-vv", timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    assert arl_run.query("select status, count(*) from experiment_runs group by status") == [("FINISHED", runs)]
    assert arl_run.scalar("select count(*) from environment_steps") == 2 * runs
    # The runs still starting (STARTING reported, RUNNING not yet) never outnumber the cores.
    starting: set[str] = set()
    most = 0
    for line in done.stderr.splitlines():
        if "arl.executor: run tiny-" in line:
            uid, state = line.split("arl.executor: run ")[1].split(": ")
            (starting.add if state == "STARTING" else starting.discard)(uid)
            most = max(most, len(starting))
    assert 1 <= most <= min(runs, len(os.sched_getaffinity(0)))
    # Its own short folder for the ipc sockets, gone now.
    folder = next(line for line in done.stderr.splitlines() if "ipc endpoints in" in line).split(" in ")[-1]
    assert len(folder) < 80
    assert not str(folder).startswith(str(deep))
    assert not Path(folder).exists()


def test_each_process_of_a_run_uses_one_blas_thread_unless_the_user_says(arl_run, no_leaks) -> None:
    """OpenBLAS's thread pool (a thread a core in every process) made small batched
    forward passes several times slower; arl-run sets OPENBLAS_NUM_THREADS=1 first."""
    record = arl_run.tmp / "blas.txt"
    arl_run.env.pop("OPENBLAS_NUM_THREADS", None)
    done = arl_run.run(
        "--no-probe",
        write(arl_run.tmp, env="arl_test_components:EnvironmentRecorder", env_params=f"{{record: '{record}'}}"),
    )
    assert done.returncode == 0, done.stderr
    assert record.read_text() == "1"


def test_a_module_beside_the_experiment_file_and_in_its_paths_is_found(arl_run, no_leaks) -> None:
    """``module:Class`` finds a module in the file's folder and in the folders its
    ``paths:`` names (relative to the file; both put on the path, last), in the check and
    in every process of the run, wherever arl-run is started."""
    folder, lib = arl_run.tmp / "mine", arl_run.tmp / "lib"
    folder.mkdir()
    lib.mkdir()
    (folder / "beside.py").write_text("from arl.dummy import DummyEnvironment\n\n\nclass Mine(DummyEnvironment): ...\n")
    (lib / "faraway.py").write_text("from beside import Mine\n\n\nclass Far(Mine):\n    pass\n")
    path = Path(write(folder, uid="beside", env="faraway:Far"))
    path.write_text(path.read_text() + "paths: [../lib]\n")
    done = arl_run.run(str(path))
    assert done.returncode == 0, done.stderr
    assert arl_run.scalar("select status from experiment_runs") == "FINISHED"
