"""arl.agents.dqn without processes: the brain and muscle called as an agent conductor
calls them (setup, policy, act, learn, update, save, load) on small tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from arl.agents.common import Array, NumpyMLP, network_on
from arl.agents.dqn import DQNBrain, DQNMuscle, decayed, worker_epsilon
from arl.agents.replay import NStep
from arl.agents.torchnet import TorchMLP, mlp
from arl.api import ActuatorInfo, Experience
from chain_kit import ACTUATORS, GOAL, SENSORS, STARTS, WAY, Central, one_hot, play

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


def test_nstep_ends_an_episode_it_never_heard_end_where_the_next_one_does_not_start() -> None:
    """A worker's process died mid-episode (its last transition never came) and a restart
    began a new episode: the old steps bootstrap from where they stopped, never joined to
    the new episode's rewards."""
    o = [np.full(1, i, np.float32) for i in range(10)]
    nstep = NStep(n=3, gamma=0.5)
    nstep.add(o[0], 0, 1.0, o[1], False, False)
    nstep.add(o[1], 0, 2.0, o[2], False, False)  # ...then the process died
    cut = nstep.add(o[7], 1, 4.0, o[8], False, False)  # the new episode's first step
    assert [(t.ret, t.discount, float(t.next_obs[0])) for t in cut] == [(2.0, 0.25, 2.0), (2.0, 0.5, 2.0)]
    assert nstep.add(o[8], 0, 1.0, o[9], False, False) == []  # the new window: two steps so far


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
    # epsilon 0 is greedy whatever the workers (a test phase with several), not the ladder.
    for worker in range(3):
        greedy = DQNMuscle(epsilon=0.0)
        greedy.worker, greedy.workers = worker, 3
        greedy.setup(SENSORS, ACTUATORS, 0)
        assert greedy.epsilon == 0.0


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


class CountingNetwork:
    """A muscle's network that counts its forward passes and the rows of each."""

    def __init__(self, network: Any) -> None:
        self.network, self.batches = network, list[int]()

    def __call__(self, x: Array) -> Array:
        self.batches.append(len(x))
        out: Array = self.network(x)
        return out


def muscles(seed: int, workers: int, weights: Any, **params: Any) -> list[DQNMuscle]:
    made = []
    for worker in range(workers):
        muscle = DQNMuscle(**params)
        muscle.worker, muscle.workers = worker, workers
        muscle.setup(SENSORS, ACTUATORS, seed + worker)
        if weights is not None:
            muscle.update(weights)
        made.append(muscle)
    return made


@pytest.mark.parametrize("trained", [True, False])
def test_act_batch_runs_the_network_once_and_acts_as_each_workers_own_act(trained: bool) -> None:
    brain = DQNBrain(**SMALL)
    brain.setup(SENSORS, ACTUATORS, 0)
    policy = brain.policy() if trained else None  # untrained: no weights yet, every action random
    # Ape-X's ladder: each worker explores as often as its own epsilon says.
    batched, alone = (muscles(10, 5, policy, apex_epsilon=0.6, decay_steps=40) for _ in range(2))
    if trained:
        batched[0].network = counting = CountingNetwork(batched[0].network)
    rng = np.random.default_rng(1)
    for _ in range(60):
        readings = [{"chain.obs": rng.random(7).astype(np.float32)} for _ in batched]
        got = batched[0].act_batch(list(zip(batched, readings, strict=True)))
        assert got == [muscle.act(sensors) for muscle, sensors in zip(alone, readings, strict=True)]
    for b, a in zip(batched, alone, strict=True):
        assert (b.steps, b._rng.bit_generator.state) == (a.steps, a._rng.bit_generator.state)
    if trained:
        # One forward pass a batch, on the observations of the workers that did not explore.
        assert len(counting.batches) <= 60
        assert sum(counting.batches) > 60 * 2  # the greedy workers of each batch, together
        assert max(counting.batches) > 1


def test_remember_only_remembers_and_train_takes_one_step_from_the_brains_minimum() -> None:
    brain, _ = agent(seed=4, target_update=5)
    before = weights_of(brain)
    assert brain.buffer_size() == 0
    while brain.buffer_size() < SMALL["minimum_buffer_size"]:
        assert not brain.train()  # fewer than its minimum: nothing done
        state = int(brain.transitions) % 6
        obs, next_obs = {"chain.obs": one_hot(state)}, {"chain.obs": one_hot(state + 1)}
        brain.remember(Experience(0, obs, {"chain.action": 1}, {}, 0.0, next_obs, False, state == 5))
    assert brain.updates == 0
    for name, value in weights_of(brain).items():
        assert np.array_equal(before[name], value), name  # remembering is not learning
    online, target = brain.learner.online, brain.learner.target
    for step in range(1, 11):
        assert brain.train()
        assert brain.updates == step  # one gradient step a call
        synced = all(torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters(), strict=True))
        assert synced == (step % 5 == 0)  # the target network follows every target_update steps


def test_dqn_learns_the_chain_through_remember_and_train_alone() -> None:
    torch.manual_seed(12345)
    brain, muscle = agent(seed=7)
    assert greedy_actions(brain) != WAY
    learner = Central(brain, muscle, trains=1, broadcast_every=4)
    play(learner, muscle, episodes=150)
    assert greedy_actions(brain) == WAY
    assert learner.updates == brain.updates > 0
    assert brain.buffer_size() == len(brain.buffer) > 0
    assert muscle.policy_version == learner.sent > 0


def test_learn_is_remember_and_rounds_of_train() -> None:
    """In the agent's process learn() trains as a central learner's calls would: every
    train_every transitions, gradient_steps calls of train()."""
    by_learn, muscle = agent(seed=5)
    play(by_learn, muscle, episodes=40)
    by_hand = DQNBrain(**SMALL)
    by_hand.setup(SENSORS, ACTUATORS, 5)

    class Rounds:
        def learn(self, experience: Experience) -> Any:
            by_hand.remember(experience)
            if by_hand.transitions % SMALL["train_every"] == 0:
                for _ in range(SMALL["gradient_steps"]):
                    by_hand.train()
            return by_hand.policy() if by_hand.transitions % SMALL["broadcast_every"] == 0 else None

    replay = DQNMuscle(epsilon=0.3)
    replay.setup(SENSORS, ACTUATORS, 6)
    replay.update(by_hand.policy())
    play(Rounds(), replay, episodes=40)
    assert by_hand.updates == by_learn.updates > 0
    for name, value in weights_of(by_learn).items():
        assert np.array_equal(weights_of(by_hand)[name], value), name


def test_the_brain_and_muscles_work_on_the_device_arl_gives_them() -> None:
    brain = DQNBrain(**SMALL)
    brain.device = "cpu"  # as arl sets it from learner: {device: ...}, before setup
    brain.setup(SENSORS, ACTUATORS, 0)
    assert {p.device.type for p in brain.learner.online.parameters()} == {"cpu"}
    assert {p.device.type for p in brain.learner.target.parameters()} == {"cpu"}
    weights = brain.policy()["weights"]
    assert all(type(w) is np.ndarray for w in weights.values())  # what crosses is numpy
    muscle = DQNMuscle()
    muscle.device = "cpu"  # from inference: {device: ...}
    muscle.setup(SENSORS, ACTUATORS, 0)
    muscle.update(brain.policy())
    assert isinstance(muscle.network, NumpyMLP)  # on the CPU, numpy: no torch where muscles act
    # Another device runs the same forward pass in torch; here checked on the CPU.
    x = np.random.default_rng(0).random((9, 7)).astype(np.float32)
    on_torch = TorchMLP(weights, prefix="", activation="relu", device="cpu")
    np.testing.assert_allclose(on_torch(x), NumpyMLP(weights)(x), rtol=1e-5, atol=1e-6)
    # The muscles of a process share the network made of one broadcast.
    assert network_on("cpu", weights) is network_on("cpu", weights)
    assert network_on("cpu", weights) is not network_on("cpu", dict(weights))


def test_nstep_does_not_take_nan_readings_for_a_cut() -> None:
    nan = np.full(1, np.nan, np.float32)
    nstep = NStep(n=3, gamma=0.5)
    nstep.add(np.zeros(1, np.float32), 0, 1.0, nan, False, False)
    assert nstep.add(nan, 0, 1.0, np.ones(1, np.float32), False, False) == []  # the window goes on


def test_an_optimizer_state_saved_unfused_loads_into_the_fused_optimizer_and_stays_fused() -> None:
    import torch

    from arl.agents.torchnet import adam, load_optimizer

    layer = torch.nn.Linear(2, 2)
    old = torch.optim.Adam(layer.parameters(), lr=0.1)  # as a brain saved before fused Adam
    layer(torch.ones(1, 2)).sum().backward()
    old.step()
    fused = adam(layer.parameters(), torch.device("cpu"), lr=0.1)
    load_optimizer(fused, old.state_dict())
    assert fused.param_groups[0]["fused"] is True
    fused.step()  # and it steps
