"""PPO: a learner (:class:`PPOBrain`) and a stochastic policy (:class:`PPOMuscle`) for an
agent with one ``Box`` sensor and one actuator whose space is ``Discrete`` (a
categorical policy) or ``Box`` (a diagonal Gaussian with a learned log standard
deviation, its samples clipped to the space). Built like :mod:`arl.agents.dqn`
(docs/agents.md): the brain learns, the muscles act, plain numpy passes between them.

* The brain collects an on-policy rollout (:meth:`PPOBrain.remember`): each worker's
  transitions in the order it made them, ``n_steps`` per worker, only those acted with
  its current weights (an experience whose ``policy_version`` is another is dropped and
  counted, ``dropped_stale``; versions count the updates since the brain was set up, in
  this phase, as arl's central learner counts them). Then (:meth:`PPOBrain.train`, called by a central
  learner; or :meth:`PPOBrain.learn`, which remembers and trains, in the agent's
  process), with the weights the rollout was acted with
  (its own copy: it has not changed them since), it computes every action's
  log-probability from the stored setpoints and every state's value, the advantages by
  GAE(lambda), and takes ``n_epochs`` passes of minibatches of ``batch_size`` over the
  clipped surrogate objective, a value loss and an entropy bonus (Adam, gradient
  clipping, advantages normalised per minibatch), and starts the next rollout. Its
  weights, :meth:`PPOBrain.policy`: ``{"version": updates this phase, "activation": ...,
  "weights": {parameter name: numpy array}}``; :meth:`PPOBrain.learn` returns them
  after each update.
* An episode that terminated is worth nothing after its end; one that was truncated
  (a time limit, or cut by ``max_steps`` or a condition; also one that the worker's
  next observation does not continue, whatever its flags said) is bootstrapped from the
  value of its last observation, as is each worker's last transition in a rollout.
* The muscle: the policy network (in numpy on the CPU, in torch on another
  ``device``), sampling with its own seeded generator, or acting deterministically (the
  most likely action, the Gaussian's mean) with ``deterministic: true``.
  :meth:`PPOMuscle.act_batch` runs the network once for a batch of workers, each
  sampling with its own muscle's generator. ``policy_version`` is the version of the
  weights it acts with.

torch is imported when a brain is set up (:mod:`arl.agents.actorcritic`), or when a
muscle acting on a GPU gets weights, not by this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from annotated_types import Ge, Gt
from gymnasium import spaces

from arl.agents.common import Activation, Array, Count, Fraction, Network, box_sensor_and_actuator, network_on
from arl.agents.dqn import load_weights, save_weights
from arl.api import ActuatorInfo, Brain, Experience, Muscle, SensorInfo

if TYPE_CHECKING:
    from arl.agents.actorcritic import PPOLearner

STATE_FILE = "ppo_state.json"
ROLLOUT_FILE = "rollout.npz"
MUSCLE_STATE_FILE = "ppo_muscle.json"
VERSION_FILE = "ppo_version.json"
MUSCLE_WEIGHTS_FILE = "weights.npz"

DISCRETE_OR_BOX = (spaces.Discrete, spaces.Box)
STALE_LOG_EVERY = 1000  # dropped transitions between logs of dropped_stale (besides each update's)


def flat_size(space: spaces.Space[Any]) -> int:
    return int(np.prod(space.shape or ()))


def gae(
    rewards: Array, values: Array, next_values: Array, terminated: Array, ends: Array, gamma: float, lam: float
) -> tuple[Array, Array]:
    """Generalised advantage estimates and the returns the value function is fitted to.

    Step ``t`` went from a state valued ``values[t]`` to one valued ``next_values[t]``,
    which counts unless ``terminated[t]``; ``ends[t]``: the chain of advantages breaks
    after ``t`` (its episode ended however, or it is its worker's last in the rollout),
    so a later step's advantage does not flow into it.
    """
    advantages = np.zeros(len(rewards), np.float32)
    following = 0.0
    for t in reversed(range(len(rewards))):
        if ends[t]:
            following = 0.0
        delta = rewards[t] + gamma * (0.0 if terminated[t] else next_values[t]) - values[t]
        following = delta + gamma * lam * following
        advantages[t] = following
    return advantages, advantages + values.astype(np.float32)


class Rollout:
    """The transitions of each worker since the last update, in the order it made them."""

    FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "end")

    def __init__(self) -> None:
        self._workers: dict[int, dict[str, list[Any]]] = {}

    def __len__(self) -> int:
        return sum(len(steps["reward"]) for steps in self._workers.values())

    def add(
        self, worker: int, obs: Array, action: Any, reward: float, next_obs: Array, terminated: bool, truncated: bool
    ) -> None:
        steps = self._workers.setdefault(worker, {name: [] for name in self.FIELDS})
        if steps["end"] and not steps["end"][-1] and not np.array_equal(obs, steps["next_obs"][-1]):
            # A new episode began without the brain hearing of the end of the last one:
            # that one was cut (max_steps, a condition), so its last step ends a chain.
            steps["end"][-1] = True
        values = (obs, action, reward, next_obs, terminated, terminated or truncated)
        for name, value in zip(self.FIELDS, values, strict=True):
            steps[name].append(value)

    def arrays(self, close_chains: bool) -> dict[str, Array]:
        """Every worker's steps one after another (workers in order), with ``worker``;
        ``close_chains``: each worker's last step ends a chain (for GAE)."""
        parts: dict[str, list[Array]] = {name: [] for name in (*self.FIELDS, "worker")}
        for worker in sorted(self._workers):
            steps = self._workers[worker]
            for name in self.FIELDS:
                parts[name].append(np.asarray(steps[name]))
            if close_chains:
                parts["end"][-1] = parts["end"][-1].copy()
                parts["end"][-1][-1] = True
            parts["worker"].append(np.full(len(steps["reward"]), worker, np.int64))
        return {name: np.concatenate(arrays) for name, arrays in parts.items()}

    def clear(self) -> None:
        self._workers = {}

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = self.arrays(close_chains=False) if self._workers else {}
        np.savez(path, **arrays)

    def load(self, path: Path) -> None:
        self.clear()
        with np.load(path, allow_pickle=False) as data:
            if "worker" not in data:
                return
            columns = {name: data[name] for name in (*self.FIELDS, "worker")}
        for i, worker in enumerate(columns["worker"]):
            steps = self._workers.setdefault(int(worker), {name: [] for name in self.FIELDS})
            for name in self.FIELDS:
                steps[name].append(columns[name][i])


class PPOMuscle(Muscle):
    """Acts with the brain's latest policy: samples from it, or with ``deterministic``
    takes the most likely action (Discrete) or the mean (Box), clipped to the space."""

    def __init__(self, deterministic: bool = False) -> None:
        self.deterministic = deterministic
        self.policy_version: int | None = None  # the version of the weights it acts with
        # ActorCritic's policy network (``pi.<i>``) and, for a Gaussian, its log_std.
        self.network: Network | None = None
        self.log_std: Array | None = None
        self._policy: tuple[str, Mapping[str, Array]] | None = None  # activation, weights: for save_state

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        super().setup(sensors, actuators, seed)
        self._obs_id, self._action_id = box_sensor_and_actuator(
            type(self).__name__, sensors, actuators, DISCRETE_OR_BOX
        )
        self._space = actuators[0].space
        self._rng = np.random.default_rng(seed)

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.act_batch([(self, sensors)])[0]

    def act_batch(self, batch: Sequence[tuple[Muscle, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
        """This muscle's network runs once on the workers' observations stacked; each
        worker's muscle then picks from its row as its :meth:`act` would (its own
        generator, its own ``deterministic``)."""
        if self.network is None:
            raise RuntimeError(
                f"{type(self).__name__} has no weights to act with: it acts with what arl.agents.ppo:PPOBrain "
                "sends (its policy at setup), so give the agent that brain"
            )
        if isinstance(self._space, spaces.Box) and self.log_std is None:
            raise ValueError(
                f"{type(self).__name__}: the weights it got have no log_std: they are for Discrete actions"
            )
        muscles = [self._same_kind(muscle) for muscle, _ in batch]
        obs = np.stack([np.asarray(sensors[self._obs_id], np.float32).reshape(-1) for _, sensors in batch])
        out = self.network(obs)
        return [muscle._choose(row, self.log_std) for muscle, row in zip(muscles, out, strict=True)]

    def _same_kind(self, muscle: Muscle) -> PPOMuscle:
        if not isinstance(muscle, PPOMuscle):
            raise TypeError(f"{type(self).__name__}.act_batch got a {type(muscle).__name__} in its batch")
        return muscle

    def _choose(self, out: Array, log_std: Array | None) -> Mapping[str, Any]:
        """This worker's setpoints from the policy's output for its observation."""
        space = self._space
        if isinstance(space, spaces.Discrete):
            return {self._action_id: int(space.start) + self._categorical(out)}
        assert isinstance(space, spaces.Box)
        assert log_std is not None  # act_batch checked
        action = out
        if not self.deterministic:
            action = out + np.exp(log_std) * self._rng.standard_normal(out.shape)
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        return {self._action_id: np.clip(action, low, high).astype(space.dtype).reshape(space.shape)}

    def _categorical(self, logits: Array) -> int:
        if self.deterministic:
            return int(np.argmax(logits))
        cumulative = np.cumsum(np.exp(logits - logits.max()))
        drawn = int(np.searchsorted(cumulative, self._rng.random() * cumulative[-1], side="right"))
        return min(drawn, len(logits) - 1)

    def update(self, update: Any) -> None:
        version = int(update["version"])
        if self.policy_version is not None and version < self.policy_version:
            return  # older than what it acts with (weights that crossed on the way)
        self._act_with(str(update["activation"]), update["weights"])
        self.policy_version = version

    def _act_with(self, activation: str, weights: Mapping[str, Array]) -> None:
        self._policy = (activation, weights)
        self.network = network_on(self.device, weights, prefix="pi.", activation=activation)
        self.log_std = None if "log_std" not in weights else np.asarray(weights["log_std"])

    def save_state(self, path: Path) -> None:
        """Its generator and the weights it acts with, with their version."""
        activation = None if self._policy is None else self._policy[0]
        state = {"rng": self._rng.bit_generator.state, "policy_version": self.policy_version, "activation": activation}
        (path / MUSCLE_STATE_FILE).write_text(json.dumps(state))
        if self._policy is not None:
            save_weights(path / MUSCLE_WEIGHTS_FILE, self._policy[1])

    def load_state(self, path: Path) -> None:
        state = json.loads((path / MUSCLE_STATE_FILE).read_text())
        self._rng.bit_generator.state = state["rng"]
        self.policy_version = state["policy_version"]
        self._policy, self.network, self.log_std = None, None, None
        if state["activation"] is not None:
            self._act_with(str(state["activation"]), load_weights(path / MUSCLE_WEIGHTS_FILE))


class PPOBrain(Brain):
    """PPO with clipped surrogate objective and GAE. Defaults: stable-baselines3's PPO."""

    def __init__(
        self,
        hidden: tuple[Count, ...] = (64, 64),
        activation: Activation = "tanh",
        learning_rate: Annotated[float, Gt(0)] = 3e-4,
        n_steps: Count = 2048,
        batch_size: Count = 64,
        n_epochs: Count = 10,
        gamma: Fraction = 0.99,
        gae_lambda: Fraction = 0.95,
        clip_range: Annotated[float, Gt(0)] = 0.2,
        ent_coef: Annotated[float, Ge(0)] = 0.0,
        vf_coef: Annotated[float, Ge(0)] = 0.5,
        max_grad_norm: Annotated[float, Gt(0)] = 0.5,
        normalize_advantage: bool = True,
        log_std_init: float = 0.0,
        anneal_steps: Annotated[int, Ge(0)] = 0,
    ) -> None:
        self.hidden, self.activation, self.learning_rate = tuple(hidden), activation, learning_rate
        self.n_steps, self.batch_size, self.n_epochs = n_steps, batch_size, n_epochs
        self.gamma, self.gae_lambda, self.clip_range = gamma, gae_lambda, clip_range
        self.ent_coef, self.vf_coef, self.max_grad_norm = ent_coef, vf_coef, max_grad_norm
        self.normalize_advantage, self.log_std_init = normalize_advantage, log_std_init
        self.anneal_steps = anneal_steps
        self.transitions = 0  # transitions kept in rollouts
        self.updates = 0  # rollouts trained on, since the first phase (saved and loaded)
        # The weights' version: updates since this brain was set up, in this phase. Not
        # ``updates``: arl's central learner counts its updates from 0 in each phase and
        # stamps the broadcast weights, and so every action, with that count.
        self.version = 0
        self.dropped = 0  # transitions dropped: acted with other weights than the brain's
        self.rollout = Rollout()
        self.workers_seen: set[int] = set()

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        super().setup(sensors, actuators, seed)
        from arl.agents.actorcritic import PPOLearner  # torch: only in a process that hosts a PPO brain

        self._obs_id, self._action_id = box_sensor_and_actuator(
            type(self).__name__, sensors, actuators, DISCRETE_OR_BOX
        )
        space = actuators[0].space
        self._discrete_start: int | None = None
        bounds = None
        if isinstance(space, spaces.Discrete):
            self._discrete_start, outputs = int(space.start), int(space.n)
        else:
            assert isinstance(space, spaces.Box)
            outputs = flat_size(space)
            bounds = (space.low.reshape(-1).astype(np.float32), space.high.reshape(-1).astype(np.float32))
        self.learner: PPOLearner = PPOLearner(
            flat_size(sensors[0].space),
            self.hidden,
            outputs,
            activation=self.activation,
            bounds=bounds,
            seed=seed,
            learning_rate=self.learning_rate,
            log_std_init=self.log_std_init,
            max_grad_norm=self.max_grad_norm,
            device=self.device,
        )
        self.rng = np.random.default_rng(seed)

    def _action(self, setpoint: Any) -> Any:
        if self._discrete_start is not None:
            return int(setpoint) - self._discrete_start
        return np.asarray(setpoint, np.float32).reshape(-1)

    def learn(self, experience: Experience) -> Any:
        """In the agent's process: remember, and once the rollout is full train and
        return the new weights."""
        self.remember(experience)
        return self.policy() if self.train() else None

    def remember(self, experience: Experience) -> None:
        """Add a transition to its worker's rollout if the brain's current weights chose
        it: ``policy_version`` is the brain's ``version``, or None (not said).
        One acted with other weights (older ones, still acting while the new ones were on
        their way) is off-policy: dropped, counted, and the count logged as
        ``dropped_stale`` at each update and every ``STALE_LOG_EVERY`` drops."""
        if experience.policy_version is not None and experience.policy_version != self.version:
            self.dropped += 1
            if self.dropped % STALE_LOG_EVERY == 0:
                self.log_metric("dropped_stale", self.dropped)
            return
        obs = np.asarray(experience.inputs[self._obs_id], np.float32).reshape(-1)
        next_obs = np.asarray(experience.next_inputs[self._obs_id], np.float32).reshape(-1)
        action = self._action(experience.setpoints[self._action_id])
        self.rollout.add(
            experience.worker, obs, action, experience.objective, next_obs, experience.terminated, experience.truncated
        )
        self.transitions += 1
        self.workers_seen.add(experience.worker)

    def train(self) -> bool:
        """The PPO update, once the rollout holds ``n_steps`` transitions for each worker
        heard from (True); before, nothing (False)."""
        if not self.workers_seen or len(self.rollout) < self.n_steps * len(self.workers_seen):
            return False
        self._update()
        self.version += 1
        self.log_metric("dropped_stale", self.dropped)
        return True

    def buffer_size(self) -> int:
        return len(self.rollout)

    def remaining(self) -> float:
        """The share of the learning rate and clip range left (linear annealing)."""
        if self.anneal_steps == 0:
            return 1.0
        return max(0.0, 1.0 - self.transitions / self.anneal_steps)

    def _update(self) -> None:
        data = self.rollout.arrays(close_chains=True)
        self.rollout.clear()
        learner = self.learner
        # The weights have not changed since the rollout was acted with: they give the
        # old log-probabilities and the values GAE needs.
        values, next_values = learner.values(data["obs"]), learner.values(data["next_obs"])
        advantage, ret = gae(
            data["reward"], values, next_values, data["terminated"], data["end"], self.gamma, self.gae_lambda
        )
        batch = {
            "obs": data["obs"],
            "action": data["action"],
            "old_logp": learner.log_probs(data["obs"], data["action"]),
            "advantage": advantage,
            "ret": ret,
        }
        share = self.remaining()
        stats: list[dict[str, float]] = []
        for _ in range(self.n_epochs):
            order = self.rng.permutation(len(advantage))
            for start in range(0, len(order), self.batch_size):
                index = order[start : start + self.batch_size]
                stats.append(
                    learner.step(
                        {name: array[index] for name, array in batch.items()},
                        clip_range=self.clip_range * share,
                        learning_rate=self.learning_rate * share,
                        ent_coef=self.ent_coef,
                        vf_coef=self.vf_coef,
                        normalize_advantage=self.normalize_advantage,
                    )
                )
        self.updates += 1
        for name in stats[0]:
            self.log_metric(name, float(np.mean([s[name] for s in stats])), self.updates)

    def policy(self) -> Any:
        return {"version": self.version, "activation": self.activation, "weights": self.learner.weights()}

    def save(self, directory: Path) -> None:
        self.learner.save(directory)
        state = {
            "transitions": self.transitions,
            "updates": self.updates,
            "workers_seen": sorted(self.workers_seen),
            "dropped": self.dropped,
            "rng": self.rng.bit_generator.state,
        }
        (directory / STATE_FILE).write_text(json.dumps(state))
        # The rollout in progress: acted with the saved weights, so still on-policy after a load.
        self.rollout.save(directory / ROLLOUT_FILE)

    def save_state(self, path: Path) -> None:
        """What :meth:`save` writes, and the weights' version: a state is taken within a
        phase, whose count of updates the muscles' actions carry (a checkpoint is not)."""
        self.save(path)
        (path / VERSION_FILE).write_text(json.dumps({"version": self.version}))

    def load_state(self, path: Path) -> None:
        self.load(path)
        self.version = int(json.loads((path / VERSION_FILE).read_text())["version"])

    def load(self, directory: Path) -> None:
        self.learner.load(directory)
        state = json.loads((directory / STATE_FILE).read_text())
        self.transitions, self.updates = int(state["transitions"]), int(state["updates"])
        self.workers_seen = {int(w) for w in state["workers_seen"]}
        self.dropped = int(state.get("dropped", 0))  # absent from saves made before it was counted
        self.rng.bit_generator.state = state["rng"]
        self.rollout.load(directory / ROLLOUT_FILE)
