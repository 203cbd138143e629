"""DQN: a learner (:class:`DQNBrain`) and an epsilon-greedy policy (:class:`DQNMuscle`)
for an agent with one ``Box`` sensor and one ``Discrete`` actuator (``gym:CartPole-v1``'s
``obs`` and ``action``). The reference for writing a learning agent of one's own
(docs/agents.md): the brain learns, the muscles act, and what passes between them is
plain numpy, never torch.

* The brain: double Q-learning on n-step returns from a replay buffer, a target network
  synced every ``target_update`` gradient steps, Adam, gradient clipping, Huber loss.
  :meth:`DQNBrain.remember` puts a transition in the buffer (through each worker's
  n-step window); :meth:`DQNBrain.train` takes one gradient step on a batch of
  ``batch_size`` once the buffer holds ``minimum_buffer_size``: a central learner calls
  them. In the agent's process (no central learner) :meth:`DQNBrain.learn` does both:
  every ``train_every`` transitions it takes ``gradient_steps`` steps, and every
  ``broadcast_every`` transitions, if it has learnt since, returns the new weights:
  ``{"version": gradient steps so far, "weights": {parameter name: numpy array}}``.
* The muscle: the same network, in numpy on the CPU (for acting's small batches numpy
  beats torch's per-call overhead, and needs no torch at all) or in torch on its
  ``device``, acting greedily, or at random with probability epsilon. With several
  workers each has its own epsilon, as in Ape-X: ``epsilon ** (1 + alpha * i / (N -
  1))`` for worker ``i`` of ``N``; alone, a worker's epsilon can fall linearly from
  ``epsilon_start`` over ``decay_steps`` steps. :meth:`DQNMuscle.act_batch` acts for a
  batch of workers with one forward pass, each worker exploring as its own muscle says.
  ``policy_version`` is the version of the weights it acts with.

torch is imported when a brain is set up (:mod:`arl.agents.qnet`), or when a muscle
acting on a GPU gets weights, not by this module: checking a file that names these
classes does not load it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from annotated_types import Ge, Gt
from gymnasium import spaces

from arl.agents.common import Array, Count, Fraction, Network, box_sensor_and_actuator, network_on
from arl.agents.replay import NStep, ReplayBuffer
from arl.api import ActuatorInfo, Brain, Experience, Muscle, SensorInfo

if TYPE_CHECKING:
    from arl.agents.qnet import QLearner

STATE_FILE = "dqn_state.json"
BUFFER_FILE = "replay.npz"
WINDOWS_FILE = "nstep.npz"  # a state's (not a checkpoint's): each worker's n-step window
STATE_EXTRA_FILE = "dqn_state_extra.json"
MUSCLE_STATE_FILE = "dqn_muscle.json"
MUSCLE_WEIGHTS_FILE = "weights.npz"


def worker_epsilon(epsilon: float, alpha: float, worker: int, workers: int) -> float:
    """Ape-X's epsilon for worker ``worker`` of ``workers``: from ``epsilon`` for the first
    down to ``epsilon ** (1 + alpha)`` for the last."""
    if workers <= 1:
        return epsilon
    return float(epsilon ** (1 + alpha * worker / (workers - 1)))


def decayed(step: int, start: float, final: float, decay_steps: int) -> float:
    """Linear decay from ``start`` to ``final`` over ``decay_steps`` steps, then ``final``."""
    if decay_steps <= 0 or step >= decay_steps:
        return final
    return start + (final - start) * step / decay_steps


class DQNMuscle(Muscle):
    """Epsilon-greedy over the brain's latest Q-network. ``epsilon: 0`` acts greedily
    (a test phase), with any number of workers."""

    def __init__(
        self,
        epsilon: Fraction = 0.04,
        epsilon_start: Fraction = 1.0,
        decay_steps: Annotated[int, Ge(0)] = 0,
        alpha: Annotated[float, Ge(0)] = 7.0,
        apex_epsilon: Fraction = 0.4,
    ) -> None:
        self.epsilon_final, self.epsilon_start = epsilon, epsilon_start
        self.decay_steps, self.alpha, self.apex_epsilon = decay_steps, alpha, apex_epsilon
        self.policy_version: int | None = None  # the version of the weights it acts with
        self.network: Network | None = None
        self._weights: Mapping[str, Array] | None = None  # what network runs: kept for save_state
        self.steps = 0
        self._logged_at = -1  # the steps when it last logged its epsilon

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        super().setup(sensors, actuators, seed)
        self._obs_id, self._action_id = box_sensor_and_actuator(type(self).__name__, sensors, actuators)
        space = actuators[0].space
        assert isinstance(space, spaces.Discrete)
        self._actions, self._start = int(space.n), int(space.start)
        self._rng = np.random.default_rng(seed)
        # One worker decays to ``epsilon``; several explore on Ape-X's ladder from
        # ``apex_epsilon`` (0.4, as Ape-X: from 0.04 the later workers would not explore).
        # ``epsilon: 0`` is greedy however many workers act (a test phase).
        if self.workers > 1 and self.epsilon_final > 0:
            self._final = worker_epsilon(self.apex_epsilon, self.alpha, self.worker, self.workers)
        else:
            self._final = self.epsilon_final

    @property
    def epsilon(self) -> float:
        return decayed(self.steps, max(self.epsilon_start, self._final), self._final, self.decay_steps)

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.act_batch([(self, sensors)])[0]

    def act_batch(self, batch: Sequence[tuple[Muscle, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
        """Each worker's muscle draws whether it explores (its own epsilon and generator,
        as its :meth:`act` would); the workers that do not are given the greedy action of
        this muscle's network, run once on their observations stacked."""
        actions: dict[int, int] = {}  # by place in the batch: the exploring workers' actions
        for i, (muscle, _) in enumerate(batch):
            explorer = self._same_kind(muscle)
            explore = explorer._rng.random() < explorer.epsilon
            explorer.steps += 1
            if explore or self.network is None:
                actions[i] = int(explorer._rng.integers(explorer._actions))
        greedy = [i for i in range(len(batch)) if i not in actions]
        if greedy:
            assert self.network is not None
            obs = np.stack([_flat(batch[i][1][self._obs_id]) for i in greedy])
            actions.update(zip(greedy, np.argmax(self.network(obs), axis=1).tolist(), strict=True))
        return [{self._action_id: self._start + actions[i]} for i in range(len(batch))]

    def _same_kind(self, muscle: Muscle) -> DQNMuscle:
        if not isinstance(muscle, DQNMuscle):
            raise TypeError(f"{type(self).__name__}.act_batch got a {type(muscle).__name__} in its batch")
        return muscle

    def update(self, update: Any) -> None:
        self._weights = update["weights"]
        self.network = network_on(self.device, update["weights"])
        self.policy_version = int(update["version"])
        if self.steps != self._logged_at:  # a central learner broadcasts often: once per step at most
            self._logged_at = self.steps
            self.log_metric("epsilon", self.epsilon, self.steps)

    def save_state(self, path: Path) -> None:
        """Its generator, its step count (where its epsilon schedule is) and the weights
        it acts with, with their version."""
        state = {
            "steps": self.steps,
            "logged_at": self._logged_at,
            "rng": self._rng.bit_generator.state,
            "policy_version": self.policy_version,
        }
        (path / MUSCLE_STATE_FILE).write_text(json.dumps(state))
        if self._weights is not None:
            save_weights(path / MUSCLE_WEIGHTS_FILE, self._weights)

    def load_state(self, path: Path) -> None:
        state = json.loads((path / MUSCLE_STATE_FILE).read_text())
        self.steps, self._logged_at = int(state["steps"]), int(state["logged_at"])
        self._rng.bit_generator.state = state["rng"]
        self.policy_version = state["policy_version"]
        weights = path / MUSCLE_WEIGHTS_FILE
        self._weights = load_weights(weights) if weights.exists() else None
        self.network = None if self._weights is None else network_on(self.device, self._weights)


def save_weights(path: Path, weights: Mapping[str, Array]) -> None:
    """Write a network's arrays to ``path``, an ``.npz`` file, by name."""
    arrays: dict[str, Any] = dict(weights)
    np.savez(path, **arrays)


def load_weights(path: Path) -> dict[str, Array]:
    """The arrays :func:`numpy.savez` wrote to ``path``, by name (numbers only, no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _flat(obs: Any) -> Array:
    return np.asarray(obs, np.float32).reshape(-1)


class DQNBrain(Brain):
    """Double DQN with n-step returns. Defaults: rl-baselines3-zoo's CartPole-v1 settings."""

    def __init__(
        self,
        hidden: tuple[Count, ...] = (256, 256),
        learning_rate: Annotated[float, Gt(0)] = 2.3e-3,
        batch_size: Count = 64,
        buffer_size: Count = 100_000,
        minimum_buffer_size: Count = 1000,
        gamma: Fraction = 0.99,
        n_step: Count = 1,
        train_every: Count = 256,
        gradient_steps: Count = 128,
        target_update: Count = 128,
        broadcast_every: Count = 256,
        max_grad_norm: Annotated[float, Gt(0)] = 10.0,
        double: bool = True,
        save_buffer: bool = False,
    ) -> None:
        self.hidden, self.learning_rate, self.batch_size = tuple(hidden), learning_rate, batch_size
        # Not ``self.buffer_size``: that is Brain's method, the buffer's fill.
        self.capacity, self.minimum_buffer_size = buffer_size, minimum_buffer_size
        self.gamma, self.n_step = gamma, n_step
        self.train_every, self.gradient_steps, self.target_update = train_every, gradient_steps, target_update
        self.broadcast_every, self.max_grad_norm, self.double = broadcast_every, max_grad_norm, double
        self.save_buffer = save_buffer
        self.transitions = 0  # transitions remembered
        self.updates = 0  # gradient steps: the weights' version
        self.broadcast_version = 0  # the version last returned by learn
        self._nstep: dict[int, NStep] = {}
        self._losses: list[float] = []  # since the loss was last logged

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        super().setup(sensors, actuators, seed)
        from arl.agents.qnet import QLearner  # torch: only in a process that hosts a DQN brain

        self._obs_id, self._action_id = box_sensor_and_actuator(type(self).__name__, sensors, actuators)
        space = actuators[0].space
        assert isinstance(space, spaces.Discrete)
        self._start = int(space.start)
        obs_shape = (int(np.prod(sensors[0].space.shape or ())),)
        self.learner: QLearner = QLearner(
            obs_shape[0],
            self.hidden,
            int(space.n),
            seed=seed,
            learning_rate=self.learning_rate,
            max_grad_norm=self.max_grad_norm,
            double=self.double,
            device=self.device,
        )
        self.buffer = ReplayBuffer(self.capacity, obs_shape)
        self.rng = np.random.default_rng(seed)

    def learn(self, experience: Experience) -> Any:
        """In the agent's process: remember, every ``train_every`` transitions take
        ``gradient_steps`` steps (once the buffer is full enough), and every
        ``broadcast_every`` transitions return the weights if they changed."""
        self.remember(experience)
        if self.transitions % self.train_every == 0:
            for _ in range(self.gradient_steps):
                if not self.train():
                    break
        if self.transitions % self.broadcast_every == 0 and self.updates != self.broadcast_version:
            self.broadcast_version = self.updates
            return self.policy()
        return None

    def remember(self, experience: Experience) -> None:
        """Into the replay buffer, through the worker's n-step window (so an n-step
        transition lands once its window closes). No learning here."""
        nstep = self._nstep.get(experience.worker)
        if nstep is None:
            nstep = self._nstep[experience.worker] = NStep(self.n_step, self.gamma)
        obs = np.asarray(experience.inputs[self._obs_id], np.float32).reshape(-1)
        next_obs = np.asarray(experience.next_inputs[self._obs_id], np.float32).reshape(-1)
        action = int(experience.setpoints[self._action_id]) - self._start
        done = nstep.add(obs, action, experience.objective, next_obs, experience.terminated, experience.truncated)
        for transition in done:
            self.buffer.add(transition)
        self.transitions += 1

    def train(self) -> bool:
        """One gradient step on a batch from the buffer, and the target network's sync
        every ``target_update`` steps; False (nothing done) while the buffer holds fewer
        than ``minimum_buffer_size`` transitions. Logs ``loss``, the mean over each
        ``gradient_steps`` steps (step = gradient steps)."""
        if len(self.buffer) < self.minimum_buffer_size:
            return False
        self._losses.append(self.learner.update(self.buffer.sample(self.rng, self.batch_size)))
        self.updates += 1
        if self.updates % self.target_update == 0:
            self.learner.sync_target()
        if self.updates % self.gradient_steps == 0:
            self.log_metric("loss", float(np.mean(self._losses)), self.updates)
            self._losses = []
        return True

    def buffer_size(self) -> int:
        return len(self.buffer)

    def policy(self) -> Any:
        return {"version": self.updates, "weights": self.learner.weights()}

    def save_state(self, path: Path) -> None:
        """:meth:`save`, and what a checkpoint leaves out but an exact resume needs: the
        replay buffer (always), each worker's n-step window and the losses not yet logged."""
        self.save(path)
        if not self.save_buffer:
            self.buffer.save(path / BUFFER_FILE)
        windows = {f"{worker}/{key}": value for worker, n in self._nstep.items() for key, value in n.arrays().items()}
        np.savez(path / WINDOWS_FILE, **windows)  # type: ignore[arg-type]
        (path / STATE_EXTRA_FILE).write_text(json.dumps({"losses": self._losses, "workers": sorted(self._nstep)}))

    def load_state(self, path: Path) -> None:
        self.load(path)
        if not self.save_buffer:
            self.buffer.load(path / BUFFER_FILE)
        extra = json.loads((path / STATE_EXTRA_FILE).read_text())
        self._losses = [float(loss) for loss in extra["losses"]]
        with np.load(path / WINDOWS_FILE, allow_pickle=False) as data:
            saved = {name: data[name] for name in data.files}
        self._nstep = {}
        for worker in extra["workers"]:
            nstep = self._nstep[int(worker)] = NStep(self.n_step, self.gamma)
            prefix = f"{worker}/"
            nstep.restore({k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)})

    def save(self, directory: Path) -> None:
        self.learner.save(directory)
        state = {
            "transitions": self.transitions,
            "updates": self.updates,
            "broadcast_version": self.broadcast_version,
            "rng": self.rng.bit_generator.state,
            "buffer_saved": self.save_buffer,
        }
        (directory / STATE_FILE).write_text(json.dumps(state))
        if self.save_buffer:
            self.buffer.save(directory / BUFFER_FILE)

    def load(self, directory: Path) -> None:
        self.learner.load(directory)
        state = json.loads((directory / STATE_FILE).read_text())
        self.transitions, self.updates = int(state["transitions"]), int(state["updates"])
        self.broadcast_version = int(state["broadcast_version"])
        self.rng.bit_generator.state = state["rng"]
        if state["buffer_saved"]:
            self.buffer.load(directory / BUFFER_FILE)
