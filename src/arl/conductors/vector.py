"""Several copies of a worker's environments in one controller (``envs_per_worker``).

The controller runs one :class:`~arl.conductors.steploop.PhaseLoop` a copy, each a
worker of its own (its episodes, seeds, muscles and rows in the store), in lockstep:
:class:`VectorDriver` carries out every command that is not a question to the agents at
once (resets, steps of the copies' environments, one after another in this process,
the store's records), until every loop waits for its agents; then one
:class:`~arl.messages.agent.ActMany` a round goes to each agent process, carrying every
copy's readings, and an inference server runs its policy once on them all. A copy whose
episode ended resets while the others wait: the round trip is shared, never the
episodes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from arl.messages import agent as amsg
from arl.messages import control
from arl.messages.common import ErrorReply
from arl.status import Ending

from .links import Driver, RemotePeers, split_acted
from .service import agent_service
from .steploop import AskAgents, Command, Loop, Replies, Store

log = logging.getLogger("arl.controller")

_ABANDON_TURNS = 8  # commands a loop may still give while it stores a failure it was told of


class VectorAgents:
    """The agents of several loops of one controller: one ActMany per host a round."""

    def __init__(self, hosts: Mapping[str, str], peers: RemotePeers) -> None:
        self.hosts, self.peers = hosts, peers

    def ask(self, asks: Sequence[tuple[int, AskAgents]]) -> list[Replies]:
        """``asks``: (worker, its loop's question); the replies of each, in order."""
        parts: dict[str, list[tuple[int, int, dict[str, list[Any]], AskAgents]]] = {}
        for slot, (worker, command) in enumerate(asks):
            mine: dict[str, dict[str, list[Any]]] = {}
            for name, ask in command.asks.items():
                mine.setdefault(self.hosts[name], {})[name] = [ask.sensors, ask.rewards]
            for host, agents in mine.items():
                parts.setdefault(host, []).append((slot, worker, agents, command))
        requests = {
            host: amsg.ActMany(
                [worker for _, worker, _, _ in entries],
                [agents for _, _, agents, _ in entries],
                [c.terminated for _, _, _, c in entries],
                [c.truncated for _, _, _, c in entries],
                [c.final for _, _, _, c in entries],
            )
            for host, entries in parts.items()
        }
        self.peers.send(requests)
        replies, stopped = self.peers.collect(requests)
        got: list[dict[str, Any]] = [{} for _ in asks]
        for host, entries in parts.items():
            if host not in replies:
                continue
            reply = replies[host]
            for j, (slot, _, agents, _) in enumerate(entries):
                got[slot].update(_split(reply, j, len(entries), agents))
        return [Replies(g, stopped) for g in got]


def _split(reply: Any, j: int, count: int, agents: Mapping[str, Any]) -> dict[str, Any]:
    """The ``j``-th worker's part of an agent process's :class:`ActedMany`, by agent."""
    if isinstance(reply, amsg.ActedMany) and len(reply.answers) == len(reply.failures) == count:
        return split_acted(amsg.Acted(reply.answers[j], reply.failures[j]), agents)
    if isinstance(reply, ErrorReply):
        return {name: reply for name in agents}
    what = f"answered ActMany for {count} workers with {type(reply).__name__}"
    return {name: ErrorReply(agent_service(name), "ProtocolError", what, "") for name in agents}


class VectorDriver:
    """Runs several loops in lockstep (see the module's doc). ``drivers`` carry out each
    loop's other commands (its own environments; the store and learner links shared)."""

    def __init__(
        self,
        drivers: Sequence[Driver],
        workers: Sequence[int],
        agents: VectorAgents,
        pause: tuple[Callable[[], bool], Callable[[], bool]] | None = None,
        boundary: Callable[[int], None] | None = None,
    ) -> None:
        self.drivers, self.workers, self.agents = list(drivers), list(workers), agents
        # (asked, hold): a pause holds once every running copy is at a step boundary.
        self.pause = pause
        self.boundary = boundary  # called with a copy's index at each of its step boundaries

    def run(self, loops: Sequence[Loop]) -> list[control.PhaseDone]:
        done: dict[int, control.PhaseDone] = {}
        waiting: dict[int, Command] = {}  # each running loop's next command
        parked: dict[int, Any] = {}  # copies at a step boundary while a pause is asked: their answer
        try:
            for i in range(len(loops)):
                self._advance(loops, i, waiting, done, None, None)
            while waiting:
                pausing = self.pause is not None and self.pause[0]()
                if parked and (not pausing or len(parked) == len(waiting)):
                    # Every running copy is at a step boundary: hold there (or the pause was
                    # called off); then they all go on.
                    stop = self.pause[1]() if pausing and self.pause is not None else False
                    for i, answer in list(parked.items()):
                        del parked[i]
                        self._advance(loops, i, waiting, done, answer or stop, None)
                for i in sorted(waiting):
                    while i in waiting and i not in parked and not isinstance(waiting[i], AskAgents):
                        command = waiting[i]
                        answer, failure = self._execute(i, command)
                        at_boundary = isinstance(command, Store) and command.boundary
                        if at_boundary and self.boundary is not None:
                            self.boundary(i)
                        if pausing and at_boundary and failure is None and not answer:
                            parked[i] = answer
                            break
                        self._advance(loops, i, waiting, done, answer, failure)
                asks = sorted((i, c) for i, c in waiting.items() if isinstance(c, AskAgents) and i not in parked)
                if not asks:
                    continue
                replies: list[Replies | None]
                failures: list[Exception | None]
                try:
                    replies = list(self.agents.ask([(self.workers[i], c) for i, c in asks]))
                    failures = [None] * len(asks)
                except Exception as exc:  # the link's failure is every asking loop's
                    replies, failures = [None] * len(asks), [exc] * len(asks)
                for (i, _), reply, failure in zip(asks, replies, failures, strict=True):
                    self._advance(loops, i, waiting, done, reply, failure)
        except Exception as exc:
            self._abandon(loops, waiting, exc)
            raise
        return [done[i] for i in range(len(loops))]

    def _execute(self, i: int, command: Command) -> tuple[Any, Exception | None]:
        try:
            return self.drivers[i].execute(command), None
        except Exception as exc:
            return None, exc

    @staticmethod
    def _advance(
        loops: Sequence[Loop],
        i: int,
        waiting: dict[int, Command],
        done: dict[int, control.PhaseDone],
        answer: Any,
        failure: Exception | None,
    ) -> None:
        loop = loops[i]
        try:
            if failure is not None:
                waiting[i] = loop.throw(failure)
            elif i in waiting:
                waiting[i] = loop.send(answer)
            else:
                waiting[i] = next(loop)
        except StopIteration as end:
            waiting.pop(i, None)
            done[i] = end.value

    def _abandon(self, loops: Sequence[Loop], waiting: dict[int, Command], exc: Exception) -> None:
        """One loop failed: the others end their episodes ``failed`` too, storing what
        completed (each stores and re-raises what it is told), before the failure goes on."""
        for i, command in list(waiting.items()):
            loop = loops[i]
            try:
                command = loop.throw(exc)
                for _ in range(_ABANDON_TURNS):
                    answer, failure = self._execute(i, command)
                    command = loop.send(answer) if failure is None else loop.throw(failure)
            except StopIteration:
                pass
            except Exception as raised:  # the failure it was told of, re-raised: reported once, by the caller
                log.debug("worker %d ended its episode after a copy's failure: %s", self.workers[i], raised)
            finally:
                loop.close()


def merged(worker: int, dones: Sequence[control.PhaseDone]) -> control.PhaseDone:
    """One controller's :class:`~arl.messages.control.PhaseDone` for all its copies:
    counts and returns added up; interrupted if a copy was, else the first condition's
    reason; it ends the run if a copy's condition did."""
    reasons = [d.reason for d in dones if d.reason != Ending.EPISODES]
    reason = Ending.INTERRUPTED if Ending.INTERRUPTED in reasons else (reasons[0] if reasons else Ending.EPISODES)
    returns: dict[str, list[float]] = {}
    experiences: dict[str, int] = {}
    for d in dones:
        for name, values in d.returns.items():
            returns.setdefault(name, []).extend(values)
        for name, count in (d.experiences or {}).items():
            experiences[name] = experiences.get(name, 0) + count
    return control.PhaseDone(
        dones[0].phase, worker, sum(d.episodes for d in dones), sum(d.steps for d in dones), reason,
        any(d.ends_run for d in dones), returns, experiences if any(d.experiences is not None for d in dones) else None,
    )  # fmt: skip
