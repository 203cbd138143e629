"""The PettingZoo example experiments, end to end through arl-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_rock_paper_scissors_trains_then_tests_the_loaded_brains(arl_run, no_leaks) -> None:
    done = arl_run.run(str(EXPERIMENTS / "rps.yml"))
    assert done.returncode == 0, done.stderr
    assert "run rps (run id 1): FINISHED" in done.stdout
    assert "phases 2, episodes 8, steps 160, actions 320" in done.stdout
    q = arl_run.scalar
    assert q("select count(*) from episodes") == 8
    assert q("select count(*) from episodes where end_reason = 'truncated' and steps = 20") == 8  # max_cycles
    assert q("select count(*) from environment_steps") == 160
    assert q("select count(*) from environment_steps where truncated") == 8
    assert q("select count(*) from environment_steps where terminated") == 0
    assert q("select count(*) from agent_actions") == 320
    assert q("select count(distinct episode_id || '/' || step || '/' || agent) from agent_actions") == 320
    # Zero-sum: each agent's objective is its own reward, the opposite of the other's.
    by_agent = dict(arl_run.query("select agent, sum(objective) from agent_actions group by agent"))
    assert by_agent["learner"] == -by_agent["rock_lover"]
    assert by_agent["learner"] > 0
    # The test phase loaded the learner's counts: against a rock lover it plays paper only.
    test_moves = arl_run.query(
        "select distinct a.setpoints from agent_actions a join episodes e on a.episode_id = e.id "
        "join phases p on e.phase_id = p.id where p.name = 'test' and a.agent = 'learner'"
    )
    assert [json.loads(s) for (s,) in test_moves] == [{"rps.player_0.action": 1}]
    assert [a for (a,) in arl_run.query("select agent from brain_checkpoints order by agent")] == [
        "learner",
        "rock_lover",
    ]


def test_tic_tac_toe_takes_turns_and_the_perfect_player_never_loses(arl_run, no_leaks) -> None:
    done = arl_run.run(str(EXPERIMENTS / "tictactoe.yml"))
    assert done.returncode == 0, done.stderr
    q = arl_run.scalar
    assert q("select count(*) from episodes") == 6
    assert q("select count(*) from episodes where end_reason = 'terminated' and steps between 5 and 9") == 6
    steps = q("select count(*) from environment_steps")
    assert steps == q("select sum(steps) from episodes")
    assert f"phases 1, episodes 6, steps {steps}, actions {steps}" in done.stdout
    # One agent a step, in the file's order: player_1 (perfect) on odd steps.
    assert q("select count(*) from agent_actions") == steps
    assert q("select count(*) from agent_actions where (step % 2 = 1) != (agent = 'perfect')") == 0
    rewards = [json.loads(r) for (r,) in arl_run.query("select rewards from environment_steps")]
    assert all(r["ttt.player_1"] >= 0 for r in rewards)


def test_two_perfect_tic_tac_toe_players_always_draw_in_nine_moves(arl_run, no_leaks) -> None:
    done = arl_run.run(str(EXPERIMENTS / "tictactoe.yml"), "--set", "schedule.play.agents.1.muscle.params.epsilon=0.0")
    assert done.returncode == 0, done.stderr
    assert "phases 1, episodes 6, steps 54, actions 54" in done.stdout
    q = arl_run.scalar
    assert q("select count(*) from episodes where end_reason = 'terminated' and steps = 9") == 6
    assert q("select count(*) from environment_steps") == 54
    assert q("select count(*) from environment_steps where terminated and step = 9") == 6
    assert q("select count(*) from agent_actions") == 54
    assert q("select count(*) from agent_actions where objective != 0") == 0
