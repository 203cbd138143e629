"""arl.agents.ppo without processes: the brain and muscle called as an agent conductor
calls them (setup, policy, act, learn, update, save, load) on small tasks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from arl.agents.actorcritic import ActorCritic
from arl.agents.common import NumpyMLP
from arl.agents.ppo import PPOBrain, PPOMuscle, Rollout, gae
from arl.api import ActuatorInfo, Experience, SensorInfo
from chain_kit import ACTUATORS, GOAL, SENSORS, STARTS, WAY, Central, one_hot, play

SMALL = dict(hidden=(32,), learning_rate=3e-3, n_steps=64, batch_size=32, n_epochs=4, gamma=0.9, gae_lambda=0.9)


def agent(seed: int, **brain_params: Any) -> tuple[PPOBrain, PPOMuscle]:
    brain = PPOBrain(**{**SMALL, **brain_params})
    brain.setup(SENSORS, ACTUATORS, seed)
    muscle = PPOMuscle()
    muscle.setup(SENSORS, ACTUATORS, seed + 1)
    muscle.update(brain.policy())
    return brain, muscle


def deterministic_actions(brain: PPOBrain) -> list[int]:
    muscle = PPOMuscle(deterministic=True)
    muscle.setup(SENSORS, ACTUATORS, 0)
    muscle.update(brain.policy())
    return [int(muscle.act({"chain.obs": one_hot(s)})["chain.action"]) for s in STARTS]


def weights_of(brain: PPOBrain) -> dict[str, np.ndarray[Any, Any]]:
    return dict(brain.policy()["weights"])


def test_ppo_learns_to_walk_a_chain_to_its_goal() -> None:
    torch.manual_seed(12345)  # the brain must not depend on torch's global generator
    brain, muscle = agent(seed=7)
    assert deterministic_actions(brain) != WAY  # the untrained policy does not know the way
    play(brain, muscle, episodes=120)
    assert deterministic_actions(brain) == WAY
    assert brain.updates > 0
    assert muscle.policy_version == brain.updates
    # The value of a start state is about gamma ** (steps to the goal - 1) once the policy is sure.
    values = brain.learner.values(np.stack([one_hot(s) for s in STARTS]))
    np.testing.assert_allclose(values, [0.9 ** (abs(s - GOAL) - 1) for s in STARTS], atol=0.2)


def test_gae_bootstraps_on_truncation_and_cuts_but_not_on_termination() -> None:
    o = [np.full(1, i, np.float32) for i in range(10)]
    rollout = Rollout()
    rollout.add(0, o[0], 1, 1.0, o[1], False, False)
    rollout.add(0, o[1], 0, 2.0, o[2], True, False)  # terminated: o[2] is worth nothing
    rollout.add(0, o[3], 1, 4.0, o[4], False, True)  # truncated after one step: bootstrap from o[4]
    rollout.add(0, o[5], 1, 8.0, o[6], False, False)  # cut (the next step starts elsewhere): from o[6]
    rollout.add(0, o[7], 0, 16.0, o[8], False, False)  # the rollout's last: bootstrapped from o[8]
    rollout.add(1, o[0], 1, 32.0, o[9], False, False)  # another worker's chain, apart
    data = rollout.arrays(close_chains=True)
    assert data["end"].tolist() == [False, True, True, True, True, True]
    assert data["terminated"].tolist() == [False, True, False, False, False, False]
    value = {i: 0.1 * i for i in range(10)}  # each state's value, by its number
    values = np.array([value[int(x[0])] for x in data["obs"]], np.float32)
    next_values = np.array([value[int(x[0])] for x in data["next_obs"]], np.float32)
    advantages, returns = gae(data["reward"], values, next_values, data["terminated"], data["end"], 0.5, 0.8)
    second = 2.0 + 0.0 - 0.1  # terminated: no bootstrap
    first = (1.0 + 0.5 * 0.1 - 0.0) + 0.5 * 0.8 * second
    expected = [first, second, 4.0 + 0.5 * 0.4 - 0.3, 8.0 + 0.5 * 0.6 - 0.5, 16.0 + 0.5 * 0.8 - 0.7, 32.0 + 0.5 * 0.9]
    np.testing.assert_allclose(advantages, expected, rtol=1e-6)
    np.testing.assert_allclose(returns, np.array(expected) + values, rtol=1e-6)


def test_the_same_seed_gives_the_same_weights_and_save_load_continues_identically(tmp_path: Path) -> None:
    brain, muscle = agent(seed=3)
    play(brain, muscle, episodes=20)
    assert len(brain.rollout) > 0  # saved in the middle of a rollout
    brain.save(tmp_path)
    muscle_at_save = muscle._rng.bit_generator.state
    play(brain, muscle, episodes=20, first_episode=20)

    twin, twin_muscle = agent(seed=3)
    play(twin, twin_muscle, episodes=40)
    assert twin.updates == brain.updates > 0
    for name, value in weights_of(brain).items():
        assert np.array_equal(weights_of(twin)[name], value), name

    resumed = PPOBrain(**SMALL)
    resumed.setup(SENSORS, ACTUATORS, 99)  # another seed: all that counts comes from the save
    resumed.load(tmp_path)
    # The muscle is not the brain's to save (each phase builds fresh ones): put it back.
    resumed_muscle = PPOMuscle()
    resumed_muscle.setup(SENSORS, ACTUATORS, 0)
    resumed_muscle._rng.bit_generator.state = muscle_at_save
    resumed_muscle.update(resumed.policy())
    play(resumed, resumed_muscle, episodes=20, first_episode=20)
    assert (resumed.updates, resumed.transitions) == (brain.updates, brain.transitions)
    for name, value in weights_of(brain).items():
        assert np.array_equal(weights_of(resumed)[name], value), name
    assert set(p.name for p in tmp_path.iterdir()) == {"ppo.pt", "ppo_state.json", "rollout.npz"}


BOX = [ActuatorInfo("env.force", spaces.Box(-1.0, 2.0, shape=(2,), dtype=np.float32))]
ONE = [SensorInfo("env.obs", spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32))]


def test_box_actions_stay_in_bounds_and_a_clipped_action_has_the_probability_of_its_tail() -> None:
    brain = PPOBrain(hidden=(8,), log_std_init=1.0)  # std e: most samples fall outside the box
    brain.setup(ONE, BOX, 0)
    muscle = PPOMuscle()
    muscle.setup(ONE, BOX, 1)
    muscle.update(brain.policy())
    obs = {"env.obs": np.zeros(1, np.float32)}
    actions = np.stack([muscle.act(obs)["env.force"] for _ in range(500)])
    assert actions.dtype == np.float32
    assert actions.shape == (500, 2)
    assert (actions.min(), actions.max()) == (-1.0, 2.0)  # clipped, and often
    assert 0 < np.mean((actions > -1.0) & (actions < 2.0)) < 1
    deterministic = PPOMuscle(deterministic=True)
    deterministic.setup(ONE, BOX, 2)
    deterministic.update(brain.policy())
    mean = brain.learner.net.pi(torch.zeros(1, 1)).detach().numpy()[0]
    np.testing.assert_allclose(deterministic.act(obs)["env.force"], np.clip(mean, -1.0, 2.0), atol=1e-6)

    def phi(z: float) -> float:
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    std = math.e
    taken = np.array([[-1.0, 2.0], [0.5, 0.5]], np.float32)
    logp = brain.learner.log_probs(np.zeros((2, 1), np.float32), taken)
    at_bounds = math.log(phi((-1.0 - mean[0]) / std)) + math.log(1 - phi((2.0 - mean[1]) / std))
    inside = sum(-0.5 * ((0.5 - m) / std) ** 2 - 1.0 - 0.5 * math.log(2 * math.pi) for m in mean)
    np.testing.assert_allclose(logp, [at_bounds, inside], rtol=1e-5)


def test_ppo_moves_a_gaussian_policy_towards_the_best_box_action() -> None:
    """One-step episodes in which the action ``a`` pays ``-(a - 0.5)**2`` per dimension."""
    brain = PPOBrain(hidden=(16,), learning_rate=1e-2, n_steps=64, batch_size=32, n_epochs=4, log_std_init=-0.5)
    brain.setup(ONE, BOX, 5)
    muscle = PPOMuscle()
    muscle.setup(ONE, BOX, 6)
    muscle.update(brain.policy())
    obs = {"env.obs": np.zeros(1, np.float32)}
    for _ in range(64 * 25):
        setpoints = muscle.act(obs)
        reward = -float(np.sum((setpoints["env.force"] - 0.5) ** 2))
        update = brain.learn(Experience(0, obs, setpoints, {"r": reward}, reward, obs, True, False))
        if update is not None:
            muscle.update(update)
    deterministic = PPOMuscle(deterministic=True)
    deterministic.setup(ONE, BOX, 0)
    deterministic.update(brain.policy())
    np.testing.assert_allclose(deterministic.act(obs)["env.force"], [0.5, 0.5], atol=0.1)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_muscles_numpy_policy_is_the_brains_torch_policy(activation: str) -> None:
    net = ActorCritic(5, (16, 8), 3, activation, continuous=True, log_std_init=0.3)
    weights = {name: t.detach().numpy() for name, t in net.state_dict().items() if not name.startswith("vf.")}
    x = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    expected = net.pi(torch.from_numpy(x)).detach().numpy()
    policy = NumpyMLP(weights, prefix="pi.", activation=activation)
    np.testing.assert_allclose(np.stack([policy(row) for row in x]), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(policy(x), expected, rtol=1e-5, atol=1e-6)  # a batch at once
    muscle = PPOMuscle()
    muscle.setup(ONE, [ActuatorInfo("env.a", spaces.Box(-1.0, 1.0, shape=(3,)))], 0)
    muscle.update({"version": 0, "activation": activation, "weights": weights})
    assert muscle.log_std is not None
    np.testing.assert_allclose(muscle.log_std, [0.3] * 3, rtol=1e-6)


def test_spaces_it_cannot_drive_are_refused_by_name_and_a_muscle_needs_weights() -> None:
    multi = [ActuatorInfo("env.a", spaces.MultiBinary(3))]
    with pytest.raises(ValueError, match=r"PPOBrain needs exactly one actuator with a Discrete or a Box.*env\.a"):
        PPOBrain().setup(SENSORS, multi, 0)
    with pytest.raises(ValueError, match="PPOMuscle needs exactly one sensor with a Box space"):
        PPOMuscle().setup([], ACTUATORS, 0)
    muscle = PPOMuscle()
    muscle.setup(SENSORS, ACTUATORS, 0)
    with pytest.raises(RuntimeError, match="PPOMuscle has no weights to act with"):
        muscle.act({"chain.obs": one_hot(0)})


class CountingNetwork:
    """A muscle's network that counts its forward passes and the rows of each."""

    def __init__(self, network: Any) -> None:
        self.network, self.batches = network, list[int]()

    def __call__(self, x: Any) -> Any:
        self.batches.append(len(x))
        return self.network(x)


@pytest.mark.parametrize("actuators", [ACTUATORS, [ActuatorInfo("env.force", spaces.Box(-0.5, 0.5, shape=(2,)))]])
def test_act_batch_runs_the_network_once_and_acts_as_each_workers_own_act(actuators: list[ActuatorInfo]) -> None:
    brain = PPOBrain(hidden=(16,), log_std_init=-0.5)
    brain.setup(SENSORS, actuators, 0)

    def muscles() -> list[PPOMuscle]:
        made = [PPOMuscle(deterministic=worker == 2) for worker in range(4)]  # one worker acts deterministically
        for worker, muscle in enumerate(made):
            muscle.worker, muscle.workers = worker, 4
            muscle.setup(SENSORS, actuators, 20 + worker)
            muscle.update(brain.policy())
        return made

    batched, alone = muscles(), muscles()
    batched[0].network = counting = CountingNetwork(batched[0].network)
    rng = np.random.default_rng(1)
    for _ in range(50):
        readings = [{"chain.obs": rng.normal(size=7).astype(np.float32)} for _ in batched]
        got = batched[0].act_batch(list(zip(batched, readings, strict=True)))
        expected = [muscle.act(sensors) for muscle, sensors in zip(alone, readings, strict=True)]
        for g, e in zip(got, expected, strict=True):
            assert g.keys() == e.keys()
            for key in g:
                # The same draws; a Box action may differ in its last bit (BLAS sums a batch
                # of rows in another order than one row), a Discrete one not at all.
                np.testing.assert_allclose(g[key], e[key], rtol=1e-6, atol=1e-7)
                assert type(g[key]) is type(e[key])
    assert counting.batches == [4] * 50  # one forward pass a batch, every worker's observation in it
    for b, a in zip(batched, alone, strict=True):
        assert b._rng.bit_generator.state == a._rng.bit_generator.state


def step(worker: int, version: int | None, state: int = 0) -> Experience:
    obs, next_obs = {"chain.obs": one_hot(state)}, {"chain.obs": one_hot(state + 1)}
    return Experience(worker, obs, {"chain.action": 1}, {}, 0.0, next_obs, False, False, policy_version=version)


def test_remember_keeps_only_what_the_current_weights_chose_and_train_waits_for_a_full_rollout(
    tmp_path: Path,
) -> None:
    tiny = {**SMALL, "n_steps": 4, "batch_size": 4, "n_epochs": 1}
    brain = PPOBrain(**tiny)
    brain.setup(SENSORS, ACTUATORS, 0)
    logged: list[tuple[str, float, int]] = []
    brain._arl_metric_sink = lambda name, value, step: logged.append((name, value, step))
    for k in range(4):
        brain.remember(step(0, 0, k))
        brain.remember(step(1, None, k))  # no version said: taken as the brain's
        assert brain.buffer_size() == 2 * (k + 1)
        assert brain.train() == (k == 3)  # full at n_steps for each of the 2 workers
    assert (brain.version, brain.updates, brain.buffer_size(), brain.dropped) == (1, 1, 0, 0)
    # Now at version 1: what version 0 chose (acted before the new weights arrived) is dropped.
    for k in range(3):
        brain.remember(step(0, 0, k))
        brain.remember(step(1, 1, k))
    brain.remember(step(0, 2, 4))  # a version it never made: not its own either
    assert (brain.buffer_size(), brain.dropped, brain.transitions) == (3, 4, 11)
    assert not brain.train()
    for k in range(4):
        brain.remember(step(0, 1, k))
    brain.remember(step(1, 1, 3))
    assert brain.train()
    assert (brain.version, brain.updates) == (2, 2)
    stale = [value for name, value, _ in logged if name == "dropped_stale"]
    assert stale == [0.0, 4.0]  # at each update, the count so far
    # A brain loaded in a later phase starts that phase's versions at 0, as arl's learner
    # counts them: the weights it broadcast first are version 0, and their actions count.
    brain.save(tmp_path)
    loaded = PPOBrain(**tiny)
    loaded.setup(SENSORS, ACTUATORS, 1)
    loaded.load(tmp_path)
    assert (loaded.version, loaded.updates, loaded.policy()["version"]) == (0, 2, 0)
    loaded.remember(step(0, 0))
    loaded.remember(step(0, 2))
    assert (loaded.buffer_size(), loaded.dropped) == (1, 5)


def test_ppo_learns_the_chain_through_remember_and_train_dropping_stale_steps() -> None:
    """A central learner's broadcast reaches the muscle some transitions after the update:
    what the muscle acted in between with the old weights is dropped, and PPO still learns."""
    torch.manual_seed(12345)
    brain, muscle = agent(seed=7)
    assert deterministic_actions(brain) != WAY
    learner = Central(brain, muscle, trains=1, broadcast_every=5)
    play(learner, muscle, episodes=150)
    assert deterministic_actions(brain) == WAY
    assert learner.updates == brain.updates > 0
    assert brain.dropped > 0
    assert muscle.policy_version == learner.sent > 0


def test_the_brain_and_muscles_work_on_the_device_arl_gives_them() -> None:
    brain = PPOBrain(**SMALL)
    brain.device = "cpu"  # as arl sets it from learner: {device: ...}, before setup
    brain.setup(SENSORS, ACTUATORS, 0)
    assert {p.device.type for p in brain.learner.net.parameters()} == {"cpu"}
    assert all(type(w) is np.ndarray for w in brain.policy()["weights"].values())  # what crosses is numpy
    muscle = PPOMuscle()
    muscle.device = "cpu"  # from inference: {device: ...}
    muscle.setup(SENSORS, ACTUATORS, 0)
    muscle.update(brain.policy())
    assert isinstance(muscle.network, NumpyMLP)  # on the CPU, numpy: no torch where muscles act
