"""Component state (save_state / load_state) without processes: each of arl's components
runs a while, saves its state, and goes on; a fresh one, set up the same way, loads that
state and must give exactly the same outputs as the one that went on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arl.agents.dqn import DQNBrain, DQNMuscle
from arl.agents.ppo import PPOBrain, PPOMuscle
from arl.api import Brain, Environment, Experience, Muscle, Objective
from arl.conditions import MaxSteps
from arl.dummy import DummyBrain, DummyEnvironment, DummyMuscle, DummyObjective
from arl.gym import GymEnvironment
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
    (tmp_path / "unwrapped.pickle").unlink()  # as for an environment that does not pickle
    fresh = GymEnvironment("CartPole-v1", max_episode_steps=25)
    fresh.load_state(tmp_path)
    np.testing.assert_array_equal(fresh.env.unwrapped.np_random.random(3), draws)
    with pytest.raises(ValueError, match="wrappers"):
        GymEnvironment("CartPole-v1", disable_env_checker=True).load_state(tmp_path)
