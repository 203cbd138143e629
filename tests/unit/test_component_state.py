"""Component state (save_state / load_state) without processes: each of arl's components
runs a while, saves its state, and goes on; a fresh one, set up the same way, loads that
state and must give exactly the same outputs as the one that went on."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from arl.agents.dqn import DQNBrain, DQNMuscle
from arl.agents.ppo import PPOBrain, PPOMuscle
from arl.api import Brain, Environment, Experience, Muscle, Objective
from arl.conditions import MaxSteps
from arl.dummy import DummyBrain, DummyEnvironment, DummyMuscle, DummyObjective
from arl.examples.cartpole import BalancingMuscle, HillClimbingBrain
from arl.examples.rps import BiasedMuscle, CounterMuscle, FrequencyBrain
from arl.examples.tictactoe import MinimaxMuscle
from arl.examples.voltage import BiasGainClimber, BusEnvironment, LinearMuscle
from arl.gym import GymEnvironment
from arl.objectives import RewardOf
from arl.pettingzoo import AgentDone, PettingZooEnvironment
from arl.simulation import TakingTurns

SEED = 7


class Loop:
    """A worker's step loop, as small as it gets: one environment, one agent, the
    episode count its own (arl's loop state, not a component's)."""

    def __init__(self, env: Environment, muscle: Muscle, brain: Brain, objective: Objective) -> None:
        self.env, self.muscle, self.brain, self.objective = env, muscle, brain, objective
        self.episode = 0
        self.sensors: Any = None

    def start(self) -> None:
        self.sensors = self.env.reset(seed=SEED + self.episode)

    def run(self, steps: int) -> list[Any]:
        out: list[Any] = []
        for _ in range(steps):
            setpoints = self.muscle.act(self.sensors)
            result = self.env.step(setpoints)
            objective = self.objective.evaluate(result.rewards)
            experience = Experience(
                0,
                self.sensors,
                setpoints,
                result.rewards,
                objective,
                result.sensors,
                result.terminated,
                result.truncated,
                self.muscle.policy_version,
            )
            update = self.brain.learn(experience)
            if update is not None:
                self.muscle.update(update)
            out.append((_plain(self.sensors), _plain(setpoints), result.rewards, result.terminated, result.truncated))
            out.append(("version", self.muscle.policy_version))
            self.sensors = result.sensors
            if result.terminated or result.truncated:
                self.episode += 1
                self.start()
        return out

    def save(self, root: Path) -> None:
        for name, part in self._parts():
            (root / name).mkdir()
            part.save_state(root / name)

    def load(self, root: Path, episode: int, sensors: Any) -> None:
        self.episode, self.sensors = episode, sensors
        for name, part in self._parts():
            part.load_state(root / name)

    def _parts(self) -> list[tuple[str, Any]]:
        return [("env", self.env), ("muscle", self.muscle), ("brain", self.brain), ("objective", self.objective)]


def _plain(values: Any) -> Any:
    return {key: np.asarray(value).tolist() for key, value in values.items()}


def _set_up(make: Callable[[], tuple[Environment, Muscle, Brain]]) -> Loop:
    env, muscle, brain = make()
    muscle.setup(env.sensors(), env.actuators(), SEED + 1)
    brain.setup(env.sensors(), env.actuators(), SEED + 2)
    first = brain.policy()
    if first is not None:
        muscle.update(first)
    return Loop(env, muscle, brain, DummyObjective())


def _dummy() -> tuple[Environment, Muscle, Brain]:
    return DummyEnvironment(sensors=3, actuators=2, episode_length=7), DummyMuscle(), DummyBrain()


def _dqn() -> tuple[Environment, Muscle, Brain]:
    brain = DQNBrain(
        hidden=(16,),
        batch_size=8,
        minimum_buffer_size=16,
        train_every=4,
        gradient_steps=2,
        target_update=6,
        broadcast_every=8,
        n_step=3,  # the windows and the buffer (not saved by save() without save_buffer) are the state's
    )
    return GymEnvironment("CartPole-v1", max_episode_steps=25), DQNMuscle(decay_steps=200), brain


def _ppo() -> tuple[Environment, Muscle, Brain]:
    brain = PPOBrain(hidden=(16,), n_steps=24, batch_size=8, n_epochs=2, anneal_steps=500)
    return GymEnvironment("CartPole-v1", max_episode_steps=25), PPOMuscle(), brain


@pytest.mark.parametrize("make", [_dummy, _dqn, _ppo], ids=["dummy", "dqn-gym", "ppo-gym"])
def test_a_loaded_state_continues_exactly_as_the_saving_components_went_on(
    make: Callable[[], tuple[Environment, Muscle, Brain]], tmp_path: Path
) -> None:
    going = _set_up(make)
    going.start()
    going.run(61)  # mid-episode (the time limit's count matters), after some updates
    going.save(tmp_path)
    episode, sensors = going.episode, going.sensors
    expected = going.run(80)

    fresh = _set_up(make)  # not reset: a resumed worker loads instead
    fresh.load(tmp_path, episode, sensors)
    assert fresh.run(80) == expected
    assert any(r[3] or r[4] for r in expected if r[0] != "version")  # an episode ended after the save
    after_going, after_fresh = going.brain.policy(), fresh.brain.policy()
    if after_going is None:
        assert isinstance(going.brain, DummyBrain)
        assert isinstance(fresh.brain, DummyBrain)
        assert (fresh.brain.experiences, fresh.brain.objective_sum) == (
            going.brain.experiences,
            going.brain.objective_sum,
        )
    else:
        assert after_fresh["version"] == after_going["version"] > 0  # it learnt after the save
        for name, weights in after_going["weights"].items():
            np.testing.assert_array_equal(after_fresh["weights"][name], weights)


def test_the_learning_muscles_keep_their_schedule_and_weights(tmp_path: Path) -> None:
    loop = _set_up(_dqn)
    loop.start()
    loop.run(30)
    assert isinstance(loop.muscle, DQNMuscle)
    loop.muscle.save_state(tmp_path)
    fresh = DQNMuscle(decay_steps=200)
    fresh.setup(loop.env.sensors(), loop.env.actuators(), SEED + 1)  # no weights given
    fresh.load_state(tmp_path)
    assert (fresh.steps, fresh.epsilon, fresh.policy_version) == (30, loop.muscle.epsilon, loop.muscle.policy_version)
    obs = np.zeros(4, np.float32)
    assert fresh.network is not None
    assert loop.muscle.network is not None
    np.testing.assert_array_equal(fresh.network(obs[None]), loop.muscle.network(obs[None]))


def test_the_defaults_write_nothing_and_load_from_an_empty_folder(tmp_path: Path) -> None:
    env = DummyEnvironment()
    defaults: list[Any] = [DummyObjective(), MaxSteps(3), TakingTurns()]
    for part in defaults:
        part.save_state(tmp_path)
        part.load_state(tmp_path)
    assert list(tmp_path.iterdir()) == []
    Environment.save_state(env, tmp_path)  # the base class's, which DummyEnvironment overrides
    Environment.load_state(env, tmp_path)
    Muscle.save_state(DummyMuscle(), tmp_path)
    Muscle.load_state(DummyMuscle(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_gym_state_refuses_other_wrappers_and_restores_a_generator_without_the_pickle(tmp_path: Path) -> None:
    env = GymEnvironment("CartPole-v1", max_episode_steps=25)
    env.reset(seed=SEED)
    env.save_state(tmp_path)
    draws = env.env.unwrapped.np_random.random(3)
    (tmp_path / "environment.pickle").unlink()  # as for an environment that does not pickle
    fresh = GymEnvironment("CartPole-v1", max_episode_steps=25)
    fresh.load_state(tmp_path)
    np.testing.assert_array_equal(fresh.env.unwrapped.np_random.random(3), draws)
    with pytest.raises(ValueError, match="wrappers"):
        GymEnvironment("CartPole-v1", disable_env_checker=True).load_state(tmp_path)


# --------------------------------------------------------------------------- the PettingZoo adapter and the examples


@dataclass
class Member:
    """One agent of a :class:`Team`: its parts and the ids it reads and sets."""

    muscle: Muscle
    brain: Brain
    objective: Objective
    sensors: list[str]
    actuators: list[str]

    def parts(self) -> list[tuple[str, Any]]:
        return [("muscle", self.muscle), ("brain", self.brain), ("objective", self.objective)]


class Team(Loop):
    """:class:`Loop` for several agents on one environment, stepped as simulation vanilla
    steps them: each acts on its own sensors, their setpoints go into one step, and each
    learns from its own objective."""

    def __init__(self, env: Environment, members: list[Member]) -> None:
        super().__init__(env, members[0].muscle, members[0].brain, members[0].objective)
        self.members = members
        infos = {s.id: s for s in env.sensors()} | {a.id: a for a in env.actuators()}
        for index, member in enumerate(members):
            mine = ([infos[i] for i in member.sensors], [infos[i] for i in member.actuators])
            member.muscle.setup(*mine, SEED + 1 + 2 * index)
            member.brain.setup(*mine, SEED + 2 + 2 * index)
            first = member.brain.policy()
            if first is not None:
                member.muscle.update(first)

    def run(self, steps: int) -> list[Any]:
        out: list[Any] = []
        for _ in range(steps):
            inputs = [{i: self.sensors[i] for i in m.sensors if i in self.sensors} for m in self.members]
            chosen = [dict(m.muscle.act(mine)) for m, mine in zip(self.members, inputs, strict=True)]
            setpoints = {key: value for part in chosen for key, value in part.items()}
            result = self.env.step(setpoints)
            for member, mine, set_by_it in zip(self.members, inputs, chosen, strict=True):
                after = {i: result.sensors[i] for i in member.sensors if i in result.sensors}
                objective = member.objective.evaluate(result.rewards)
                experience = Experience(
                    0, mine, set_by_it, result.rewards, objective, after, result.terminated, result.truncated
                )
                update = member.brain.learn(experience)
                if update is not None:
                    member.muscle.update(update)
            out.append((_plain(self.sensors), _plain(setpoints), result.rewards, result.terminated, result.truncated))
            self.sensors = result.sensors
            if result.terminated or result.truncated:
                self.episode += 1
                self.start()
        return out

    def _parts(self) -> list[tuple[str, Any]]:
        parts: list[tuple[str, Any]] = [("env", self.env)]
        for index, member in enumerate(self.members):
            parts += [(f"{name}{index}", part) for name, part in member.parts()]
        return parts

    def policies(self) -> list[Any]:
        return [_plain_policy(m.brain.policy()) for m in self.members] + [
            (m.brain.experiences, m.brain.objective_sum) for m in self.members if isinstance(m.brain, DummyBrain)
        ]


def _plain_policy(policy: Any) -> Any:
    return np.asarray(policy).tolist() if policy is not None else None


def _players(env: PettingZooEnvironment, *parts: tuple[Muscle, Brain, Objective]) -> Team:
    """Each of ``parts`` plays the PettingZoo agent of that place, reading all its sensors
    but ``done``, rewarded by its own reward."""
    members = []
    for agent, (muscle, brain, _) in zip(env._agents, parts, strict=True):
        sensors = [s.id for s in env.sensors() if s.id.startswith(f"{agent}.") and not s.id.endswith(".done")]
        members.append(Member(muscle, brain, RewardOf(agent), sensors, [f"{agent}.action"]))
    return Team(env, members)


def _rps(api: str) -> Team:
    env = PettingZooEnvironment("arl.examples.rps", api, max_cycles=8)
    learner = (CounterMuscle(epsilon=0.2), FrequencyBrain(), DummyObjective())
    return _players(env, learner, (BiasedMuscle(), DummyBrain(), DummyObjective()))


def _tictactoe() -> Team:
    env = PettingZooEnvironment("arl.examples.tictactoe")
    players = [(MinimaxMuscle(epsilon=0.5), DummyBrain(), DummyObjective()) for _ in range(2)]
    return _players(env, *players)


def _voltage() -> Team:
    env = BusEnvironment(episode_length=9, noise=0.02)
    defender = Member(LinearMuscle(), BiasGainClimber(), RewardOf("quality"), ["voltage", "load"], ["compensation"])
    attacker = Member(
        LinearMuscle(), BiasGainClimber(noise=(0.02, 0.5)), RewardOf("quality", -1.0), ["voltage"], ["attack"]
    )
    return Team(env, [defender, attacker])


def _cartpole() -> Team:
    env = GymEnvironment("CartPole-v1", max_episode_steps=12)
    return Team(env, [Member(BalancingMuscle(), HillClimbingBrain(2.0), DummyObjective(), ["obs"], ["action"])])


@pytest.mark.parametrize(
    "make",
    [functools.partial(_rps, "parallel"), functools.partial(_rps, "aec"), _tictactoe, _voltage, _cartpole],
    ids=["rps-parallel", "rps-aec", "tictactoe", "voltage", "cartpole"],
)
def test_the_examples_and_the_pettingzoo_adapter_continue_exactly_from_a_loaded_state(
    make: Callable[[], Team], tmp_path: Path
) -> None:
    going = make()
    going.start()
    going.run(41)  # mid-episode, after several episodes ended (and the brains learnt)
    going.save(tmp_path)
    episode, sensors = going.episode, going.sensors
    expected = going.run(40)

    fresh = make()  # not reset: a resumed worker loads instead
    fresh.load(tmp_path, episode, sensors)
    assert fresh.run(40) == expected
    assert fresh.policies() == going.policies()
    assert sum(r[3] or r[4] for r in expected) >= 2  # episodes ended, and started again, after the save


class Drawing(ParallelEnv):  # type: ignore[misc]  # PettingZoo has no type hints
    """Agents ``a`` and ``b`` observe numbers drawn from the environment's generator; ``b``
    is done after the first step. With a lock, it does not pickle."""

    metadata = {"name": "drawing_v0", "render_modes": []}
    render_mode = None

    def __init__(self, lock: bool = False) -> None:
        self.possible_agents = ["a", "b"]
        self.agents: list[str] = []
        self.lock = threading.Lock() if lock else None
        self.np_random = np.random.default_rng(0)

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return spaces.Box(0.0, 1.0, shape=())

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return spaces.Discrete(2)

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict[str, float], dict[str, Any]]:
        self.np_random = np.random.Generator(np.random.MT19937(seed))  # its state holds an array
        self.agents = list(self.possible_agents)
        return self._draw(), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[Any, ...]:
        observations, live = self._draw(), self.agents
        self.agents = ["a"]
        return (
            observations,
            dict.fromkeys(live, 0.0),
            {agent: agent == "b" for agent in live},
            dict.fromkeys(live, False),
            {agent: {} for agent in live},
        )

    def _draw(self) -> dict[str, float]:
        return {agent: float(self.np_random.random()) for agent in self.agents}


def drawing() -> Drawing:
    return Drawing()


def locked_drawing() -> Drawing:
    return Drawing(lock=True)


BOTH = {"a.action": 1, "b.action": 1}


def test_a_pettingzoo_state_keeps_which_agents_are_done_and_refuses_another_environment(tmp_path: Path) -> None:
    env = PettingZooEnvironment(f"{__name__}:drawing")
    env.reset(seed=SEED)
    env.step(BOTH)  # b is done now; a plays on
    env.save_state(tmp_path)
    expected = [_plain(env.step(BOTH).sensors) for _ in range(3)]
    assert {e["b.done"] for e in expected} == {int(AgentDone.TERMINATED)}
    fresh = PettingZooEnvironment(f"{__name__}:drawing")  # never reset
    fresh.load_state(tmp_path)
    assert [_plain(fresh.step(BOTH).sensors) for _ in range(3)] == expected

    with pytest.raises(ValueError, match="saved from a parallel environment"):
        PettingZooEnvironment("arl.examples.rps", "aec").load_state(tmp_path)
    with pytest.raises(ValueError, match=r"Drawing.*not a parallel one made of .*RockPaperScissors"):
        PettingZooEnvironment("arl.examples.rps").load_state(tmp_path)


def test_a_pettingzoo_state_that_does_not_pickle_keeps_the_generators_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = PettingZooEnvironment(f"{__name__}:locked_drawing")
    env.reset(seed=SEED)
    env.step(BOTH)
    with caplog.at_level(logging.WARNING, logger="arl.pettingzoo"):
        env.save_state(tmp_path)
    assert "does not pickle" in caplog.text
    assert not (tmp_path / "env.pickle").exists()
    expected = [env.step(BOTH).sensors["a.obs"] for _ in range(3)]
    fresh = PettingZooEnvironment(f"{__name__}:locked_drawing")
    fresh.reset(seed=SEED + 1)  # another inner state: only the generators come back
    fresh.step(BOTH)
    with caplog.at_level(logging.WARNING, logger="arl.pettingzoo"):
        fresh.load_state(tmp_path)
    assert "generators only" in caplog.text
    assert isinstance(fresh.env.np_random.bit_generator, np.random.MT19937)
    assert [fresh.step(BOTH).sensors["a.obs"] for _ in range(3)] == expected
