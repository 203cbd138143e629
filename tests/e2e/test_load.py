"""Starting a brain from one saved earlier: by this run, or by another run in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arl.checkpoints import directory_digest

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


def test_loading_from_a_run_the_store_does_not_have_is_refused_before_the_run_starts(arl_run, no_leaks) -> None:
    path = arl_run.tmp / "goes-on.yml"
    path.write_text(GOES_ON.format(load="{run: no-such-run, phase: phase_0, agent: defender}"))
    done = arl_run.run(str(path))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {path}:11:23: schedule.0.more.agents.0.load.run: the store ({arl_run.db}) has no brain of agent "
        "'defender' saved in phase 'phase_0' of run 'no-such-run'; is it the store that run wrote to (--store)?",
        "1 problem found; nothing was run.",
    ]
    assert arl_run.count("experiment_runs") == 0


def test_two_stores_in_one_checkpoint_folder_keep_their_own_brains(arl_run, no_leaks) -> None:
    # Both stores' first run has id 1; the second trains twice as long, so a brain it
    # wrote over the first store's would show.
    dummy = str(ROOT / "experiments" / "dummy.yml")
    assert arl_run.run(dummy).returncode == 0
    second_store = f"sqlite:///{arl_run.tmp / 'second.db'}"
    done = arl_run.run(dummy, "--store", second_store, "--set", "schedule.phase_0.phase_config.episodes=2")
    assert done.returncode == 0, done.stderr
    first = _saved_experiences(arl_run, "dummy-run")
    arl_run.db = arl_run.tmp / "second.db"
    assert arl_run.scalar("select id from experiment_runs") == 1
    assert (first, _saved_experiences(arl_run, "dummy-run")) == (10, 20)
    # Every brain the second store recorded is there as recorded, in its own run folder.
    for path, sha256 in arl_run.query("select path, sha256 from brain_checkpoints"):
        assert Path(path).parent.parent.name.startswith("dummy-run-1-")
        assert directory_digest(Path(path)) == sha256
    assert len(list((arl_run.tmp / "ckpt").iterdir())) == 2


def test_a_brain_changed_after_it_was_saved_is_not_loaded(arl_run, no_leaks) -> None:
    assert arl_run.run(str(ROOT / "experiments" / "dummy.yml")).returncode == 0
    saved = Path(
        arl_run.scalar(
            "select c.path from brain_checkpoints c join experiment_runs r on r.id = c.run_id"
            " where r.uid = 'dummy-run' and c.agent = 'defender'"
        )
    )
    brain = saved / "dummy_brain.json"
    brain.write_text(brain.read_text().replace('"experiences": 10', '"experiences": 90'))
    path = arl_run.tmp / "goes-on.yml"
    path.write_text(GOES_ON.format(load="{run: dummy-run, phase: phase_0, agent: defender}"))
    done = arl_run.run(str(path))
    assert done.returncode == 1
    assert f"the saved brain {saved} was changed after arl saved it" in done.stdout + done.stderr
    assert arl_run.query("select status from experiment_runs where uid = 'goes-on'") == [("FAILED",)]
