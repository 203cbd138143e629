"""arl.agents.dqn without processes: the brain and muscle called as an agent conductor
calls them (setup, policy, act, learn, update, save, load) on small tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from arl.agents.common import NumpyMLP
from arl.agents.dqn import DQNBrain, DQNMuscle, decayed, worker_epsilon
from arl.agents.replay import NStep
from arl.agents.torchnet import mlp
from arl.api import ActuatorInfo
from chain_kit import ACTUATORS, GOAL, SENSORS, STARTS, WAY, one_hot, play

SMALL = dict(
    hidden=(32,),
    learning_rate=1e-2,
    batch_size=32,
    buffer_size=2000,
    minimum_buffer_size=64,
    gamma=0.9,
    n_step=2,
    train_every=4,
    gradient_steps=2,
    target_update=20,
    broadcast_every=4,
)


def agent(seed: int, **brain_params: Any) -> tuple[DQNBrain, DQNMuscle]:
    brain = DQNBrain(**{**SMALL, **brain_params})
    brain.setup(SENSORS, ACTUATORS, seed)
    muscle = DQNMuscle(epsilon=0.3)
    muscle.setup(SENSORS, ACTUATORS, seed + 1)
    muscle.update(brain.policy())
    return brain, muscle


def greedy_actions(brain: DQNBrain) -> list[int]:
    muscle = DQNMuscle(epsilon=0.0)
    muscle.setup(SENSORS, ACTUATORS, 0)
    muscle.update(brain.policy())
    return [int(muscle.act({"chain.obs": one_hot(s)})["chain.action"]) for s in STARTS]


def weights_of(brain: DQNBrain) -> dict[str, np.ndarray[Any, Any]]:
    return dict(brain.policy()["weights"])


def test_dqn_learns_to_walk_a_chain_to_its_goal() -> None:
    torch.manual_seed(12345)  # the brain must not depend on torch's global generator
    brain, muscle = agent(seed=7)
    assert greedy_actions(brain) != WAY  # the untrained network does not know the way
    play(brain, muscle, episodes=150)
    assert greedy_actions(brain) == WAY
    assert brain.updates > 0
    assert muscle.policy_version == brain.broadcast_version > 0
    # The best action's value is gamma ** (steps to the goal - 1): learnt by bootstrapping.
    q = NumpyMLP(weights_of(brain))
    best = [float(q(one_hot(s)).max()) for s in STARTS]
    expected = [0.9 ** (abs(s - GOAL) - 1) for s in STARTS]
    np.testing.assert_allclose(best, expected, atol=0.15)


def test_the_same_seed_gives_the_same_weights_and_save_load_continues_identically(tmp_path: Path) -> None:
    brain, muscle = agent(seed=3, save_buffer=True)
    play(brain, muscle, episodes=30)  # each ends terminated or truncated: no n-step window is open
    brain.save(tmp_path)
    muscle_at_save = (muscle._rng.bit_generator.state, muscle.steps)
    play(brain, muscle, episodes=30, first_episode=30)

    twin, twin_muscle = agent(seed=3, save_buffer=True)
    play(twin, twin_muscle, episodes=60)
    assert twin.updates == brain.updates > 0
    for name, value in weights_of(brain).items():
        assert np.array_equal(weights_of(twin)[name], value), name

    resumed = DQNBrain(**{**SMALL, "save_buffer": True})
    resumed.setup(SENSORS, ACTUATORS, 99)  # another seed: all that counts comes from the save
    resumed.load(tmp_path)
    # The muscle is not the brain's to save (each phase builds fresh ones): put it back.
    resumed_muscle = DQNMuscle(epsilon=0.3)
    resumed_muscle.setup(SENSORS, ACTUATORS, 0)
    resumed_muscle._rng.bit_generator.state, resumed_muscle.steps = muscle_at_save
    resumed_muscle.update(resumed.policy())
    play(resumed, resumed_muscle, episodes=30, first_episode=30)
    assert (resumed.updates, resumed.transitions) == (brain.updates, brain.transitions)
    for name, value in weights_of(brain).items():
        assert np.array_equal(weights_of(resumed)[name], value), name
    assert set(p.name for p in tmp_path.iterdir()) == {"dqn.pt", "dqn_state.json", "replay.npz"}


def test_nstep_returns_bootstrap_discount_and_flush_at_every_kind_of_end() -> None:
    o = [np.full(1, i, np.float32) for i in range(10)]
    nstep = NStep(n=3, gamma=0.5)
    assert nstep.add(o[0], 0, 1.0, o[1], False, False) == []
    assert nstep.add(o[1], 1, 2.0, o[2], False, False) == []
    (first,) = nstep.add(o[2], 0, 4.0, o[3], False, False)
    assert (first.action, first.ret, first.discount) == (0, 1.0 + 0.5 * 2.0 + 0.25 * 4.0, 0.125)
    assert first.next_obs is o[3]
    # Terminated: the pending steps end with no bootstrap.
    done = nstep.add(o[3], 1, 8.0, o[4], True, False)
    assert [(t.ret, t.discount) for t in done] == [(2.0 + 2.0 + 2.0, 0.0), (4.0 + 4.0, 0.0), (8.0, 0.0)]
    # Truncated: bootstrapped from the last observation, discounted by the steps taken.
    nstep.add(o[5], 0, 1.0, o[6], False, False)
    done = nstep.add(o[6], 0, 1.0, o[7], False, True)
    assert [(t.ret, t.discount, float(t.next_obs[0])) for t in done] == [(1.5, 0.25, 7.0), (1.0, 0.5, 7.0)]


def test_epsilons_per_worker_as_in_ape_x_and_the_linear_decay() -> None:
    assert worker_epsilon(0.4, 7.0, 0, 1) == 0.4
    assert [round(worker_epsilon(0.4, 7.0, i, 3), 6) for i in range(3)] == [0.4, round(0.4**4.5, 6), round(0.4**8, 6)]
    assert [decayed(step, 1.0, 0.04, 100) for step in (0, 50, 100, 1000)] == [1.0, 0.52, 0.04, 0.04]
    assert decayed(5, 1.0, 0.1, 0) == 0.1
    muscle = DQNMuscle(epsilon=0.04)
    muscle.worker, muscle.workers = 2, 3  # as arl says which worker it is
    muscle.setup(SENSORS, ACTUATORS, 0)
    assert muscle.epsilon == pytest.approx(0.4**8)  # several workers: Ape-X's ladder from 0.4
    alone = DQNMuscle(epsilon=0.04)
    alone.setup(SENSORS, ACTUATORS, 0)
    assert alone.epsilon == pytest.approx(0.04)


def test_the_muscles_numpy_network_is_the_brains_torch_network() -> None:
    net = mlp(5, (16, 8), 3)
    weights = {name: t.detach().numpy() for name, t in net.state_dict().items()}
    x = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)
    expected = net(torch.from_numpy(x)).detach().numpy()
    got = np.stack([NumpyMLP(weights)(row) for row in x])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_spaces_it_cannot_drive_are_refused_by_name() -> None:
    box_action = [ActuatorInfo("env.a", spaces.Box(0.0, 1.0, shape=(1,)))]
    with pytest.raises(ValueError, match=r"DQNBrain needs exactly one actuator with a Discrete space.*env\.a"):
        DQNBrain().setup(SENSORS, box_action, 0)
    with pytest.raises(ValueError, match="DQNMuscle needs exactly one sensor with a Box space"):
        DQNMuscle().setup([], ACTUATORS, 0)
