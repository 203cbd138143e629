"""Starting a brain from one saved earlier: by this run, or by another run in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]

GOES_ON = """\
uid: goes-on
schedule:
  - more:
      environments:
        - environment:
            name: arl.dummy:DummyEnvironment
            uid: env
            params: {{sensors: 10, actuators: 10, episode_length: 10}}
      agents:
        - name: defender
          load: {load}
          brain: {{name: arl.dummy:DummyBrain}}
          muscle: {{name: arl.dummy:DummyMuscle}}
          objective: {{name: arl.dummy:DummyObjective}}
          sensors: [env.s0, env.s1]
          actuators: [env.a0, env.a1]
      simulation: {{name: vanilla}}
      phase_config: {{mode: train, episodes: 1}}
"""


def _saved_experiences(arl_run, run_uid: str) -> int:
    path = arl_run.scalar(
        "select c.path from brain_checkpoints c join experiment_runs r on r.id = c.run_id"
        " where r.uid = ? and c.agent = 'defender'",
        run_uid,
    )
    return int(json.loads((Path(path) / "dummy_brain.json").read_text())["experiences"])


def test_a_brain_saved_by_another_run_goes_on_learning(arl_run, no_leaks) -> None:
    assert arl_run.run(str(ROOT / "experiments" / "dummy.yml")).returncode == 0
    assert _saved_experiences(arl_run, "dummy-run") == 10  # phase_0: one episode of 10 steps
    path = arl_run.tmp / "goes-on.yml"
    path.write_text(GOES_ON.format(load="{run: dummy-run, phase: phase_0, agent: defender}"))
    done = arl_run.run(str(path))
    assert done.returncode == 0, done.stderr
    # Loaded the 10 experiences of dummy-run's defender, then learnt from 10 more.
    assert _saved_experiences(arl_run, "goes-on") == 20


def test_loading_from_a_run_the_store_does_not_have_fails_the_run_saying_so(arl_run, no_leaks) -> None:
    path = arl_run.tmp / "goes-on.yml"
    path.write_text(GOES_ON.format(load="{run: no-such-run, phase: phase_0, agent: defender}"))
    done = arl_run.run(str(path))
    assert done.returncode == 1
    message = "no saved brain of agent defender in phase phase_0 of run no-such-run in the store"
    assert message in done.stdout + done.stderr
    assert arl_run.query("select status from experiment_runs") == [("FAILED",)]
