"""How episodes, phases and runs end: conditions and simulations end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import experiment_files

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SECOND_PHASE = "  - second:\n      phase_config: {mode: test, episodes: 1}\n"


def write(
    tmp: Path,
    *,
    length: int = 10,
    simulation: str = "vanilla",
    conditions: str = "[{name: arl.conditions:EnvironmentDone}]",
    run_conditions: str = "",
    episodes: int = 1,
) -> str:
    """Two test phases, the second inheriting the first's environment and simulation;
    ``run_conditions`` is top-level YAML text."""
    return experiment_files.write(
        tmp,
        uid="ends",
        phase="first",
        env_params=f"{{sensors: 4, actuators: 4, episode_length: {length}}}",
        simulation=f"{{name: {simulation}, conditions: {conditions}}}",
        mode="test",
        episodes=episodes,
        more=SECOND_PHASE + run_conditions + "\n",
    )


def _phases(arl_run) -> list[tuple[str, str]]:
    return arl_run.query("select name, end_reason from phases order by `index`")


def _run(arl_run) -> tuple[str, str]:
    return arl_run.query("select status, end_reason from experiment_runs")[0]


def test_a_phase_wall_clock_ends_each_phase_and_its_episode_and_the_run_goes_on(arl_run, no_leaks) -> None:
    conditions = "[{name: arl.conditions:EnvironmentDone}, {name: arl.conditions:WallClock, params: {seconds: 0.5}}]"
    done = arl_run.run(write(arl_run.tmp, length=1_000_000, episodes=1000, conditions=conditions))
    assert done.returncode == 0, done.stderr
    # The second phase inherits the simulation, wall clock and all.
    assert _phases(arl_run) == [("first", "wall_clock"), ("second", "wall_clock")]
    assert _run(arl_run) == ("FINISHED", "completed")
    [(episodes, reasons)] = arl_run.query(
        "select count(*), group_concat(e.end_reason) from episodes e join phases p on e.phase_id = p.id"
        " where p.name = 'first'"
    )
    assert (episodes, reasons) == (1, "wall_clock")


def test_max_episodes_ends_the_phase_early(arl_run, no_leaks) -> None:
    conditions = "[{name: arl.conditions:EnvironmentDone}, {name: arl.conditions:MaxEpisodes, params: {episodes: 3}}]"
    done = arl_run.run(write(arl_run.tmp, episodes=10, conditions=conditions))
    assert done.returncode == 0, done.stderr
    assert _phases(arl_run) == [("first", "max_episodes"), ("second", "completed")]
    assert arl_run.count("episodes") == 3 + 1
    assert arl_run.count("environment_steps") == (3 + 1) * 10


@pytest.mark.parametrize(
    ("threshold", "phases", "reason"),
    [
        # Asked after every episode: the first episode reaches it, so its phase ends too.
        (-1e9, [("first", "reward_threshold")], "reward_threshold"),
        (1e9, [("first", "completed"), ("second", "completed")], "completed"),
    ],
)
def test_a_run_reward_threshold_skips_the_phases_after_it_is_reached(
    arl_run, no_leaks, threshold, phases, reason
) -> None:
    params = f"{{agent: defender, threshold: {threshold}}}"
    run_conditions = f"conditions:\n  - {{name: arl.conditions:RewardThreshold, params: {params}}}"
    done = arl_run.run(write(arl_run.tmp, run_conditions=run_conditions, episodes=2))
    assert done.returncode == 0, done.stderr
    assert _phases(arl_run) == phases
    assert _run(arl_run) == ("FINISHED", reason)
    if reason != "completed":
        assert f"FINISHED, ended by {reason}" in done.stdout
        assert arl_run.count("episodes") == 1


def test_a_run_wall_clock_ends_the_run_in_the_middle_of_a_phase(arl_run, no_leaks) -> None:
    run_conditions = "conditions: [{name: arl.conditions:WallClock, params: {seconds: 0.5}}]"
    done = arl_run.run(write(arl_run.tmp, run_conditions=run_conditions, length=1_000_000))
    assert done.returncode == 0, done.stderr
    assert _phases(arl_run) == [("first", "wall_clock")]
    assert _run(arl_run) == ("FINISHED", "wall_clock")
    [(detail,)] = arl_run.query("select detail from events where kind = 'run_condition'")
    assert json.loads(detail) == {"phase": "first", "worker": 0, "reason": "wall_clock"}
    assert arl_run.scalar("select end_reason from episodes") == "wall_clock"
    assert arl_run.count("environment_steps") > 0


def test_a_users_run_condition_sees_the_current_phase(arl_run, no_leaks) -> None:
    run_conditions = "conditions: [{name: arl_test_components:EndsRunAfterFirstEpisode}]"
    done = arl_run.run(write(arl_run.tmp, run_conditions=run_conditions, episodes=5))
    assert done.returncode == 0, done.stderr
    assert _phases(arl_run) == [("first", "enough")]
    assert _run(arl_run) == ("FINISHED", "enough")
    assert arl_run.count("episodes") == 1


def test_a_users_simulation_chooses_who_acts_in_each_step(arl_run, no_leaks) -> None:
    simulation = "arl_test_components:AttackerEveryThirdStep, params: {period: 3}"
    done = arl_run.run(write(arl_run.tmp, simulation=simulation, length=9))
    assert done.returncode == 0, done.stderr
    counts = dict(arl_run.query("select agent, count(*) from agent_actions group by agent"))
    # Steps 0, 3 and 6 of each 9-step episode have the attacker; two phases of one episode.
    assert counts == {"defender": 2 * 9, "attacker": 2 * 3}
    steps = [s for (s,) in arl_run.query("select step from agent_actions where agent = 'attacker' order by id")]
    assert steps == [1, 4, 7, 1, 4, 7]


def test_a_simulation_that_picks_nobody_fails_the_run_saying_so(arl_run, no_leaks) -> None:
    done = arl_run.run(write(arl_run.tmp, simulation="arl_test_components:NobodyActs"))
    assert done.returncode == 1
    assert "NobodyActs.actors(0, 0) returned []: it must name one or more of the agents" in done.stdout + done.stderr
    assert _run(arl_run) == ("FAILED", "failed")
    [(detail,)] = arl_run.query("select detail from events where kind = 'failed'")
    assert "NobodyActs.actors(0, 0) returned []" in json.loads(detail)["error"]
