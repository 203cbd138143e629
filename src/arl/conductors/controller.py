"""SimulationController: drives the step loop of one worker for a phase.

A step is one *turn*: the agents of the turn act on the same readings, then every
environment of the worker steps with their setpoints. ``vanilla`` has one turn with all
agents; ``taking_turns`` has one turn per agent, in the file's order.

Each agent's action is stored once its rewards and objective are known: the rewards
come from the environment step after it, the objective from the agent's next call
(see :mod:`arl.messages.agent`). Records go to the StoreWriter as they happen, so a
crash loses no completed step, and every reply that arrives is used: an action an
agent's answer completes is stored even when the run stops before the others answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import zmq

from arl.classref import build
from arl.codec import MAX_FRAME_BYTES, decode, encode
from arl.conditions import PhaseSummary, PhaseView, RunView, StepView, TerminationCondition
from arl.errors import ArlError, ProtocolError
from arl.messages import agent as amsg
from arl.messages import control, store
from arl.messages import environment as emsg
from arl.messages.common import ErrorReply, raise_failures
from arl.proc.child import ChildContext
from arl.seeding import derive_seed
from arl.simulation import Simulation
from arl.transport import limit_input

from .service import Service, agent_service, env_service

log = logging.getLogger("arl.controller")


class Interrupted(Exception):
    """The parent asked to stop while waiting for replies; ``replies`` are those that came."""

    def __init__(self, replies: dict[str, Any]) -> None:
        super().__init__("stopped while waiting for replies")
        self.replies = replies


@dataclass
class _Pending:
    inputs: dict[str, Any]
    setpoints: dict[str, Any]
    rewards: dict[str, float]
    step: int


@dataclass
class _Episode:
    phase: int
    worker: int
    index: int
    step: int = 0
    sensors: dict[str, Any] = field(default_factory=dict)
    rewards: dict[str, float] = field(default_factory=dict)
    terminated: bool = False
    truncated: bool = False
    pending: dict[str, _Pending] = field(default_factory=dict)
    returns: dict[str, float] = field(default_factory=dict)  # agent -> sum of its objective values


REPLY_GRACE = 1.0  # seconds a live peer gets to answer after a stop, so that its answer is stored


class Links:
    """Direct DEALER links to the conductors, and the PUSH link to the store."""

    def __init__(
        self, service: Service, endpoints: dict[str, str], store_endpoint: str, *, store_steps: bool = True
    ) -> None:
        self._service = service
        self.store_steps = store_steps  # False: environment steps and agent actions are not stored
        ctx = service.ctx.zmq
        self.peers: dict[str, zmq.Socket[Any]] = {}
        self.silent: set[str] = set()  # peers that did not answer before a stop: never asked again
        for name, endpoint in endpoints.items():
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            limit_input(sock)
            sock.connect(endpoint)
            self.peers[name] = sock
        self.store = ctx.socket(zmq.PUSH)
        # Records must reach the writer even as this process exits; the governor waits.
        self.store.setsockopt(zmq.LINGER, 5000)
        # A writer that stopped taking records must not block the step loop for ever.
        self.store.setsockopt(zmq.SNDTIMEO, 5000)
        self.store.connect(store_endpoint)
        self._outbox: list[bytes] = []
        self._poller = zmq.Poller()
        for sock in self.peers.values():
            self._poller.register(sock, zmq.POLLIN)

    def record(self, rec: Any) -> None:
        """Queue a record; :meth:`send_records` sends the queue as one message."""
        data = encode(rec)
        if len(data) > MAX_FRAME_BYTES:  # the writer's socket would refuse it without a word
            raise ProtocolError(f"a {type(rec).__name__} record is {len(data):,} bytes, over the limit")
        self._outbox.append(data)

    def send_records(self) -> None:
        """One message a step: a ZeroMQ send costs more than the encoding of a record."""
        if self._outbox:
            outbox, self._outbox = self._outbox, []  # a failed send is not tried again on the way out
            try:
                self.store.send_multipart(outbox)
            except zmq.Again:
                raise ArlError("the store writer has taken no records for 5 s") from None

    def call_all(self, requests: dict[str, Any], *, grace: float = REPLY_GRACE) -> dict[str, Any]:
        """Send every request at once, then collect every reply (they run in parallel).

        Every reply is collected before a failure is raised, so the caller can store
        what the peers that did answer completed (see :func:`raise_failures`); a reply
        that cannot be read counts as that peer's failure. When the parent asks to
        stop, replies are still awaited for ``grace`` seconds (a peer that is alive
        answers well within it; a dead one never does), then :class:`Interrupted` is
        raised with the replies that did come; the peers still silent join ``silent``.
        """
        for name, request in requests.items():
            data = encode(request)
            if len(data) > MAX_FRAME_BYTES:
                raise ProtocolError(f"a {type(request).__name__} for {name} is {len(data):,} bytes, over the limit")
            self.peers[name].send(data)
        replies: dict[str, Any] = {}
        waiting = {self.peers[name]: name for name in requests}
        give_up = None
        while waiting:
            for sock, _ in self._poller.poll(50):
                if sock in waiting:
                    name = waiting.pop(sock)
                    try:
                        replies[name] = decode(sock.recv())
                    except ProtocolError as exc:
                        replies[name] = ErrorReply(name, "ProtocolError", f"its reply cannot be read: {exc}", "")
            if waiting and self._service.pulse():
                give_up = give_up or time.monotonic() + grace
                if time.monotonic() >= give_up:
                    self.silent.update(waiting.values())
                    raise Interrupted(replies)
        return replies

    def close(self) -> None:
        for sock in self.peers.values():
            sock.close()
        self.store.close()


class PhaseRunner:
    """Runs one phase on one worker over its :class:`Links`."""

    def __init__(self, request: control.RunPhase, links: Links, service: Service) -> None:
        self.request = request
        self.links = links
        self.service = service
        self.sensors = {name: tuple(ids[0]) for name, ids in request.agents.items()}
        # Each actuator's environment, once: setpoints are routed by it every step.
        self.env_of = {aid: aid.partition(".")[0] for ids in request.agents.values() for aid in ids[1]}
        self.services = {name: agent_service(name) for name in request.agents}
        entry, params = request.simulation
        self.simulation: Simulation = build(entry, params, Simulation, "simulation")
        self.simulation.setup(list(request.agents))
        role = "termination condition"
        conditions: list[TerminationCondition] = [
            build(e, p, TerminationCondition, role) for e, p in request.conditions
        ]
        self.episode_conditions = [c for c in conditions if "episode_over" in c.answers()]
        self.phase_conditions = [c for c in conditions if "phase_over" in c.answers()]
        self.run_conditions: list[TerminationCondition] = [
            build(e, p, TerminationCondition, role) for e, p in request.run_conditions
        ]
        self.history = tuple(PhaseSummary(**summary) for summary in request.history)
        self.envs = {uid: env_service(uid, request.worker) for uid in request.environments}
        self.steps = 0
        self.episodes = 0
        self.returns: dict[str, list[float]] = {name: [] for name in request.agents}
        self.started = time.monotonic()
        self.ending: tuple[str, bool] | None = None  # (reason, ends the run) once a condition fired
        self._valid_actors: set[tuple[str, ...]] = set()  # choices of the simulation already checked

    def run(self) -> control.PhaseDone:
        request = self.request
        reason, ends_run = "episodes", False
        for index in range(request.episodes):
            episode = _Episode(request.phase, request.worker, index)
            ended = self._episode(episode)
            if ended == "interrupted":
                reason = "interrupted"
                break
            self.episodes += 1
            for name, returns in self.returns.items():
                returns.append(episode.returns.get(name, 0.0))
            if self.ending is None and index + 1 < request.episodes:
                self._phase_or_run_over()
            if self.ending is not None:
                reason, ends_run = self.ending
                break
        return control.PhaseDone(
            request.phase, request.worker, self.episodes, self.steps, reason, ends_run, self.returns
        )

    def _phase_or_run_over(self) -> str | None:
        """Ask the phase and run conditions; remember the first that fires."""
        if not (self.phase_conditions or self.run_conditions):
            return None
        phase = PhaseView(
            self.request.phase_name, self.request.worker, self.episodes, self.steps,
            time.monotonic() - self.started, self.returns,
        )  # fmt: skip
        for condition in self.phase_conditions:
            reason = condition.phase_over(phase)
            if reason is not None:
                self.ending = (reason, False)
                return reason
        if self.run_conditions:
            run = RunView(time.time() - self.request.run_started, self.history, phase)
            for condition in self.run_conditions:
                reason = condition.run_over(run)
                if reason is not None:
                    self.ending = (reason, True)
                    return reason
        return None

    def _episode(self, ep: _Episode) -> str:
        links = self.links
        links.record(store.EpisodeStarted(ep.phase, ep.worker, ep.index, time.time()))
        links.send_records()  # a live query sees the episode begin, not only its first step
        try:
            reason = self._steps(ep)
            if not self._finish(ep):
                reason = "interrupted"
        except Exception:
            # What completed is stored, and the episode says why it ended; the run fails.
            links.record(store.EpisodeEnded(ep.phase, ep.worker, ep.index, ep.step, "failed", time.time()))
            links.send_records()
            raise
        links.record(store.EpisodeEnded(ep.phase, ep.worker, ep.index, ep.step, reason, time.time()))
        links.send_records()
        return reason

    def _steps(self, ep: _Episode) -> str:
        """Reset, then step until the episode is over; "interrupted" if asked to stop."""
        try:
            self._reset(ep)
            reason = None
            while reason is None:
                if self.service.pulse():
                    return "interrupted"
                self._step(ep, self._actors(ep))
                self.links.send_records()
                reason = self._episode_over(ep)
            return reason
        except Interrupted:
            return "interrupted"

    def _actors(self, ep: _Episode) -> tuple[str, ...]:
        actors = tuple(self.simulation.actors(ep.step, ep.index))
        if actors not in self._valid_actors:  # a simulation makes few distinct choices: check each once
            if not actors or not set(actors) <= self.sensors.keys():
                raise ValueError(
                    f"{type(self.simulation).__name__}.actors({ep.step}, {ep.index}) returned {list(actors)!r}: "
                    f"it must name one or more of the agents {list(self.sensors)}"
                )
            self._valid_actors.add(actors)
        return actors

    def _reset(self, ep: _Episode) -> None:
        seed = self.request.seed
        replies = self.links.call_all(
            {svc: emsg.Reset(derive_seed(seed, "episode", ep.index, uid)) for uid, svc in self.envs.items()}, grace=0
        )  # nothing to store from a reset: no need to wait for it
        raise_failures(replies)
        for reply in replies.values():
            ep.sensors.update(reply.sensors)

    def _act_requests(self, ep: _Episode, names: Sequence[str], *, final: bool) -> dict[str, amsg.Act]:
        requests = {}
        sensors = ep.sensors
        for name in names:
            pending = ep.pending.get(name)
            requests[self.services[name]] = amsg.Act(
                ep.worker,
                {k: sensors[k] for k in self.sensors[name] if k in sensors},
                pending.rewards if pending is not None else None,
                ep.terminated,
                ep.truncated,
                final,
            )
        return requests

    def _acted(self, ep: _Episode, names: Sequence[str], replies: dict[str, Any]) -> dict[str, amsg.Acted]:
        """Store the previous actions of every agent that answered, then raise a failure."""
        acted = {}
        for name in names:
            reply = replies[self.services[name]]
            if isinstance(reply, amsg.Acted):
                self._complete(ep, name, reply.objective)
                acted[name] = reply
            elif not isinstance(reply, ErrorReply):
                raise ProtocolError(f"agent {name} answered Act with {type(reply).__name__}")
        raise_failures(replies)
        return acted

    def _call_agents(self, ep: _Episode, names: Sequence[str], requests: dict[str, amsg.Act]) -> dict[str, amsg.Acted]:
        """Ask the agents, and store every previous action an answer completes, even those
        that came before a stop cut the round short; then raise a failure or the stop."""
        try:
            replies = self.links.call_all(requests)
        except Interrupted as stop:
            self._acted(ep, [name for name in names if self.services[name] in stop.replies], stop.replies)
            raise
        return self._acted(ep, names, replies)

    def _step(self, ep: _Episode, names: Sequence[str]) -> None:
        requests = self._act_requests(ep, names, final=False)
        acted = self._call_agents(ep, names, requests)
        if self.service.pulse():
            raise Interrupted({})  # the new setpoints are never applied, so never stored
        setpoints: dict[str, dict[str, Any]] = {uid: {} for uid in self.envs}
        for reply in acted.values():
            for aid, value in reply.setpoints.items():
                setpoints[self.env_of.get(aid) or aid.partition(".")[0]][aid] = value
        stepped = self.links.call_all({svc: emsg.Step(setpoints[uid]) for uid, svc in self.envs.items()})
        raise_failures(stepped)
        ep.step += 1
        self.steps += 1
        rewards: dict[str, float] = {}
        terminated = truncated = False
        for uid, svc in self.envs.items():
            result: emsg.Stepped = stepped[svc]
            if self.links.store_steps:
                self.links.record(
                    store.EnvironmentStep(
                        ep.phase, ep.worker, ep.index, ep.step, uid,
                        result.sensors, result.rewards, result.terminated, result.truncated,
                    )
                )  # fmt: skip
            ep.sensors.update(result.sensors)
            rewards.update(result.rewards)
            terminated |= result.terminated
            truncated |= result.truncated
        ep.rewards, ep.terminated, ep.truncated = rewards, terminated, truncated
        # Only agents that sat this step out have a transition open now (the others'
        # were completed by _acted): they feel its rewards too (the opponent's winning
        # move, say), added up until they act again. A copy: acting agents share `rewards`.
        for pending in ep.pending.values():
            summed = dict(pending.rewards)
            for key, value in rewards.items():
                summed[key] = summed.get(key, 0.0) + value
            pending.rewards = summed
        for name in names:
            request = requests[self.services[name]]
            ep.pending[name] = _Pending(request.sensors, acted[name].setpoints, rewards, ep.step)

    def _complete(self, ep: _Episode, name: str, objective: float | None) -> None:
        """Store the agent's previous action now that its objective is known."""
        pending = ep.pending.pop(name, None)
        if pending is None:
            return
        if objective is None:
            raise ProtocolError(f"agent {name} returned no objective for its previous action")
        ep.returns[name] = ep.returns.get(name, 0.0) + objective
        if not self.links.store_steps:
            return
        self.links.record(
            store.AgentAction(
                ep.phase,
                ep.worker,
                ep.index,
                pending.step,
                name,
                pending.inputs,
                pending.setpoints,
                pending.rewards,
                objective,
            )
        )

    def _finish(self, ep: _Episode) -> bool:
        """The final call of an episode: every agent with an open action completes it,
        after a stop too. False if an agent did not answer (its open action is lost).

        An agent that already let a stop pass unanswered is not asked: it is dead, or
        its late reply to that call would be taken for this one's.
        """
        silent = self.links.silent
        names = [name for name in self.sensors if name in ep.pending and self.services[name] not in silent]
        if names:
            try:
                self._call_agents(ep, names, self._act_requests(ep, names, final=True))
            except Interrupted:
                return False
        return not any(self.services[name] in silent for name in ep.pending)

    def _episode_over(self, ep: _Episode) -> str | None:
        if self.request.max_steps is not None and ep.step >= self.request.max_steps:
            return "max_steps"
        if self.episode_conditions:
            view = StepView(ep.step, ep.terminated, ep.truncated, ep.rewards, ep.index)
            for condition in self.episode_conditions:
                reason = condition.episode_over(view)
                if reason is not None:
                    return reason
        return self._phase_or_run_over()


class SimulationController:
    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        self.service = Service(ctx, self.handle)

    def handle(self, message: Any) -> Any:
        if not isinstance(message, control.RunPhase):
            raise TypeError(f"a simulation controller cannot handle {type(message).__name__}")
        args = self.ctx.spec.args
        links = Links(self.service, message.endpoints, args["store"], store_steps=args.get("store_steps", True))
        try:
            done = PhaseRunner(message, links, self.service).run()
        finally:
            links.close()
        log.debug("worker %d ended phase %d: %s", message.worker, message.phase, done)
        return done


def main(ctx: ChildContext) -> None:
    """Entry point of an ``arl[controller:...]`` process."""
    SimulationController(ctx).service.serve()
