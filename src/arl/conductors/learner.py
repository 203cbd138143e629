"""A central agent's learner process, ``arl[learner:<agent>]`` (SEED-style acting).

It holds the agent's brain. The controllers PUSH it every transition of a train phase
(:class:`~arl.messages.learner.Experiences`), which go to :meth:`arl.api.Brain.remember`;
between them it calls :meth:`arl.api.Brain.train`, at most ``max_train_frequency``
times a second and only once ``minimum_buffer_size`` transitions came; every
``broadcast_period`` seconds after an update it PUBlishes :meth:`arl.api.Brain.policy`
to the agent's inference servers, versioned by its count of updates in the phase (and
again every :data:`KEEPALIVE` seconds, for a server that joined late). It is one thread:
control requests (setup, save) are served between updates.

arl's own metrics: ``arl/updates_per_s``, ``arl/policy_lag`` (updates between the
version that chose an action and the learner's version when the transition came), and
``arl/buffer_size`` (:meth:`arl.api.Brain.buffer_size`), each once a second.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from pathlib import Path
from typing import Any

import zmq

from arl import spaces
from arl.api import ActuatorInfo, Brain, Experience, SensorInfo
from arl.checkpoints import directory_digest, make_folder
from arl.codec import decode, encode, pack, unpack
from arl.errors import ArlError, ProtocolError
from arl.messages import control
from arl.messages.learner import Experiences, Weights
from arl.proc.child import ChildContext
from arl.transport import DropLog, check_size, limit_input

from .agent import Metrics, set_up_brain
from .devices import check_device
from .links import MetricLink
from .service import Service

log = logging.getLogger("arl.learner")

KEEPALIVE = 1.0  # seconds: the latest policy is sent again this often, changed or not
STATS_INTERVAL = 1.0
DRAIN_LIMIT = 256  # experience messages taken in a row before training gets a turn
SAVE_PATIENCE = 30.0  # seconds a save waits for the transitions the workers said they sent


class Learner:
    """The brain of one central agent, and its two sockets: experience in, policy out."""

    def __init__(self, zctx: zmq.Context[Any], experiences: str, weights: str, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.pull = zctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        limit_input(self.pull)
        self.pull.bind(experiences)
        # XPUB: a server that subscribes is noticed (joined), and sent the latest policy at
        # once: the broadcast at setup may go out before every server has connected.
        self.pub = zctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        # It reads subscriptions (a byte and a topic, empty here): nothing bigger comes in.
        limit_input(self.pub, max_bytes=256, sndhwm=1000)
        self.pub.bind(weights)
        self._drops = DropLog(log, "the learner dropped a message it cannot read")
        self.name = ""
        self.phase = -1
        self.brain: Brain | None = None
        self.train = False
        self._reset()

    def _reset(self) -> None:
        self.updates = 0
        self.received = 0
        self.max_frequency: float | None = None
        self.minimum = 1
        self.period = 0.1
        self.patience = SAVE_PATIENCE
        self._next_train = 0.0
        self._starved = False  # train() said not yet: wait for more experience
        self._warmed = False  # minimum_buffer_size was reached in this phase
        self._sent_version = -1
        self._sent_at = -math.inf
        self._stats_due = time.monotonic() + STATS_INTERVAL
        self._stats_updates = 0
        self._stats_step = 0
        self._lag_sum = 0
        self._lag_count = 0

    def handle(self, message: Any) -> Any:
        if isinstance(message, control.SetupAgent):
            return self.setup(message)
        if isinstance(message, control.SaveBrain):
            return self.save(message)
        if isinstance(message, control.SaveState):
            return self.save_state(message)
        if isinstance(message, control.LoadState):
            return self.load_state(message)
        raise TypeError(f"a learner cannot handle {type(message).__name__}")

    # -- snapshots (docs/state.md) ---------------------------------------------------------

    def _state_root(self, directory: str) -> Path:
        return Path(directory) / "agents" / self.name

    def save_state(self, request: control.SaveState) -> control.StateSaved:
        """The run is paused: take every transition the workers sent before it, then save
        the brain (``save_state``) and the learner's counts."""
        if self.brain is None:
            raise RuntimeError("the learner has no brain to save")
        self._await(request.experiences)
        root = self._state_root(request.directory)
        (root / "brain").mkdir(parents=True, exist_ok=False)
        self.brain.save_state(root / "brain")
        counts = {"updates": self.updates, "received": self.received, "warmed": self._warmed, "train": self.train}
        (root / "learner.msgpack").write_bytes(pack(counts))
        if self.metrics is not None:
            self.metrics.flush()
        return control.StateSaved([self.name])

    def load_state(self, request: control.LoadState) -> control.StateSaved:
        """After the phase's setup: go on from :meth:`save_state`'s folder, and broadcast
        the loaded policy to the inference servers."""
        if self.brain is None:
            raise RuntimeError("the learner has no brain to load")
        root = self._state_root(request.directory)
        if not root.is_dir():
            raise ArlError(f"the snapshot has no state of agent {self.name!r}'s learner ({root} is missing)")
        self.brain.load_state(root / "brain")
        counts = unpack((root / "learner.msgpack").read_bytes())
        self.updates, self.received = int(counts["updates"]), int(counts["received"])
        self._warmed, self.train = bool(counts["warmed"]), bool(counts["train"])
        self._sent_version = -1  # (whatever was broadcast at setup is older)
        self._broadcast()
        return control.StateSaved([self.name])

    def setup(self, request: control.SetupAgent) -> control.AgentReady:
        if request.role != "learner":
            raise ValueError(f"a learner process cannot take the role {request.role!r}")
        self._flush_stats()
        options = request.options or {}
        device = str(options.get("device", "cpu"))
        check_device(device)
        sensors = [SensorInfo(sid, spaces.build(desc)) for sid, desc in request.sensors]
        actuators = [ActuatorInfo(aid, spaces.build(desc)) for aid, desc in request.actuators]
        brain = set_up_brain(request, sensors, actuators, self._sink(request.phase, request.name), device)
        if not callable(inspect.getattr_static(brain, "buffer_size", None)):
            log.warning(
                "agent %s's brain has an attribute buffer_size that hides Brain.buffer_size(); rename it "
                "(arl's DQNBrain calls it capacity) to have its buffer's fill logged",
                request.name,
            )
        self.name, self.phase, self.brain, self.train = request.name, request.phase, brain, request.train
        self._reset()
        frequency = options.get("max_train_frequency")
        self.max_frequency = None if frequency is None else float(frequency)
        self.minimum = int(options.get("minimum_buffer_size", 1))
        self.period = float(options.get("broadcast_period", 0.1))
        self.patience = min(SAVE_PATIENCE, float(options.get("wait", SAVE_PATIENCE)))
        self._broadcast()  # the servers wait for it before their muscles act
        return control.AgentReady(request.name)

    def _sink(self, phase: int, agent: str) -> Any:
        metrics = self.metrics
        if metrics is None:
            return None

        def sink(name: str, value: float, step: int) -> None:
            metrics.add(phase, agent, None, name, step, value)

        return sink

    # -- the loop's turn ------------------------------------------------------------------

    def take(self) -> int:
        """Hand the transitions waiting to the brain; how many messages were read."""
        taken = 0
        while taken < DRAIN_LIMIT:
            try:
                frame = self.pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            taken += 1
            try:
                message = decode(frame)
            except ProtocolError as exc:
                self._drops.drop(exc)
                continue
            if not isinstance(message, Experiences) or message.agent != self.name or message.phase != self.phase:
                self._drops.drop(f"{type(message).__name__} not for this phase of agent {self.name}")
                continue
            self._remember(message.items)
        return taken

    def _remember(self, items: list[list[Any]]) -> None:
        brain = self.brain
        if brain is None or not self.train:
            return
        for item in items:
            try:
                experience = _experience(item)
            except (TypeError, ValueError) as exc:  # another process's bytes: never this one's end
                self._drops.drop(f"a transition that cannot be read: {exc}")
                continue
            brain.remember(experience)  # the user's code: its failure is the run's
            if experience.policy_version is not None:
                self._lag_sum += self.updates - experience.policy_version
                self._lag_count += 1
            self.received += 1
        self._starved = False

    def idle(self) -> float:
        """Take what came, train if it is time, broadcast if due: the seconds until it
        wants to be called again (0: train again at once)."""
        if self.brain is None:  # before the first setup: nothing to train or send
            self.take()
            return KEEPALIVE
        self.take()
        now = time.monotonic()
        wait = KEEPALIVE
        if self.brain is not None and self.train and self._warm() and not self._starved:
            if now >= self._next_train:
                if self.brain.train():
                    self.updates += 1
                    self._stats_updates += 1
                else:
                    self._starved = True
                now = time.monotonic()
                self._next_train = now + (1 / self.max_frequency if self.max_frequency else 0.0)
            if not self._starved:
                wait = max(0.0, self._next_train - now)
        if self.brain is not None:
            changed = self.updates != self._sent_version
            if (changed and now >= self._sent_at + self.period) or now >= self._sent_at + KEEPALIVE:
                self._broadcast()
            if self.updates != self._sent_version:
                wait = min(wait, max(0.0, self._sent_at + self.period - now))
            if now >= self._stats_due:
                self._flush_stats()
        return min(wait, max(0.0, self._stats_due - now), max(0.0, self._sent_at + KEEPALIVE - now))

    def joined(self) -> None:
        """A server subscribed: send it the latest policy now, not at the next keepalive."""
        subscribed = False
        while True:
            try:
                subscribed |= self.pub.recv(zmq.NOBLOCK)[:1] == b"\x01"
            except zmq.Again:
                break
        if subscribed and self.brain is not None:
            self._broadcast()

    def _warm(self) -> bool:
        """Whether training may start: once the brain holds ``minimum_buffer_size``
        transitions (a loaded brain may hold a full replay buffer already; a brain that
        does not say counts what came in this phase), and from then on for the phase (an
        on-policy brain's rollout empties at each update: its size is its own)."""
        if not self._warmed:
            assert self.brain is not None
            size = _buffer_size(self.brain)
            self._warmed = (self.received if size is None else size) >= self.minimum
        return self._warmed

    def _broadcast(self) -> None:
        assert self.brain is not None
        policy = self.brain.policy()
        if policy is None:  # a brain that only implements learn(): what it last returned
            policy = self.brain._arl_update
        frame = check_size(encode(Weights(self.name, self.phase, self.updates, policy)), "a policy")
        self.pub.send(frame)
        self._sent_version, self._sent_at = self.updates, time.monotonic()

    def _flush_stats(self) -> None:
        now = time.monotonic()
        elapsed = now - (self._stats_due - STATS_INTERVAL)
        self._stats_due = now + STATS_INTERVAL
        if self.metrics is None or self.brain is None or not self.train:
            return
        self._stats_step += 1
        step, add = self._stats_step, self.metrics.add
        add(self.phase, self.name, None, "arl/updates_per_s", step, self._stats_updates / max(elapsed, 1e-9))
        if self._lag_count:
            add(self.phase, self.name, None, "arl/policy_lag", step, self._lag_sum / self._lag_count)
        size = _buffer_size(self.brain)
        if size is not None:
            add(self.phase, self.name, None, "arl/buffer_size", step, float(size))
        self._stats_updates = self._lag_sum = self._lag_count = 0

    # -- the end of a phase ---------------------------------------------------------------

    def save(self, request: control.SaveBrain) -> control.BrainSaved:
        if self.brain is None or request.name != self.name:
            raise RuntimeError(f"the learner of agent {self.name!r} has no brain of agent {request.name!r} to save")
        self._await(request.experiences)
        directory = make_folder(Path(request.directory), f"agent {self.name}'s brain")
        self.brain.save(directory)
        self._flush_stats()
        self.train = False  # the phase is over: the saved brain is the phase's last word
        if self.metrics is not None:
            self.metrics.flush()
        log.debug("agent %s's learner saved after %d updates, %d transitions", self.name, self.updates, self.received)
        return control.BrainSaved(self.name, str(directory), directory_digest(directory))

    def _await(self, expected: int) -> None:
        """Take every transition the workers say they sent before saving (they travel on
        another socket than this request, so some may still be on their way)."""
        deadline = time.monotonic() + self.patience
        while self.received < expected:
            if self.take() == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning(
                        "agent %s's learner saves with %d of the %d transitions sent to it", self.name,
                        self.received, expected,
                    )  # fmt: skip
                    return
                self.pull.poll(min(100, int(left * 1000) + 1))

    def close(self) -> None:
        self.pull.close()
        self.pub.close()


def main(ctx: ChildContext) -> None:
    """Entry point of an ``arl[learner:<agent>]`` process."""
    args = ctx.spec.args
    endpoint = args.get("store")
    metrics = MetricLink(ctx.zmq, endpoint) if endpoint else None
    learner = Learner(ctx.zmq, args["experiences"], args["weights"], metrics)
    try:
        service = Service(ctx, learner.handle)
        service.watch(learner.pull, learner.take)
        service.watch(learner.pub, learner.joined)
        service.idle = learner.idle
        service.serve()
    finally:
        learner.close()
        if metrics is not None:
            metrics.close()


def _experience(item: list[Any]) -> Experience:
    """One item of :class:`~arl.messages.learner.Experiences` (``EXPERIENCE_FIELDS``)."""
    worker, inputs, setpoints, rewards, objective, next_inputs, terminated, truncated, version = item
    if version is not None and (type(version) is not int or version < 0):
        raise ValueError(f"policy version {version!r} is not a version")
    return Experience(
        int(worker), inputs, setpoints, rewards, float(objective), next_inputs, bool(terminated), bool(truncated),
        version,
    )  # fmt: skip


def _buffer_size(brain: Brain) -> int | None:
    """:meth:`arl.api.Brain.buffer_size`, even where an attribute of the same name (a
    brain's parameter, say) hides the method on the instance."""
    method = inspect.getattr_static(type(brain), "buffer_size", None)
    if not callable(method) or isinstance(method, staticmethod | classmethod):
        method = Brain.buffer_size  # a class attribute of that name (a parameter's default) hides it
    size = method(brain)
    return None if size is None else int(size)
