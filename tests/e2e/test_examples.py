"""The example experiments that are not covered elsewhere, run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]


def test_attacker_and_defender_strive_for_opposite_objectives(arl_run, no_leaks) -> None:
    done = arl_run.run(str(ROOT / "experiments" / "attack-defend.yml"))
    assert done.returncode == 0, done.stderr
    assert arl_run.query("select status, end_reason from experiment_runs") == [("FINISHED", "completed")]
    episodes = dict(
        arl_run.query("select p.name, count(*) from episodes e join phases p on p.id = e.phase_id group by p.name")
    )
    assert episodes == {"train": 20, "test": 3}
    # Both act on every step and feel the same reward: one's objective is the other's loss.
    pairs = arl_run.query(
        "select d.objective, a.objective, d.rewards from agent_actions d join agent_actions a"
        " on a.episode_id = d.episode_id and a.step = d.step and a.agent = 'attacker' where d.agent = 'defender'"
    )
    assert len(pairs) == arl_run.count("environment_steps") > 0
    assert all(defender == -attacker for defender, attacker, _ in pairs)
    # The bus trips (terminated) or holds out (truncated): never both, and the episode says which.
    ends = arl_run.query(
        "select e.end_reason, s.terminated, s.truncated, s.step = e.steps from episodes e"
        " join environment_steps s on s.episode_id = e.id where s.terminated or s.truncated"
    )
    assert len(ends) == 23
    allowed = {("terminated", True, False, True), ("truncated", False, True, True)}
    assert all((reason, bool(t), bool(u), bool(last)) in allowed for reason, t, u, last in ends)
    assert arl_run.count("brain_checkpoints") == 2
