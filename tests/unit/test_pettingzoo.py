"""arl.pettingzoo in-process: ids and spaces, parallel and AEC steps, how episodes end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pettingzoo
import pytest
from gymnasium import spaces
from pettingzoo.utils import parallel_to_aec
from pettingzoo.utils.env import ParallelEnv

from arl import spaces as wire
from arl.api import Experience
from arl.errors import ComponentLoadError
from arl.examples.rps import BiasedMuscle, CounterMuscle, FrequencyBrain, best_responses, score
from arl.examples.tictactoe import MinimaxMuscle, best_moves
from arl.objectives import RewardOf
from arl.pettingzoo import AgentDone, PettingZooEnvironment, make

pytestmark = pytest.mark.timeout(30)
HERE = __name__  # "module:function" references below build the environments of this module


class Scripted(ParallelEnv):  # type: ignore[misc]
    """Agents ``a`` and ``b``; ``ends`` says which agent ends how after which step.

    Observations count the steps; each agent's reward is its action; ended agents leave
    ``agents``, as PettingZoo's rule says.
    """

    metadata = {"name": "scripted_v0", "render_modes": []}
    render_mode = None

    def __init__(self, ends: dict[int, dict[str, str]]) -> None:
        self.possible_agents = ["a", "b"]
        self.agents: list[str] = []
        self.ends = ends
        self.seeds: list[int | None] = []
        self.actions: list[dict[str, Any]] = []
        self.closed = False
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return spaces.Discrete(100)

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return spaces.Discrete(5)

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict[str, int], dict[str, Any]]:
        self.seeds.append(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        return dict.fromkeys(self.agents, 0), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[Any, ...]:
        self.actions.append(dict(actions))
        self.t += 1
        ends = self.ends.get(self.t, {})
        observations = dict.fromkeys(self.agents, self.t)
        rewards = {agent: float(actions[agent]) for agent in self.agents}
        terminations = {agent: ends.get(agent) == "terminated" for agent in self.agents}
        truncations = {agent: ends.get(agent) == "truncated" for agent in self.agents}
        infos: dict[str, Any] = {agent: {} for agent in self.agents}
        self.agents = [agent for agent in self.agents if agent not in ends]
        return observations, rewards, terminations, truncations, infos

    def close(self) -> None:
        self.closed = True


def truncating() -> Scripted:
    return Scripted({3: {"a": "truncated", "b": "truncated"}})


def terminating() -> Scripted:
    return Scripted({2: {"a": "terminated", "b": "terminated"}})


def staggered() -> Scripted:
    """``a`` terminates after step 1; ``b`` plays on and is truncated after step 3."""
    return Scripted({1: {"a": "terminated"}, 3: {"b": "truncated"}})


def split_end() -> Scripted:
    """Both end after step 2, ``a`` terminated, ``b`` truncated."""
    return Scripted({2: {"a": "terminated", "b": "truncated"}})


def staggered_aec() -> Any:
    return parallel_to_aec(staggered())


def both(a: int = 1, b: int = 2) -> dict[str, int]:
    return {"a.action": a, "b.action": b}


# --------------------------------------------------------------------------- ids and spaces


def test_a_discrete_observation_is_one_sensor_per_agent_and_every_space_crosses_the_wire() -> None:
    env = PettingZooEnvironment(env="arl.examples.rps")
    assert env.api == "parallel"
    assert [s.id for s in env.sensors()] == ["player_0.obs", "player_0.done", "player_1.obs", "player_1.done"]
    assert [a.id for a in env.actuators()] == ["player_0.action", "player_1.action"]
    for part in [*env.sensors(), *env.actuators()]:
        assert wire.build(wire.describe(part.space)) == part.space
    assert env.sensors()[0].space == spaces.Discrete(4)
    assert env.sensors()[1].space == spaces.Discrete(3)
    assert env.actuators()[0].space == spaces.Discrete(3)


def test_a_dict_observation_is_one_sensor_per_key_so_the_action_mask_stands_alone() -> None:
    env = PettingZooEnvironment(env="arl.examples.tictactoe")
    assert env.api == "aec"  # the module has no parallel_env
    ids = {s.id: s.space for s in env.sensors()}
    assert sorted(ids) == [
        "player_1.action_mask", "player_1.done", "player_1.observation",
        "player_2.action_mask", "player_2.done", "player_2.observation",
    ]  # fmt: skip
    assert ids["player_1.action_mask"] == spaces.Box(0, 1, (9,), np.int8)
    for part in [*env.sensors(), *env.actuators()]:
        assert wire.build(wire.describe(part.space)) == part.space
    readings = env.reset(seed=0)
    assert readings["player_1.action_mask"].tolist() == [1] * 9
    assert readings["player_2.action_mask"].tolist() == [0] * 9
    assert readings["player_1.observation"].shape == (3, 3, 2)


# --------------------------------------------------------------------------- parallel


def test_parallel_reset_passes_the_seed_modulo_2_32_and_reads_every_agent() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:truncating")
    readings = env.reset(seed=2**40 + 7)
    assert env.env.seeds == [7]
    assert readings == {"a.obs": 0, "b.obs": 0, "a.done": 0, "b.done": 0}


def test_a_parallel_step_passes_every_live_agents_action_and_keys_rewards_by_agent() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:truncating")
    env.reset(seed=1)
    result = env.step(both(3, 4))
    assert env.env.actions == [{"a": 3, "b": 4}]
    assert result.rewards == {"a": 3.0, "b": 4.0}
    assert result.sensors == {"a.obs": 1, "b.obs": 1, "a.done": 0, "b.done": 0}
    assert (result.terminated, result.truncated) == (False, False)


def test_every_agent_truncated_ends_the_episode_truncated_not_terminated() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:truncating")
    env.reset(seed=1)
    assert [(r.terminated, r.truncated) for r in (env.step(both()), env.step(both()))] == [(False, False)] * 2
    last = env.step(both())
    assert (last.terminated, last.truncated) == (False, True)
    assert (last.sensors["a.done"], last.sensors["b.done"]) == (AgentDone.TRUNCATED, AgentDone.TRUNCATED)


def test_every_agent_terminated_ends_the_episode_terminated_not_truncated() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:terminating")
    env.reset(seed=1)
    assert (env.step(both()).terminated, env.step(both()).terminated) == (False, True)
    assert env.done == {"a": AgentDone.TERMINATED, "b": AgentDone.TERMINATED}


def test_an_agent_that_is_done_early_does_not_end_the_episode_and_needs_no_action() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:staggered")
    env.reset(seed=1)
    first = env.step(both())
    assert (first.terminated, first.truncated) == (False, False)
    assert first.sensors["a.done"] == AgentDone.TERMINATED
    second = env.step({"b.action": 2})  # a is out: no action needed, none passed
    assert env.env.actions[-1] == {"b": 2}
    assert second.rewards == {"a": 0.0, "b": 2.0}  # every agent's reward id, every step
    assert "a.obs" not in second.sensors
    env.step(both())  # a setpoint for an agent that is done is dropped
    assert env.env.actions[-1] == {"b": 2}
    # b was cut short: the episode could have gone on, though a terminated earlier.
    assert env.done == {"a": AgentDone.TERMINATED, "b": AgentDone.TRUNCATED}


def test_the_episode_is_truncated_when_an_agent_is_truncated_on_its_last_step() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:split_end")
    env.reset(seed=1)
    env.step(both())
    last = env.step(both())
    assert (last.terminated, last.truncated) == (False, True)


def test_staggered_ends_report_the_episode_as_truncated_at_the_last_step() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:staggered")
    env.reset(seed=1)
    results = [env.step(both()) for _ in range(3)]
    assert [(r.terminated, r.truncated) for r in results] == [(False, False), (False, False), (False, True)]


def test_a_missing_action_of_a_live_agent_is_an_error_naming_it() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:truncating")
    env.reset(seed=1)
    with pytest.raises(ValueError, match=r"\['b'\].*b\.action"):
        env.step({"a.action": 1})
    assert env.env.actions == []


def test_a_step_after_the_end_is_an_error_and_reset_starts_over() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:terminating")
    env.reset(seed=1)
    env.step(both())
    env.step(both())
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(both())
    assert env.reset(seed=2)["a.done"] == AgentDone.PLAYING
    assert env.step(both()).terminated is False


def test_close_closes_the_pettingzoo_environment() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:truncating")
    env.close()
    assert env.env.closed


# --------------------------------------------------------------------------- AEC


def test_an_aec_step_applies_the_selected_agents_action_and_sums_the_rewards() -> None:
    env = PettingZooEnvironment(env="arl.examples.rps", api="aec", max_cycles=1)
    env.reset(seed=1)
    assert env.env.agent_selection == "player_0"
    first = env.step({"player_0.action": 1, "player_1.action": 2})  # player_1's is not its turn: ignored
    assert first.rewards == {"player_0": 0.0, "player_1": 0.0}
    assert env.env.agent_selection == "player_1"
    last = env.step({"player_1.action": 0})  # paper (player_0) beats rock
    assert last.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert (last.sensors["player_0.obs"], last.sensors["player_1.obs"]) == (0, 1)
    assert (last.terminated, last.truncated) == (False, True)


def test_an_aec_step_without_the_selected_agents_action_is_an_error_naming_it() -> None:
    env = PettingZooEnvironment(env="arl.examples.tictactoe")
    env.reset(seed=1)
    with pytest.raises(ValueError, match=r"player_1's turn.*player_1\.action"):
        env.step({"player_2.action": 4})


def test_an_aec_win_terminates_every_agent_and_rewards_both() -> None:
    env = PettingZooEnvironment(env="arl.examples.tictactoe")
    env.reset(seed=1)
    moves = [("player_1", 0), ("player_2", 3), ("player_1", 1), ("player_2", 4), ("player_1", 2)]
    results = [env.step({f"{agent}.action": square}) for agent, square in moves]
    assert [(r.terminated, r.truncated) for r in results] == [(False, False)] * 4 + [(True, False)]
    assert results[-1].rewards == {"player_1": 1.0, "player_2": -1.0}
    assert results[-1].sensors["player_2.done"] == AgentDone.TERMINATED


def test_an_aec_agent_that_is_done_is_stepped_with_none_by_the_adapter() -> None:
    env = PettingZooEnvironment(env=f"{HERE}:staggered_aec")
    assert env.api == "aec"
    env.reset(seed=1)
    env.step({"a.action": 1})
    after_cycle = env.step({"b.action": 2})  # the parallel step runs: a terminates
    assert after_cycle.sensors["a.done"] == AgentDone.TERMINATED
    assert after_cycle.rewards == {"a": 1.0, "b": 2.0}
    assert (after_cycle.terminated, after_cycle.truncated) == (False, False)
    # a's None step was made for it: it is b's turn, and only b's action is needed.
    assert env.env.agent_selection == "b"
    assert "a" not in env.env.agents
    env.step({"b.action": 3})
    last = env.step({"b.action": 3})
    assert (last.terminated, last.truncated) == (False, True)


def test_two_perfect_players_draw_in_nine_moves() -> None:
    env = PettingZooEnvironment(env="arl.examples.tictactoe")
    muscles = {}
    for seed, agent in enumerate(["player_1", "player_2"]):
        muscle = MinimaxMuscle()
        sensors = [s for s in env.sensors() if s.id.startswith(agent)]
        muscle.setup(sensors, [a for a in env.actuators() if a.id.startswith(agent)], seed)
        muscles[agent] = muscle
    readings = env.reset(seed=0)
    for step in range(1, 10):
        agent = env.env.agent_selection
        result = env.step(muscles[agent].act(readings))
        readings = {**readings, **result.sensors}
        assert result.terminated == (step == 9)
    assert result.rewards == {"player_1": 0.0, "player_2": 0.0}


# --------------------------------------------------------------------------- building


def test_the_api_asked_for_must_match_what_was_built() -> None:
    with pytest.raises(ValueError, match="parallel API, but api 'aec'"):
        make(f"{HERE}:truncating", "aec")
    with pytest.raises(ValueError, match="api must be"):
        make("arl.examples.rps", "turns")


def test_a_missing_module_or_builder_is_a_load_error() -> None:
    with pytest.raises(ComponentLoadError, match="no_such_module"):
        make("no_such_module")
    with pytest.raises(ComponentLoadError, match="no 'parallel_env'"):
        make("arl.examples.tictactoe", "parallel")


def test_the_check_honours_the_api_and_the_builder_s_params() -> None:
    assert PettingZooEnvironment.problem("arl.examples.rps", max_cycles=3) is None
    assert PettingZooEnvironment.problem("arl.examples.tictactoe", "aec") is None
    assert "no 'parallel_env'" in str(PettingZooEnvironment.problem("arl.examples.tictactoe", "parallel"))
    assert "api must be" in str(PettingZooEnvironment.problem("arl.examples.rps", "turns"))
    assert "takes no parameter 'apii'" in str(PettingZooEnvironment.problem("arl.examples.rps", apii="aec"))
    assert "no_such_module" in str(PettingZooEnvironment.problem("no_such_module"))
    assert "has no attribute 'parallel_envv'" in str(PettingZooEnvironment.problem("arl.examples.rps:parallel_envv"))
    assert "no environment 'arltest/none-v0'" in str(PettingZooEnvironment.problem("arltest/none-v0"))


def test_a_registry_id_is_built_by_pettingzoo_make() -> None:
    env_id = "arltest/scripted-v0"
    pettingzoo.register("parallel", env_id, entry_point=truncating)
    pettingzoo.register("aec", env_id, entry_point=staggered_aec)
    try:
        assert make(env_id)[1] == "parallel"  # parallel when there is a parallel version
        assert make(env_id, "aec")[1] == "aec"
    finally:
        del pettingzoo.parallel_registry[env_id], pettingzoo.aec_registry[env_id]


# --------------------------------------------------------------------------- objective and examples


def test_reward_of_takes_one_reward_and_names_the_ids_when_it_is_missing() -> None:
    objective = RewardOf("rps.player_1", weight=-2.0)
    assert objective.evaluate({"rps.player_0": 1.0, "rps.player_1": -1.0}) == 2.0
    with pytest.raises(ValueError, match=r"'rps\.player_1'.*\['rps\.player_0'\]"):
        objective.evaluate({"rps.player_0": 1.0})


def test_rock_paper_scissors_rules_and_best_responses() -> None:
    assert [score(1, 0), score(0, 1), score(2, 2), score(0, 2)] == [1, -1, 0, 1]
    assert best_responses([5, 1, 1]) == [1]  # mostly rock: paper
    assert best_responses([1, 1, 1]) == [0, 1, 2]
    assert best_moves([1, 1, 0, 2, 2, 0, 0, 0, 0]) == [2]  # win at once


def test_the_frequency_brain_teaches_the_counter_muscle_to_beat_a_rock_lover() -> None:
    env = PettingZooEnvironment(env="arl.examples.rps", max_cycles=200)
    learner, brain, opponent = CounterMuscle(epsilon=0.0), FrequencyBrain(), BiasedMuscle([0.8, 0.1, 0.1])
    mine = ([s for s in env.sensors() if s.id == "player_0.obs"], [env.actuators()[0]])
    learner.setup(*mine, seed=1)
    brain.setup(*mine, seed=2)
    opponent.setup([], [env.actuators()[1]], seed=3)
    readings = env.reset(seed=0)
    for _ in range(50):
        setpoints = {**learner.act(readings), **opponent.act(readings)}
        result = env.step(setpoints)
        update = brain.learn(Experience(0, readings, setpoints, result.rewards, 0.0, result.sensors, False, False))
        if update is not None:
            learner.update(update)
        readings = result.sensors
    assert learner.act(readings) == {"player_0.action": 1}
