"""The step loop of one worker's phase, as a pure object: answers in, commands out.

:meth:`PhaseLoop.run` is a generator. It yields a :data:`Command` and is sent the
command's answer:

* :class:`ResetEnvironments`, :class:`StepEnvironments`, :class:`AskAgents` are
  answered with :class:`Replies` (keyed by environment uid or agent name);
* :class:`Store` (the records to store, in order) is answered with whether the parent
  asked to stop.

When the generator ends it returns the phase's :class:`~arl.messages.control.PhaseDone`.
There is no socket, process or clock in here (the clocks are injected), so the whole
logic of a phase, including stops and failures, is tested by sending answers
(tests/unit/test_steploop.py); a :class:`~arl.conductors.links.Driver` executes the
commands over links that are local (a call in this process) or remote (ZeroMQ).

A step is one *turn*: the agents of the turn act on the same readings, then every
environment of the worker steps with their setpoints. Each agent's action is stored
once its rewards and objective are known: the rewards come from the environment step
after it, the objective from the agent's next answer (see :mod:`arl.messages.agent`).
Records are handed out every step (the store link sends them at the first step that
ends 10 ms after its last send, and at once at an episode's start and end and on a
failure), and every answer that arrives
is used: an action an agent's answer completes is stored even when the run stops
before the others answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from arl import codec
from arl import time as arl_time
from arl.classref import build
from arl.conditions import PhaseSummary, PhaseView, RunView, StepView, TerminationCondition
from arl.errors import ComponentCrashed, ProtocolError
from arl.messages import control, store
from arl.messages import environment as emsg
from arl.messages.common import ErrorReply, raise_failures
from arl.seeding import episode_seed
from arl.simulation import Simulation
from arl.spacecheck import SetpointError, about
from arl.status import Ending

# ---- what the loop asks for ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ask:
    """One agent's part of a turn: its sensors, and the rewards since its last action
    (None on its first action of an episode)."""

    sensors: dict[str, Any]
    rewards: dict[str, float] | None


@dataclass(frozen=True, slots=True)
class Answer:
    """One agent's answer: its setpoints, the objective of its previous action, and the
    version of the policy that chose the setpoints (None: the muscle gave none)."""

    setpoints: dict[str, Any]
    objective: float | None
    policy_version: int | None = None


@dataclass(frozen=True, slots=True)
class ResetEnvironments:
    seeds: dict[str, int]  # env uid -> the episode's seed


@dataclass(frozen=True, slots=True)
class AskAgents:
    asks: dict[str, Ask]  # agent name -> its part
    terminated: bool
    truncated: bool
    final: bool  # the episode's last call: complete the open actions, act no more


@dataclass(frozen=True, slots=True)
class StepEnvironments:
    setpoints: dict[str, dict[str, Any]]  # env uid -> its setpoints (qualified ids)


@dataclass(frozen=True, slots=True)
class Store:
    records: list[Any]  # store messages, in the order they happened
    flush: bool = False  # send them now (else they may wait for a few more steps' records)
    # central agent -> its completed transitions, for its learner (messages.learner.EXPERIENCE_FIELDS)
    experiences: dict[str, list[list[Any]]] | None = None
    # After a whole step, before the episode's end is decided: the one point where the loop
    # can pause, save its state (PhaseLoop.state) and later go on from it (RunPhase.state).
    boundary: bool = False


Command = ResetEnvironments | AskAgents | StepEnvironments | Store


@dataclass(frozen=True, slots=True)
class Replies:
    """The answers of one round. ``got`` holds an :class:`Answer`, an environment reply or
    an :class:`~arl.messages.common.ErrorReply` for each peer that answered. ``stopped``:
    the parent asked to stop during the wait; a peer missing from ``got`` then let the
    grace pass without answering (it is dead, or too slow to be waited for)."""

    got: dict[str, Any]
    stopped: bool = False


# ---- the loop ------------------------------------------------------------------------


@dataclass
class _Pending:
    inputs: dict[str, Any]
    setpoints: dict[str, Any]
    rewards: dict[str, float]
    step: int
    policy_version: int | None = None


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


Loop = Generator[Command, Any, control.PhaseDone]


class PhaseLoop:
    """One phase on one worker. ``clock`` measures elapsed time (for the conditions),
    ``wall`` stamps the records; ``store_steps=False`` stores no steps and actions."""

    def __init__(
        self,
        request: control.RunPhase,
        *,
        store_steps: bool = True,
        clock: Callable[[], float] = arl_time.monotonic,
        wall: Callable[[], float] = time.time,
        sim: Callable[[], float] = arl_time.time,
    ) -> None:
        self.request = request
        self.store_steps = store_steps
        # clock: elapsed time for the conditions (the run's scaled clock, still while paused);
        # wall: the records' times; sim: the scaled time stored with each step.
        self.clock, self.wall, self.sim = clock, wall, sim
        self.sensors = {name: tuple(ids[0]) for name, ids in request.agents.items()}
        # Each actuator's environment, once: setpoints are routed by it every step.
        self.env_of = {aid: aid.partition(".")[0] for ids in request.agents.values() for aid in ids[1]}
        self.envs = list(request.environments)
        entry, params = request.simulation
        self.simulation: Simulation = build(entry, params, Simulation, "simulation")
        self.simulation.setup(list(request.agents))
        role = "termination condition"
        conditions: list[TerminationCondition] = [
            build(e, p, TerminationCondition, role) for e, p in request.conditions
        ]
        self.conditions = conditions
        self.episode_conditions = [c for c in conditions if "episode_over" in c.answers()]
        self.phase_conditions = [c for c in conditions if "phase_over" in c.answers()]
        self.run_conditions: list[TerminationCondition] = [
            build(e, p, TerminationCondition, role) for e, p in request.run_conditions
        ]
        self.history = tuple(PhaseSummary(**summary) for summary in request.history)
        self.steps = request.steps_before  # (a restarted worker's count goes on)
        self.episodes = request.episodes_before
        self.returns: dict[str, list[float]] = {name: [] for name in request.agents}
        self.started = clock()
        self.ending: tuple[str, bool] | None = None  # (reason, ends the run) once a condition fired
        self.silent: set[str] = set()  # agents that let a stop pass unanswered: never asked again
        self._records: list[Any] = []
        # Central agents learn in a learner process: their transitions go to it from here.
        self.learners = frozenset(request.learners or ())
        self._experiences: dict[str, list[list[Any]]] = {}
        self.sent = dict.fromkeys(self.learners, 0)  # transitions handed out, by agent
        self._valid_actors: set[tuple[str, ...]] = set()  # choices of the simulation already checked
        self.current: _Episode | None = None  # the episode in progress
        self._resume: _Episode | None = None  # the episode a snapshot was taken in (RunPhase.state)
        self._last: int | None = None  # and the index of the last episode the worker was to run
        self.finished: control.PhaseDone | None = None  # once the loop has ended

    def run(self) -> Loop:
        if self.finished is not None:  # (restored from a snapshot taken after this loop had ended)
            return self.finished
        request = self.request
        reason: str = Ending.EPISODES
        ends_run = False
        last = request.first_episode + request.episodes - 1  # a restarted worker goes on from its first
        if self._last is not None:  # (resumed from a snapshot: the episodes it was to run)
            last = self._last
        elif request.episodes_before or request.steps_before:
            # A restarted worker whose counts already meet a phase condition (its share of
            # max_environment_steps, say) runs no further episode.
            self._phase_or_run_over()
            if self.ending is not None:
                last = request.first_episode - 1
                reason, ends_run = self.ending
        first = request.first_episode if self._resume is None else self._resume.index
        for index in range(first, last + 1):
            resumed, self._resume = self._resume, None
            episode = resumed or _Episode(request.phase, request.worker, index)
            ended = yield from self._episode(episode, resumed=resumed is not None)
            if ended == Ending.INTERRUPTED:
                reason = Ending.INTERRUPTED
                break
            self.episodes += 1
            for name, returns in self.returns.items():
                returns.append(episode.returns.get(name, 0.0))
            if self.ending is None and index < last:
                self._phase_or_run_over()
            if self.ending is not None:
                reason, ends_run = self.ending
                break
        self.finished = control.PhaseDone(
            request.phase, request.worker, self.episodes, self.steps, reason, ends_run, self.returns,
            self.sent if self.learners else None,
        )  # fmt: skip
        return self.finished

    def _store(self, *, flush: bool = False, boundary: bool = False) -> Store:
        records, self._records = self._records, []
        experiences, self._experiences = self._experiences or None, {}
        return Store(records, flush, experiences, boundary)

    def _phase_or_run_over(self) -> str | None:
        """Ask the phase and run conditions; remember the first that fires."""
        if not (self.phase_conditions or self.run_conditions):
            return None
        phase = PhaseView(
            self.request.phase_name, self.request.worker, self.episodes, self.steps,
            self.clock() - self.started, self.returns, self.request.workers,
        )  # fmt: skip
        for condition in self.phase_conditions:
            reason = condition.phase_over(phase)
            if reason is not None:
                self.ending = (reason, False)
                return reason
        if self.run_conditions:
            run = RunView(self.wall() - self.request.run_started, self.history, phase)
            for condition in self.run_conditions:
                reason = condition.run_over(run)
                if reason is not None:
                    self.ending = (reason, True)
                    return reason
        return None

    def _episode(self, ep: _Episode, *, resumed: bool = False) -> Generator[Command, Any, str]:
        self.current = ep
        stopped = False
        if not resumed:  # (a resumed episode's start is stored already)
            self._records.append(store.EpisodeStarted(ep.phase, ep.worker, ep.index, self.wall()))
        try:
            if not resumed:
                # Stored at once: a live query sees the episode begin, not only its first step.
                stopped = yield self._store(flush=True)
            reason = Ending.INTERRUPTED if stopped else (yield from self._steps(ep, resumed=resumed))
            if not (yield from self._finish(ep)):
                reason = Ending.INTERRUPTED
        except Exception:
            # What completed is stored, and the episode says why it ended; the run fails.
            self._records.append(store.EpisodeEnded(ep.phase, ep.worker, ep.index, ep.step, Ending.FAILED, self.wall()))
            yield self._store(flush=True)
            raise
        self._records.append(store.EpisodeEnded(ep.phase, ep.worker, ep.index, ep.step, reason, self.wall()))
        yield self._store(flush=True)
        return reason

    def _steps(self, ep: _Episode, *, resumed: bool = False) -> Generator[Command, Any, str]:
        """Reset, then step until the episode is over; "interrupted" if asked to stop.
        ``resumed``: the episode goes on from a snapshot taken at a step boundary."""
        if not resumed:
            seeds = {uid: episode_seed(self.request.seed, ep.index, uid) for uid in self.envs}
            replies: Replies = yield ResetEnvironments(seeds)
            raise_failures(replies.got)
            if len(replies.got) < len(self.envs):
                return Ending.INTERRUPTED
            for uid in self.envs:
                ep.sensors.update(replies.got[uid].sensors)
        while True:
            if not resumed:
                if not (yield from self._step(ep, self._actors(ep))):
                    return Ending.INTERRUPTED
                if (yield self._store(boundary=True)):
                    return Ending.INTERRUPTED
            resumed = False
            reason = self._episode_over(ep)
            if reason is not None:
                return reason

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

    def _ask(self, ep: _Episode, names: Sequence[str], *, final: bool) -> AskAgents:
        sensors = ep.sensors
        asks = {}
        for name in names:
            pending = ep.pending.get(name)
            readings = {k: sensors[k] for k in self.sensors[name] if k in sensors}
            asks[name] = Ask(readings, pending.rewards if pending is not None else None)
        return AskAgents(asks, ep.terminated, ep.truncated, final)

    def _answered(self, ep: _Episode, ask: AskAgents, replies: Replies) -> dict[str, Answer]:
        """Store the previous actions of every agent that answered, then raise a failure.
        After a stop, the agents that did not answer go silent."""
        answers = {}
        for name in ask.asks:
            reply = replies.got.get(name)
            if isinstance(reply, Answer):
                self._complete(ep, name, reply.objective, ask)
                answers[name] = reply
            elif reply is None and replies.stopped:
                self.silent.add(name)
        raise_failures(replies.got)
        return answers

    def _step(self, ep: _Episode, names: Sequence[str]) -> Generator[Command, Any, bool]:
        """One turn; False if a stop cut it short (nothing of it is then applied)."""
        ask = self._ask(ep, names, final=False)
        replies: Replies = yield ask
        answers = self._answered(ep, ask, replies)
        if replies.stopped:
            return False  # the new setpoints are never applied, so never stored
        setpoints: dict[str, dict[str, Any]] = {uid: {} for uid in self.envs}
        for answer in answers.values():
            for aid, value in answer.setpoints.items():
                setpoints[self.env_of.get(aid) or aid.partition(".")[0]][aid] = value
        stepped: Replies = yield StepEnvironments(setpoints)
        _blame_setter(stepped.got, answers)
        raise_failures(stepped.got)
        if len(stepped.got) < len(self.envs):
            return False  # a step an environment left unanswered is stored for none of them
        ep.step += 1
        self.steps += 1
        rewards: dict[str, float] = {}
        terminated = truncated = False
        sim = self.sim() if self.store_steps else None
        for uid in self.envs:
            result: emsg.Stepped = stepped.got[uid]
            if self.store_steps:
                self._records.append(
                    store.EnvironmentStep(
                        ep.phase, ep.worker, ep.index, ep.step, uid,
                        result.sensors, result.rewards, result.terminated, result.truncated, sim, result.info,
                    )
                )  # fmt: skip
            ep.sensors.update(result.sensors)
            rewards.update(result.rewards)
            terminated |= result.terminated
            truncated |= result.truncated
        ep.rewards, ep.terminated, ep.truncated = rewards, terminated, truncated
        # Only agents that sat this step out have a transition open now (the others'
        # were completed by _answered): they feel its rewards too (the opponent's winning
        # move, say), added up until they act again. A copy: acting agents share `rewards`.
        for pending in ep.pending.values():
            summed = dict(pending.rewards)
            for key, value in rewards.items():
                summed[key] = summed.get(key, 0.0) + value
            pending.rewards = summed
        for name in names:
            answer = answers[name]
            ep.pending[name] = _Pending(
                ask.asks[name].sensors, answer.setpoints, rewards, ep.step, answer.policy_version
            )
        return True

    def _complete(self, ep: _Episode, name: str, objective: float | None, ask: AskAgents) -> None:
        """Store the agent's previous action now that its objective is known (and hand a
        central agent's transition out for its learner)."""
        pending = ep.pending.pop(name, None)
        if pending is None:
            return
        if objective is None:
            raise ProtocolError(f"agent {name} returned no objective for its previous action")
        ep.returns[name] = ep.returns.get(name, 0.0) + objective
        if name in self.learners:
            terminated, truncated = ask.terminated, ask.truncated
            if ask.final and not terminated:
                truncated = True  # the episode's last transition, cut: the learner must know
            self._experiences.setdefault(name, []).append(
                [
                    ep.worker, pending.inputs, pending.setpoints, pending.rewards, objective,
                    ask.asks[name].sensors, terminated, truncated, pending.policy_version,
                ]
            )  # fmt: skip
            self.sent[name] += 1
        if self.store_steps:
            self._records.append(
                store.AgentAction(
                    ep.phase, ep.worker, ep.index, pending.step, name,
                    pending.inputs, pending.setpoints, pending.rewards, objective, pending.policy_version,
                )
            )  # fmt: skip

    def _finish(self, ep: _Episode) -> Generator[Command, Any, bool]:
        """The final call of an episode: every agent with an open action completes it,
        after a stop too. False if an agent did not answer (its open action is lost).

        An agent that already let a stop pass unanswered is not asked: it is dead, or
        its late answer to that call would be taken for this one's.
        """
        names = [name for name in self.sensors if name in ep.pending and name not in self.silent]
        if names:
            ask = self._ask(ep, names, final=True)
            replies: Replies = yield ask
            self._answered(ep, ask, replies)
        return not any(name in self.silent for name in ep.pending)

    def _episode_over(self, ep: _Episode) -> str | None:
        if self.request.max_steps is not None and ep.step >= self.request.max_steps:
            return Ending.MAX_STEPS
        if self.episode_conditions:
            view = StepView(ep.step, ep.terminated, ep.truncated, ep.rewards, ep.index)
            for condition in self.episode_conditions:
                reason = condition.episode_over(view)
                if reason is not None:
                    return reason
        return self._phase_or_run_over()

    # ---- state at a step boundary (snapshots) ------------------------------------------

    def state(self) -> dict[str, Any]:
        """What the loop holds at a step boundary (a :class:`Store` with ``boundary``):
        with the components' own state, enough to go on from there exactly."""
        if self.finished is not None:  # (a copy of envs_per_worker that ended before the others)
            return {"finished": codec.encode(self.finished)}
        ep = self.current
        if ep is None or self._records or self._experiences:
            raise RuntimeError("a phase loop's state is taken at a step boundary only")
        return {
            "last": self.request.first_episode + self.request.episodes - 1 if self._last is None else self._last,
            "steps": self.steps,
            "episodes": self.episodes,
            "returns": self.returns,
            "elapsed": self.clock() - self.started,
            "ending": list(self.ending) if self.ending is not None else None,
            "silent": sorted(self.silent),
            "sent": self.sent,
            "episode": {
                "index": ep.index,
                "step": ep.step,
                "sensors": ep.sensors,
                "rewards": ep.rewards,
                "terminated": ep.terminated,
                "truncated": ep.truncated,
                "returns": ep.returns,
                "pending": {
                    name: [p.inputs, p.setpoints, p.rewards, p.step, p.policy_version] for name, p in ep.pending.items()
                },
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Go on from :meth:`state` (before :meth:`run`): the episode in progress then is
        continued, not started again (a loop that had ended ends at once, as it did)."""
        if "finished" in state:
            self.finished = codec.decode(state["finished"])
            return
        self.steps, self.episodes = int(state["steps"]), int(state["episodes"])
        self._last = int(state["last"])
        self.returns = {name: list(values) for name, values in state["returns"].items()}
        self.started = self.clock() - float(state["elapsed"])
        ending = state["ending"]
        self.ending = (str(ending[0]), bool(ending[1])) if ending else None
        self.silent = set(state["silent"])
        self.sent = {name: int(count) for name, count in state["sent"].items()}
        e = state["episode"]
        ep = _Episode(self.request.phase, self.request.worker, int(e["index"]), int(e["step"]))
        ep.sensors, ep.rewards, ep.returns = dict(e["sensors"]), dict(e["rewards"]), dict(e["returns"])
        ep.terminated, ep.truncated = bool(e["terminated"]), bool(e["truncated"])
        ep.pending = {
            name: _Pending(inputs, setpoints, rewards, int(step), version)
            for name, (inputs, setpoints, rewards, step, version) in e["pending"].items()
        }
        self._resume = ep

    def components(self) -> dict[str, Any]:
        """The loop's own components with state of their own, by folder name."""
        parts: dict[str, Any] = {"simulation": self.simulation}
        parts.update({f"condition.{i}": c for i, c in enumerate(self.conditions)})
        parts.update({f"run-condition.{i}": c for i, c in enumerate(self.run_conditions)})
        return parts


def _blame_setter(got: dict[str, Any], answers: dict[str, Answer]) -> None:
    """A setpoint outside its actuator's space (the environment's host refused the step)
    fails the agent that set it, by name; other failures are left to ``raise_failures``."""
    for reply in got.values():
        if isinstance(reply, ErrorReply) and reply.kind == SetpointError.__name__:
            for name, answer in answers.items():
                if any(about(reply.message, actuator) for actuator in answer.setpoints):
                    raise ComponentCrashed(f"agent.{name}", reply.kind, reply.message, reply.traceback)
