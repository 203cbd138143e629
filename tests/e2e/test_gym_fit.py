"""Gymnasium fit in real runs (issue 13, item 5): wrappers named in the file wrap the
environment, each step's ``info`` is stored, a setpoint outside its actuator's space
fails the run naming agent, actuator and value, and ``check --probe`` runs
``arl.check_environment`` on each environment, reporting at its place in the file."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

CARTPOLE = """\
uid: gymfit
seed: 5
schedule:
  - steady:
      environments:
        - environment:
            name: gym:CartPole-v1
            uid: cart
            params:
              wrappers: [{TimeLimit: {max_episode_steps: 12}}, RecordEpisodeStatistics]
      agents:
        - name: pusher
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl_test_gymfit:WildCartMuscle, params: {value: 0, at: 1000}}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [cart.obs]
          actuators: [cart.action]
      simulation:
        name: vanilla
        conditions: [{name: arl.conditions:EnvironmentDone}]
      phase_config: {mode: train, episodes: 2}
  - wild:
      agents:
        - name: pusher
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl_test_gymfit:WildCartMuscle, params: {value: 5, at: 3}}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [cart.obs]
          actuators: [cart.action]
      phase_config: {mode: test, episodes: 1}
"""


def test_wrappers_apply_info_is_stored_and_a_setpoint_outside_its_space_fails_the_run(arl_run) -> None:
    path = arl_run.tmp / "gymfit.yml"
    path.write_text(CARTPOLE)
    done = arl_run.run(str(path))
    assert done.returncode == 1, done.stderr
    # Phase 0: the named TimeLimit cut each episode at 12 steps; RecordEpisodeStatistics
    # said so in the info of each last step, and no other step had any info.
    steps = arl_run.query(
        'select e."index", s.step, s.truncated, s.info from environment_steps s join episodes e '
        'on s.episode_id = e.id join phases p on e.phase_id = p.id where p."index" = 0 order by e.id, s.step'
    )
    assert [(episode, step) for episode, step, _, _ in steps] == [(e, s) for e in (0, 1) for s in range(1, 13)]
    for _, step, truncated, info in steps:
        assert bool(truncated) == (step == 12)
        if step < 12:
            assert info is None
        else:
            stats = json.loads(info)["episode"]
            assert (stats["l"], stats["r"]) == (12, 12.0)
    # Phase 1: the agent's third setpoint, 5, is no action of CartPole's Discrete(2).
    error = arl_run.scalar("select error from experiment_runs")
    expected = (
        "agent.pusher: SetpointError: actuator 'cart.action' was set to 5, which is not in its space "
        "Discrete(2): it takes an integer from 0 to 1"
    )
    assert expected in error
    assert expected in done.stderr
    assert arl_run.scalar("select max(step) from environment_steps s join episodes e on s.episode_id = e.id "
                          "join phases p on e.phase_id = p.id where p.\"index\" = 1") == 2  # fmt: skip


SLOPPY = """\
uid: sloppy
schedule:
  - p:
      environments:
        - environment: {name: arl_test_gymfit:SloppyEnvironment, uid: env, params: {sensors: 2, actuators: 2}}
        - environment: {name: arl_test_gymfit:TwinIds, uid: twin, params: {sensors: 1, actuators: 1}}
      agents:
        - name: a
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl.dummy:DummyMuscle}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [env.s0]
          actuators: [env.a0, twin.a0]
      simulation: {name: vanilla}
"""


def test_check_probe_reports_what_check_environment_finds_at_the_environment(arl_run) -> None:
    path = arl_run.tmp / "sloppy.yml"
    path.write_text(SLOPPY)
    done = arl_run.run("check", "--probe", str(path))
    assert done.returncode == 2
    at = "error: {}:{}:31: schedule.0.p.environments.{}.environment.name: arl.check_environment on environment {!r}: "
    at_env, at_twin = at.format(path, 5, 0, "env"), at.format(path, 6, 1, "twin")
    assert done.stderr.splitlines() == [
        at_env + "step 1: step(): sensor 's0' read 7.5, which is not in its space Box(0.0, 1.0, (), float64)",
        at_env + "step 1: step() gave a reading 'extra', which is no sensor it declares",
        at_env + "step 1: reward 'reward' is 'high', not a finite number",
        at_env + "step 1: terminated is 0, not a bool",
        at_twin + "actuators(): the id 'a0' is declared twice",
        "5 problems found; nothing was run.",
    ]
