"""Agent processes: an :class:`AgentHost` serves one or more agents, each an
:class:`AgentConductor` holding its objective, one muscle per worker it serves and,
unless the agent is central, its brain.

A central agent's brain lives in a learner process (:mod:`arl.conductors.learner`); its
muscles live in inference servers, agent processes that each serve a share of the
workers and take the learner's policy from its broadcasts. Every agent process answers
its controllers' requests in batches (:class:`~arl.conductors.service.Batcher`): the
transitions they complete first, then each agent's muscles act on the whole batch at
once (:meth:`arl.api.Muscle.act_batch`).
"""

from __future__ import annotations

import logging
import numbers
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import zmq

from arl import spaces
from arl.api import ActuatorInfo, Brain, Experience, MetricSink, Muscle, Objective, SensorInfo
from arl.checkpoints import Saved, directory_digest, make_folder, verify
from arl.classref import build
from arl.codec import decode
from arl.errors import ProtocolError
from arl.messages import agent as msg
from arl.messages import control
from arl.messages.common import ErrorReply
from arl.messages.learner import Weights
from arl.proc.child import ChildContext
from arl.seeding import brain_seed, muscle_seed
from arl.transport import limit_input

from .agentstate import Pending as _Pending
from .agentstate import load_agent, save_agent
from .devices import check_device
from .links import MetricLink
from .service import Service

log = logging.getLogger("arl.agent")

_VERSION_LIMIT = 2**63  # agent_actions.policy_version is a 64-bit integer
MAX_BATCH = 65536
STATS_INTERVAL = 1.0  # seconds between arl's own inference metrics
PACE_PATIENCE = 2.0  # seconds a server waits for its learner's next update before its workers go on
PACE_SLACK = 64  # steps a server may run ahead of its share (transitions still on their way to the learner)
PACE_SLACK_PER_WORKER = 8  # and per worker it serves (its open transition, an n-step window)


class Metrics(Protocol):
    """Where an agent process's metrics go (:class:`~arl.conductors.links.MetricLink`)."""

    def add(self, phase: int, agent: str, worker: int | None, name: str, step: int, value: float) -> None: ...

    def flush(self) -> None: ...


class _BatchStats:
    """arl's own inference metrics of one agent: the mean batch size and latency (first
    request read to answers made, in ms) of each ``STATS_INTERVAL``. ``suffix`` tells a
    central agent's inference servers apart (``/server<k>``), when it has several."""

    def __init__(
        self, sink: Callable[[str, float, int], None], suffix: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.sink, self.suffix, self.clock = sink, suffix, clock
        self.batches = self.requests = 0
        self.latency = 0.0
        self.due = clock() + STATS_INTERVAL
        self.step = 0

    def add(self, size: int, latency: float) -> None:
        self.batches += 1
        self.requests += size
        self.latency += latency
        if self.clock() >= self.due:
            self.flush()

    def flush(self) -> None:
        self.due = self.clock() + STATS_INTERVAL
        if not self.batches:
            return
        self.step += 1
        self.sink("arl/inference_batch_size" + self.suffix, self.requests / self.batches, self.step)
        self.sink("arl/inference_latency_ms" + self.suffix, 1000 * self.latency / self.batches, self.step)
        self.batches = self.requests = 0
        self.latency = 0.0


class AgentConductor:
    """One agent in this process: serves its muscles to the controllers and, unless the
    agent is central, feeds its brain in train mode."""

    def __init__(self, metrics: Metrics | None = None, zmq_ctx: zmq.Context[Any] | None = None) -> None:
        self.metrics = metrics
        self.zmq_ctx = zmq_ctx
        self.name = ""
        self.phase = -1
        self.brain: Brain | None = None
        self.objective: Objective | None = None
        self.muscles: dict[int, Muscle] = {}
        self.train = False
        self.central = False
        self.batchsize = MAX_BATCH
        self.delay = 0.0
        self.version: int | None = None  # the learner's broadcast the muscles act with (central)
        self._pace: tuple[float, float] | None = None  # (steps allowed before any update, steps an update)
        self._acted = 0  # steps acted for this phase (central, train)
        self._pace_given_up = False
        self._weights: zmq.Socket[Any] | None = None
        self._weights_endpoint: str | None = None
        self._actuators: frozenset[str] = frozenset()
        self._pending: dict[int, _Pending] = {}
        self._stats: _BatchStats | None = None

    def setup(self, request: control.SetupAgent) -> control.AgentReady:
        if request.role not in ("all", "inference"):
            raise ValueError(f"an agent process cannot take the role {request.role!r}")
        options = request.options or {}
        sensors = [SensorInfo(sid, spaces.build(desc)) for sid, desc in request.sensors]
        actuators = [ActuatorInfo(aid, spaces.build(desc)) for aid, desc in request.actuators]
        if self._stats is not None:
            self._stats.flush()
        if self.metrics is not None:
            self.metrics.flush()  # the previous phase's last values
        central = request.role == "inference"
        device = str(options.get("device", "cpu"))
        check_device(device)
        brain = None if central else set_up_brain(request, sensors, actuators, self._sink(request, None), None)
        serves = range(request.workers) if request.serves is None else request.serves
        muscles: dict[int, Muscle] = {}
        for worker in serves:
            muscle: Muscle = build(request.muscle[0], request.muscle[1], Muscle, "muscle")
            muscle._arl_metric_sink = self._sink(request, worker)
            muscle.worker, muscle.workers, muscle.device = worker, request.workers, device
            muscle.setup(sensors, actuators, muscle_seed(request.seed, worker))
            muscles[worker] = muscle
        self.objective = build(request.objective[0], request.objective[1], Objective, "objective")
        self.name, self.phase, self.brain, self.muscles = request.name, request.phase, brain, muscles
        self.train, self.central = request.train and not central, central
        # Each controller has one request out at a time: a batch can never hold more
        # requests than the server has controllers, and waiting for more is waiting in vain.
        clients = max(1, int(options.get("clients", len(muscles))))
        batchsize = options.get("batchsize")
        self.batchsize = min(MAX_BATCH, clients, int(batchsize)) if batchsize else min(MAX_BATCH, clients)
        self.delay = float(options.get("delay", 0.0))
        self._actuators = frozenset(a.id for a in actuators)
        self._pending.clear()
        self.version = None
        self._acted, self._pace_given_up = 0, False
        pace = options.get("pace") if central and request.train else None
        if pace:  # [learner's minimum, steps an update, the phase's workers]: this server's share
            minimum, steps, workers = pace
            share = len(muscles) / max(1, int(workers))
            # Slack for what is still on its way: a step's transition completes a step
            # later, and an n-step window holds a few per worker.
            slack = PACE_SLACK + PACE_SLACK_PER_WORKER * len(muscles)
            self._pace = (share * float(minimum) + slack, share * float(steps))
        else:
            self._pace = None
        sink = self._sink(request, None)
        suffix = f"/server{options['server']}" if int(options.get("servers", 1)) > 1 else ""
        # arl's own inference metrics: a central agent's servers only (an agent in its own
        # process is asked by the workers one step at a time, as before).
        self._stats = _BatchStats(sink, suffix) if sink is not None and central else None
        if brain is not None:
            policy = brain.policy()
            if policy is not None:
                for muscle in muscles.values():
                    muscle.update(policy)
        else:
            self._first_policy(request.weights, float(options.get("wait", 60.0)))
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

    # -- the learner's broadcasts (central agents) --------------------------------------

    def _first_policy(self, endpoint: str | None, wait: float) -> None:
        """Subscribe to the learner's broadcasts (once a run) and wait for its first of
        this phase: a muscle must not act before it has the learner's policy."""
        if endpoint is None or self.zmq_ctx is None:
            raise ValueError(f"agent {self.name!r} is central but was given no learner to listen to")
        if self._weights is None or self._weights_endpoint != endpoint:
            if self._weights is not None:
                self._weights.close()
            sock = self.zmq_ctx.socket(zmq.SUB)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.CONFLATE, 1)  # only the latest policy matters
            limit_input(sock)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(endpoint)
            self._weights, self._weights_endpoint = sock, endpoint
        deadline = time.monotonic() + wait
        while self.version is None:
            left = deadline - time.monotonic()
            if left <= 0 or not self._weights.poll(int(left * 1000) + 1):
                raise TimeoutError(
                    f"agent {self.name!r}: its learner sent no policy within {wait:g} s (see the learner's log "
                    "lines; a brain slow to set up or load needs more: ARL_TIMEOUTS=request=SECONDS)"
                )
            self.take_weights()

    def keep_pace(self, steps: int) -> None:
        """``learner.max_steps_per_update``: before acting ``steps`` more, wait for the
        learner's next updates (its broadcasts) while this server's workers would be more
        steps ahead of it than they may (SEED's actors otherwise outrun a learner that
        shares a few cores with them, and it trains on ever fewer updates a step). A
        learner that makes no update for ``PACE_PATIENCE`` seconds (its brain is not ready
        to train, say) lets the workers go on for the rest of the phase, with a warning."""
        pace = self._pace
        self._acted += steps
        if pace is None or self._pace_given_up or self._weights is None:
            return
        first, each = pace
        deadline = time.monotonic() + PACE_PATIENCE
        while self._acted > first + each * (self.version or 0):
            left = deadline - time.monotonic()
            if left <= 0:
                self._pace_given_up = True
                log.warning(
                    "agent %s: its learner made no update for %g s while the workers waited for it; they go on "
                    "without learner.max_steps_per_update for the rest of the phase (is the learner's "
                    "minimum_buffer_size at least the brain's own?)", self.name, PACE_PATIENCE,
                )  # fmt: skip
                return
            if self._weights.poll(max(1, int(left * 1000))):
                before = self.version
                self.take_weights()
                if self.version != before:
                    deadline = time.monotonic() + PACE_PATIENCE

    def take_weights(self) -> None:
        """Take the learner's latest policy, if a newer one came (central agents)."""
        sock = self._weights
        if sock is None:
            return
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                weights = decode(frame)
            except ProtocolError as exc:
                log.warning("agent %s: a policy that cannot be read was dropped: %s", self.name, exc)
                continue
            if not isinstance(weights, Weights) or weights.agent != self.name or weights.phase != self.phase:
                continue  # an earlier phase's, still on its way
            if self.version is not None and weights.version <= self.version:
                continue
            if weights.policy is not None:
                for muscle in self.muscles.values():
                    muscle.update(weights.policy)
            self.version = weights.version
            for muscle in self.muscles.values():
                muscle.policy_version = weights.version

    # -- a step --------------------------------------------------------------------------

    def complete(
        self,
        worker: int,
        sensors: dict[str, Any],
        rewards: dict[str, float] | None,
        done: tuple[bool, bool],
        final: bool,
    ) -> float | None:
        """Complete ``worker``'s previous transition with ``rewards``: its objective (and,
        with a brain here in train mode, what the brain learns from it)."""
        if self.objective is None:
            raise RuntimeError(f"agent {self.name!r} is not set up for a phase")
        if worker not in self.muscles:
            serves = sorted(self.muscles)
            raise KeyError(f"agent {self.name!r} does not act for worker {worker} here (it serves {serves})")
        pending = self._pending.pop(worker, None)
        if rewards is None:
            return None
        objective = float(self.objective.evaluate(rewards))
        if self.train and pending is not None:
            if final and not done[0]:
                # The episode's last transition and not a terminal one: it was cut
                # (max_steps, a condition, a stop), which the brain must know.
                done = (False, True)
            self._learn(worker, pending, rewards, objective, sensors, done)
        return objective

    def act_one(self, worker: int, sensors: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """One worker's muscle acts (:meth:`arl.api.Muscle.act`: a batch of one)."""
        muscle = self.muscles[worker]
        setpoints = dict(muscle.act(sensors))
        if not setpoints.keys() <= self._actuators:
            unknown = sorted(setpoints.keys() - self._actuators)
            raise ValueError(f"agent {self.name!r}'s muscle set actuators it does not have: {unknown}")
        version = muscle.policy_version
        if version is not None:
            version = self._version(version)
        if self.train:
            self._pending[worker] = _Pending(sensors, setpoints, version)
        return setpoints, version

    def act_batch(self, batch: list[tuple[int, dict[str, Any]]]) -> list[tuple[dict[str, Any], int | None]]:
        """The muscles of ``batch``'s workers act on their readings, all at once:
        ``(setpoints, policy version)`` for each."""
        pairs = [(self.muscles[worker], sensors) for worker, sensors in batch]
        chosen = list(pairs[0][0].act_batch(pairs))
        if len(chosen) != len(pairs):
            raise ValueError(
                f"agent {self.name!r}'s muscle answered {len(chosen)} setpoints for a batch of {len(pairs)}"
            )
        results = []
        for (worker, sensors), (muscle, _), setpoints in zip(batch, pairs, chosen, strict=True):
            setpoints = dict(setpoints)
            if not setpoints.keys() <= self._actuators:
                unknown = sorted(setpoints.keys() - self._actuators)
                raise ValueError(f"agent {self.name!r}'s muscle set actuators it does not have: {unknown}")
            version = self._version(muscle.policy_version)
            if self.train:
                self._pending[worker] = _Pending(sensors, setpoints, version)
            results.append((setpoints, version))
        return results

    def batch_done(self, size: int, received: float) -> None:
        """A batch of ``size`` requests, the first read at ``received``, is answered."""
        if self._stats is not None:
            self._stats.add(size, time.monotonic() - received)

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
            policy_version=pending.version,
        )
        update = self.brain.learn(experience)
        if update is not None:
            for muscle in self.muscles.values():
                muscle.update(update)

    def save(self, request: control.SaveBrain) -> control.BrainSaved:
        if self.brain is None:
            raise RuntimeError(f"agent {self.name!r} has no brain to save here")
        # New, or an error: whatever is there already is not this run's to replace.
        directory = make_folder(Path(request.directory), f"agent {self.name}'s brain")
        self.brain.save(directory)
        if self._stats is not None:
            self._stats.flush()
        if self.metrics is not None:
            self.metrics.flush()  # the phase is over: what it logged goes now
        return control.BrainSaved(self.name, str(directory), directory_digest(directory))

    def close(self) -> None:
        if self._stats is not None:  # an inference server gets no save: its last figures go now
            self._stats.flush()
            self._stats = None
        if self._weights is not None:
            self._weights.close()
            self._weights = None


class AgentHost:
    """The agents of one process, by name. One :class:`~arl.messages.agent.Act` asks
    every agent of a turn that lives here; an agent whose code raises answers with its
    failure, under its own name, and the others' answers still count. ``metrics`` takes
    what the agents' brains and muscles log (None: it is checked and dropped)."""

    def __init__(self, metrics: Metrics | None = None, zmq_ctx: zmq.Context[Any] | None = None) -> None:
        self.metrics = metrics
        self.zmq_ctx = zmq_ctx
        self.agents: dict[str, AgentConductor] = {}
        self._limits: tuple[int, float] | None = None

    def handle(self, message: Any) -> Any:
        if isinstance(message, msg.Act):
            return self.handle_batch([message], time.monotonic())[0]
        if isinstance(message, control.SetupAgent):
            conductor = self.agents.setdefault(message.name, AgentConductor(self.metrics, self.zmq_ctx))
            self._limits = None  # the batch this phase's agents take changes with them
            return conductor.setup(message)
        if isinstance(message, control.SaveBrain):
            return self._agent(message.name).save(message)
        if isinstance(message, control.SaveState | control.LoadState):
            return self._state(message)
        raise TypeError(f"an agent process cannot handle {type(message).__name__}")

    def _state(self, message: control.SaveState | control.LoadState) -> control.StateSaved:
        """Save or load the state of this phase's agents here, each under ``agents/<name>``."""
        current = max((a.phase for a in self.agents.values()), default=-1)
        names = sorted(name for name, a in self.agents.items() if a.phase == current)
        for name in names:
            root = Path(message.directory) / "agents" / name
            if isinstance(message, control.SaveState):
                save_agent(self.agents[name], root)
            else:
                load_agent(self.agents[name], root)
        return control.StateSaved(names)

    def _agent(self, name: str) -> AgentConductor:
        agent = self.agents.get(name)
        if agent is None:
            raise KeyError(f"agent {name!r} is not set up in this process (it hosts {sorted(self.agents)})")
        return agent

    def limits(self) -> tuple[int, float]:
        """A batch: the smallest batch any agent of the current phase here takes, waiting
        as long as the least patient of them allows (none set up: one at a time)."""
        if self._limits is None:
            current = max((a.phase for a in self.agents.values()), default=-1)
            agents = [a for a in self.agents.values() if a.phase == current]
            self._limits = (min(a.batchsize for a in agents), min(a.delay for a in agents)) if agents else (1, 0.0)
        return self._limits

    def handle_batch(self, requests: list[Any], received: float) -> list[Any]:
        """An :class:`~arl.messages.agent.Acted` for each Act, an
        :class:`~arl.messages.agent.ActedMany` for each ActMany (several workers of one
        controller): every transition the batch completes first, then each agent's
        muscles act on all of its readings at once."""
        if len(requests) == 1 and type(requests[0]) is msg.Act:
            return [self._act_one(requests[0], received)]  # one worker's step: the common case
        acts: list[msg.Act] = []
        spans: list[tuple[int, int] | ErrorReply] = []  # each request's acts, or why it has none
        for request in requests:
            if isinstance(request, msg.Act):
                spans.append((len(acts), len(acts) + 1))
                acts.append(request)
            elif isinstance(request, msg.ActMany):
                try:
                    many = request.acts()
                except ValueError as exc:
                    spans.append(ErrorReply("agents", "ProtocolError", str(exc), ""))
                    continue
                spans.append((len(acts), len(acts) + len(many)))
                acts.extend(many)
            else:
                what = f"an agent process cannot handle {type(request).__name__} on its direct link"
                spans.append(ErrorReply("agents", "TypeError", what, ""))
        acted = self._act(acts, received)
        replies: list[Any] = []
        for span, request in zip(spans, requests, strict=True):
            if isinstance(span, ErrorReply):
                replies.append(span)
            elif isinstance(request, msg.ActMany):
                part = acted[span[0] : span[1]]
                replies.append(msg.ActedMany([a.answers for a in part], [a.failures for a in part]))
            else:
                replies.append(acted[span[0]])
        return replies

    def _act_one(self, request: msg.Act, received: float) -> msg.Acted:
        """:meth:`_act` for a batch of one request, without its bookkeeping (a step of
        the dummy run spends a few per cent of its time here)."""
        answers: dict[str, list[Any]] = {}
        failures: dict[str, list[str]] = {}
        done = (request.terminated, request.truncated)
        for name, (sensors, rewards) in request.agents.items():
            try:
                agent = self._agent(name)
                objective = agent.complete(request.worker, sensors, rewards, done, request.final)
                if request.final:
                    answers[name] = [{}, objective, None]
                    continue
                if agent.central:
                    agent.take_weights()
                    agent.keep_pace(1)
                setpoints, version = agent.act_one(request.worker, sensors)
            except Exception as exc:  # this agent's failure, named; the others go on
                failures[name] = _failure(name, exc)
                continue
            answers[name] = [setpoints, objective, version]
            agent.batch_done(1, received)
        return msg.Acted(answers, failures)

    def _act(self, requests: list[msg.Act], received: float) -> list[msg.Acted]:
        answers: list[dict[str, list[Any]]] = [{} for _ in requests]
        failures: list[dict[str, list[str]]] = [{} for _ in requests]
        asked: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # agent -> (request index, sensors) to act on
        for i, request in enumerate(requests):
            done = (request.terminated, request.truncated)
            for name, (sensors, rewards) in request.agents.items():
                try:
                    agent = self._agent(name)
                    objective = agent.complete(request.worker, sensors, rewards, done, request.final)
                except Exception as exc:  # this agent's failure, named; the others go on
                    failures[i][name] = _failure(name, exc)
                    continue
                answers[i][name] = [{}, objective, None]
                if not request.final:
                    asked.setdefault(name, []).append((i, sensors))
        for name, items in asked.items():
            agent = self.agents[name]
            try:
                agent.take_weights()
                agent.keep_pace(len(items))
                chosen = agent.act_batch([(requests[i].worker, sensors) for i, sensors in items])
            except Exception as exc:
                failure = _failure(name, exc)
                for i, _ in items:
                    failures[i][name] = failure
                    answers[i].pop(name, None)
                continue
            for (i, _), (setpoints, version) in zip(items, chosen, strict=True):
                answers[i][name][0] = setpoints
                answers[i][name][2] = version
            agent.batch_done(len(items), received)
        return [msg.Acted(a, f) for a, f in zip(answers, failures, strict=True)]

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()


def set_up_brain(
    request: control.SetupAgent,
    sensors: list[SensorInfo],
    actuators: list[ActuatorInfo],
    sink: MetricSink | None,
    device: str | None,
) -> Brain:
    """The phase's brain, built, set up and loaded if the request says so (the saved
    folder checked against its recorded digest first): an agent process's, or a
    central agent's learner's (``device``: its ``learner.device``; None leaves the
    brain's own)."""
    brain: Brain = build(request.brain[0], request.brain[1], Brain, "brain")
    brain._arl_metric_sink = sink
    if device is not None:
        brain.device = device
    brain.setup(sensors, actuators, brain_seed(request.seed))
    if request.load_from is not None:
        path, sha256 = request.load_from
        directory = verify(Saved(path, sha256))  # before user code reads a byte of it
        brain.load(directory)
        log.info("agent %s loaded its brain from %s", request.name, directory)
    return brain


def _failure(name: str, exc: Exception) -> list[str]:
    log.debug("agent %s failed: %s", name, exc, exc_info=True)
    return [type(exc).__name__, str(exc), traceback.format_exc()]


def main(ctx: ChildContext) -> None:
    """Entry point of an ``arl[agent:...]`` process. Its metrics go to the run's store
    (``store`` in its spec) over a link of their own."""
    endpoint = ctx.spec.args.get("store")
    metrics = MetricLink(ctx.zmq, endpoint) if endpoint else None
    host = AgentHost(metrics, ctx.zmq)
    try:
        Service(ctx, host.handle, batcher=host).serve()
    finally:
        host.close()
        if metrics is not None:
            metrics.close()
