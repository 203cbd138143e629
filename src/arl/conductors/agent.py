"""Agent processes: an :class:`AgentHost` serves one or more agents, each an
:class:`AgentConductor` holding its brain, objective and one muscle per worker."""

from __future__ import annotations

import logging
import numbers
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from arl import spaces
from arl.api import ActuatorInfo, Brain, Experience, MetricSink, Muscle, Objective, SensorInfo
from arl.checkpoints import Saved, directory_digest, make_folder, verify
from arl.classref import build
from arl.messages import agent as msg
from arl.messages import control
from arl.proc.child import ChildContext
from arl.seeding import brain_seed, muscle_seed

from .links import MetricLink
from .service import Service

log = logging.getLogger("arl.agent")

_VERSION_LIMIT = 2**63  # agent_actions.policy_version is a 64-bit integer


class Metrics(Protocol):
    """Where an agent process's metrics go (:class:`~arl.conductors.links.MetricLink`)."""

    def add(self, phase: int, agent: str, worker: int | None, name: str, step: int, value: float) -> None: ...

    def flush(self) -> None: ...


@dataclass
class _Pending:
    """The transition a muscle started: completed when the next rewards arrive."""

    inputs: dict[str, Any]
    setpoints: dict[str, Any]


class AgentConductor:
    """One agent: serves its muscles to the controllers and feeds its brain in train mode."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.name = ""
        self.brain: Brain | None = None
        self.objective: Objective | None = None
        self.muscles: list[Muscle] = []
        self.train = False
        self._actuators: frozenset[str] = frozenset()
        self._pending: dict[int, _Pending] = {}

    def setup(self, request: control.SetupAgent) -> control.AgentReady:
        sensors = [SensorInfo(sid, spaces.build(desc)) for sid, desc in request.sensors]
        actuators = [ActuatorInfo(aid, spaces.build(desc)) for aid, desc in request.actuators]
        if self.metrics is not None:
            self.metrics.flush()  # the previous phase's last values
        brain: Brain = build(request.brain[0], request.brain[1], Brain, "brain")
        brain._arl_metric_sink = self._sink(request, None)
        brain.setup(sensors, actuators, brain_seed(request.seed))
        if request.load_from is not None:
            path, sha256 = request.load_from
            directory = verify(Saved(path, sha256))  # before user code reads a byte of it
            brain.load(directory)
            log.info("agent %s loaded its brain from %s", request.name, directory)
        muscles: list[Muscle] = []
        for worker in range(request.workers):
            muscle: Muscle = build(request.muscle[0], request.muscle[1], Muscle, "muscle")
            muscle._arl_metric_sink = self._sink(request, worker)
            muscle.worker, muscle.workers = worker, request.workers
            muscle.setup(sensors, actuators, muscle_seed(request.seed, worker))
            muscles.append(muscle)
        policy = brain.policy()
        if policy is not None:
            for muscle in muscles:
                muscle.update(policy)
        self.objective = build(request.objective[0], request.objective[1], Objective, "objective")
        self.name, self.brain, self.muscles, self.train = request.name, brain, muscles, request.train
        self._actuators = frozenset(a.id for a in actuators)
        self._pending.clear()
        return control.AgentReady(request.name)

    def _sink(self, request: control.SetupAgent, worker: int | None) -> MetricSink | None:
        """Where the brain (``worker`` None) or a worker's muscle logs its metrics."""
        metrics = self.metrics
        if metrics is None:
            return None
        phase, agent = request.phase, request.name

        def sink(name: str, value: float, step: int) -> None:
            metrics.add(phase, agent, worker, name, step, value)

        return sink

    def act(
        self,
        worker: int,
        sensors: dict[str, Any],
        rewards: dict[str, float] | None,
        done: tuple[bool, bool],
        final: bool,
    ) -> list[Any]:
        """Complete the previous transition with ``rewards``, then act (unless ``final``):
        ``[setpoints, objective of the previous transition | None, policy version | None]``."""
        if self.brain is None or self.objective is None:
            raise RuntimeError(f"agent {self.name!r} is not set up for a phase")
        objective = None
        pending = self._pending.pop(worker, None)
        if rewards is not None and pending is not None:
            objective = float(self.objective.evaluate(rewards))
            if self.train:
                if final and not done[0]:
                    # The episode's last transition and not a terminal one: it was cut
                    # (max_steps, a condition, a stop), which the brain must know.
                    done = (False, True)
                self._learn(worker, pending, rewards, objective, sensors, done)
        if final:
            return [{}, objective, None]
        muscle = self.muscles[worker]
        setpoints = dict(muscle.act(sensors))
        if not setpoints.keys() <= self._actuators:
            unknown = sorted(setpoints.keys() - self._actuators)
            raise ValueError(f"agent {self.name!r}'s muscle set actuators it does not have: {unknown}")
        self._pending[worker] = _Pending(sensors, setpoints)
        return [setpoints, objective, self._version(muscle.policy_version)]

    def _version(self, version: object) -> int | None:
        """A muscle's ``policy_version``, checked: None or a non-negative integer."""
        if version is None:
            return None
        if isinstance(version, bool) or not isinstance(version, numbers.Integral):
            raise TypeError(
                f"agent {self.name!r}'s muscle has policy_version {version!r}: it must be None or an integer"
            )
        if not 0 <= int(version) < _VERSION_LIMIT:
            raise ValueError(
                f"agent {self.name!r}'s muscle has policy_version {version}: it must be between 0 and 2**63 - 1"
            )
        return int(version)

    def _learn(
        self,
        worker: int,
        pending: _Pending,
        rewards: dict[str, float],
        objective: float,
        next_inputs: dict[str, Any],
        done: tuple[bool, bool],
    ) -> None:
        assert self.brain is not None
        experience = Experience(
            worker=worker,
            inputs=pending.inputs,
            setpoints=pending.setpoints,
            rewards=rewards,
            objective=objective,
            next_inputs=next_inputs,
            terminated=done[0],
            truncated=done[1],
        )
        update = self.brain.learn(experience)
        if update is not None:
            for muscle in self.muscles:
                muscle.update(update)

    def save(self, request: control.SaveBrain) -> control.BrainSaved:
        if self.brain is None:
            raise RuntimeError(f"agent {self.name!r} has no brain to save")
        # New, or an error: whatever is there already is not this run's to replace.
        directory = make_folder(Path(request.directory), f"agent {self.name}'s brain")
        self.brain.save(directory)
        if self.metrics is not None:
            self.metrics.flush()  # the phase is over: what it logged goes now
        return control.BrainSaved(self.name, str(directory), directory_digest(directory))


class AgentHost:
    """The agents of one process, by name. One :class:`~arl.messages.agent.Act` asks
    every agent of a turn that lives here; an agent whose code raises answers with its
    failure, under its own name, and the others' answers still count. ``metrics`` takes
    what the agents' brains and muscles log (None: it is checked and dropped)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.agents: dict[str, AgentConductor] = {}

    def handle(self, message: Any) -> Any:
        if isinstance(message, msg.Act):
            return self.act(message)
        if isinstance(message, control.SetupAgent):
            return self.agents.setdefault(message.name, AgentConductor(self.metrics)).setup(message)
        if isinstance(message, control.SaveBrain):
            return self._agent(message.name).save(message)
        raise TypeError(f"an agent process cannot handle {type(message).__name__}")

    def _agent(self, name: str) -> AgentConductor:
        agent = self.agents.get(name)
        if agent is None:
            raise KeyError(f"agent {name!r} is not set up in this process (it hosts {sorted(self.agents)})")
        return agent

    def act(self, request: msg.Act) -> msg.Acted:
        answers: dict[str, list[Any]] = {}
        failures: dict[str, list[str]] = {}
        done = (request.terminated, request.truncated)
        for name, (sensors, rewards) in request.agents.items():
            try:
                answers[name] = self._agent(name).act(request.worker, sensors, rewards, done, request.final)
            except Exception as exc:  # this agent's failure, named; the others go on
                log.debug("agent %s failed: %s", name, exc, exc_info=True)
                failures[name] = [type(exc).__name__, str(exc), traceback.format_exc()]
        return msg.Acted(answers, failures)


def main(ctx: ChildContext) -> None:
    """Entry point of an ``arl[agent:...]`` process. Its metrics go to the run's store
    (``store`` in its spec) over a link of their own."""
    endpoint = ctx.spec.args.get("store")
    metrics = MetricLink(ctx.zmq, endpoint) if endpoint else None
    try:
        Service(ctx, AgentHost(metrics).handle).serve()
    finally:
        if metrics is not None:
            metrics.close()
