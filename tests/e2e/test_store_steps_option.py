"""``--no-store-steps``: a run keeps its runs, phases, episodes and brains, not every step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]


def test_no_store_steps_stores_everything_but_the_steps(arl_run, no_leaks) -> None:
    done = arl_run.run(str(ROOT / "experiments" / "dummy.yml"), "--no-store-steps")
    assert done.returncode == 0, done.stderr
    assert arl_run.query("select status, end_reason from experiment_runs") == [("FINISHED", "completed")]
    counts = {t: arl_run.count(t) for t in ("phases", "episodes", "environment_steps", "agent_actions")}
    assert counts == {"phases": 2, "episodes": 2, "environment_steps": 0, "agent_actions": 0}
    # Episodes still say how long they ran and why they ended; brains are still saved.
    assert arl_run.query("select steps, end_reason from episodes") == [(10, "terminated"), (10, "terminated")]
    assert arl_run.count("brain_checkpoints") == 2
    # ... and each save is an event of the run, with where the brain went.
    events = arl_run.query("select kind, detail from events where kind not in ('layout', 'control') order by id")
    assert [kind for kind, _ in events] == ["brain_saved", "brain_saved"]
    saved = {json.loads(detail)["agent"]: json.loads(detail) for _, detail in events}
    assert set(saved) == {"defender", "attacker"}
    paths = dict(arl_run.query("select agent, path from brain_checkpoints"))
    assert all(saved[a]["path"] == paths[a] and saved[a]["phase"] == "phase_0" for a in saved)
