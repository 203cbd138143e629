"""How a controller carries out the step loop's commands: over links to environments
and agents that are local (a call in this process) or remote (a ZeroMQ DEALER to the
process that hosts them), and a PUSH link to the store.

:class:`Driver` runs a :class:`~arl.conductors.steploop.PhaseLoop`: it sends each
command to the links and the answer back into the loop. Remote requests of one round go
out to all their peers at once and the replies are collected together; local calls run
while the remote peers work. Either way a reply crosses the codec, so what the loop
and the store see does not depend on where a component runs (a local environment's
arrays are copies, not the environment's own buffers).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, assert_never

import zmq

from arl.codec import MAX_FRAME_BYTES, decode, encode
from arl.errors import ArlError, ProtocolError
from arl.messages import agent as amsg
from arl.messages import environment as emsg
from arl.messages import store
from arl.messages.common import ErrorReply
from arl.messages.learner import Experiences
from arl.store.jsontext import to_json_text
from arl.transport import limit_input

from .environment import EnvironmentConductor
from .service import agent_service, env_service
from .steploop import Answer, AskAgents, Command, Loop, Replies, ResetEnvironments, StepEnvironments, Store

log = logging.getLogger("arl.links")

REPLY_GRACE = 1.0  # seconds a live peer gets to answer after a stop, so that its answer is stored

Stop = Callable[[], bool]  # True once the parent asked to stop; cheap, called often


def _checked(data: bytes, what: str) -> bytes:
    if len(data) > MAX_FRAME_BYTES:  # the far socket would refuse it without a word
        raise ProtocolError(f"{what} is {len(data):,} bytes, over the limit")
    return data


class RemotePeers:
    """One DEALER per host service; a round sends to several at once and collects."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoints: Mapping[str, str],
        stop: Stop,
        grace: float,
        on_wait: Callable[[], None] = lambda: None,
    ) -> None:
        self.stop, self.grace, self.on_wait = stop, grace, on_wait
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        # Replies each peer owes, in order: after a stop the wait may give up on one, whose
        # late reply must then be told from the answer to a later request on that link.
        self._owed: dict[zmq.Socket[Any], int] = {}
        self._poller = zmq.Poller()
        try:
            for service, endpoint in endpoints.items():
                sock = self.sockets[service] = ctx.socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                limit_input(sock)
                sock.connect(endpoint)
                self._poller.register(sock, zmq.POLLIN)
        except BaseException:
            self.close()
            raise

    def send(self, requests: Mapping[str, Any]) -> None:
        for service, request in requests.items():
            data = _checked(encode(request), f"a {type(request).__name__} for {service}")
            sock = self.sockets[service]
            sock.send(data)
            self._owed[sock] = self._owed.get(sock, 0) + 1

    def collect(self, services: Iterable[str], grace: float | None = None) -> tuple[dict[str, Any], bool]:
        """Every reply of ``services`` (a reply that cannot be read is that peer's
        failure). After a stop the peers get ``grace`` more seconds (a live one answers
        well within it; a dead one never does): returns the replies that came, and
        whether a stop was seen while waiting. A wait of more than a poll (50 ms) calls
        ``on_wait`` (the store link sends what it holds: a long wait must not hold
        completed steps back from the store)."""
        grace = self.grace if grace is None else grace
        replies: dict[str, Any] = {}
        waiting = {self.sockets[service]: service for service in services}
        give_up = None
        while waiting:
            ready = self._poller.poll(50)
            if not ready:
                self.on_wait()
            for sock, _ in ready:
                frame = sock.recv()
                self._owed[sock] = owed = self._owed.get(sock, 1) - 1
                if sock not in waiting or owed > 0:
                    continue  # a late reply to a request a stop gave up on: not this round's
                service = waiting.pop(sock)
                try:
                    replies[service] = decode(frame)
                except ProtocolError as exc:
                    replies[service] = ErrorReply(service, "ProtocolError", f"its reply cannot be read: {exc}", "")
            if waiting and self.stop():
                give_up = give_up or time.monotonic() + grace
                if time.monotonic() >= give_up:
                    return replies, True
        return replies, give_up is not None

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


class Environments:
    """A worker's environments: those hosted here (conductors of this process) and those
    in processes of their own (``remote``: env uid -> host service)."""

    def __init__(
        self, worker: int, local: Mapping[str, EnvironmentConductor], remote: Mapping[str, str], peers: RemotePeers
    ) -> None:
        self.worker, self.local, self.remote, self.peers = worker, local, remote, peers

    def call(self, requests: Mapping[str, Any], grace: float | None = None) -> Replies:
        remote = {uid: request for uid, request in requests.items() if uid in self.remote}
        self.peers.send({self.remote[uid]: request for uid, request in remote.items()})
        got: dict[str, Any] = {}
        for uid, request in requests.items():
            if uid not in remote:
                got[uid] = self._local(uid, request)
        replies, stopped = self.peers.collect([self.remote[uid] for uid in remote], grace)
        got.update((uid, replies[self.remote[uid]]) for uid in remote if self.remote[uid] in replies)
        return Replies(got, stopped)

    def _local(self, uid: str, request: Any) -> Any:
        """The conductor's own error boundary, as its process would apply it."""
        conductor = self.local.get(uid)
        try:
            if conductor is None:
                raise RuntimeError(f"environment {uid!r} is not set up in this controller")
            return decode(_checked(encode(conductor.handle(request)), f"environment {uid}'s reply"))
        except Exception as exc:
            return ErrorReply(env_service(uid, self.worker), type(exc).__name__, str(exc), traceback.format_exc())


class Agents:
    """The agents of a phase, by the service of the process hosting each: one request per
    host a round, carrying the part of every agent of the turn it hosts."""

    def __init__(self, worker: int, hosts: Mapping[str, str], peers: RemotePeers) -> None:
        self.worker, self.hosts, self.peers = worker, hosts, peers

    def ask(self, command: AskAgents) -> Replies:
        parts: dict[str, dict[str, list[Any]]] = {}
        for name, ask in command.asks.items():
            parts.setdefault(self.hosts[name], {})[name] = [ask.sensors, ask.rewards]
        requests = {
            host: amsg.Act(self.worker, agents, command.terminated, command.truncated, command.final)
            for host, agents in parts.items()
        }
        self.peers.send(requests)
        replies, stopped = self.peers.collect(requests)
        got: dict[str, Any] = {}
        for host, agents in parts.items():
            if host in replies:
                got.update(split_acted(replies[host], agents))
        return Replies(got, stopped)


def split_acted(reply: Any, names: Iterable[str]) -> dict[str, Any]:
    """An agent process's reply as each agent's :class:`Answer` or failure; a reply that is
    not what was asked for fails every agent it should have answered for."""
    names = list(names)
    if isinstance(reply, ErrorReply):
        return {name: reply for name in names}
    if not isinstance(reply, amsg.Acted):
        what = f"answered Act with {type(reply).__name__}"
        return {name: ErrorReply(agent_service(name), "ProtocolError", what, "") for name in names}
    got: dict[str, Any] = {}
    for name in names:
        answer, failure = reply.answers.get(name), reply.failures.get(name)
        if failure is not None and len(failure) == 3:
            got[name] = ErrorReply(agent_service(name), *map(str, failure))
        else:
            got[name] = _answer(name, answer)
    return got


def _answer(name: str, answer: Any) -> Answer | ErrorReply:
    """``[setpoints, objective | None, policy version | None]`` as an :class:`Answer` (an
    answer without the version, as arl sent before versions, has none)."""
    if not (isinstance(answer, list) and len(answer) in (2, 3) and isinstance(answer[0], dict)):
        return ErrorReply(agent_service(name), "ProtocolError", "its answer is missing or malformed", "")
    objective = answer[1]
    if objective is not None and not isinstance(objective, int | float):
        objective = None  # the loop reports the missing objective
    version = answer[2] if len(answer) == 3 else None
    if version is not None and (type(version) is not int or version < 0):
        return ErrorReply(agent_service(name), "ProtocolError", f"its policy version {version!r} is not a version", "")
    return Answer(answer[0], objective, version)


class StoreLink:
    """The PUSH link to the run's StoreWriter. Records are sent in batches, at most every
    ``FLUSH_INTERVAL`` seconds or ``FLUSH_RECORDS`` records and at every flush the loop
    asks for (an episode's start and end, a failure): a ZeroMQ send, which wakes this
    process's and the writer's I/O threads, costs more than a step of the dummy run."""

    FLUSH_INTERVAL = 0.01
    FLUSH_RECORDS = 512

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.socket = ctx.socket(zmq.PUSH)
        # Records must reach the writer even as this process exits; the governor waits.
        self.socket.setsockopt(zmq.LINGER, 5000)
        # A writer that stopped taking records must not block the step loop for ever.
        self.socket.setsockopt(zmq.SNDTIMEO, 5000)
        self.socket.connect(endpoint)
        self.clock = clock
        self._frames: list[bytes] = []
        self._due = 0.0

    def send(self, records: list[Any], *, flush: bool = False) -> None:
        self._frames.extend(_checked(encode(_as_stored(rec)), f"a {type(rec).__name__} record") for rec in records)
        if flush or len(self._frames) >= self.FLUSH_RECORDS or self.clock() >= self._due:
            self.flush()

    def flush(self) -> None:
        self._due = self.clock() + self.FLUSH_INTERVAL
        if not self._frames:
            return
        frames, self._frames = self._frames, []  # a failed send is not tried again on the way out
        try:
            self.socket.send_multipart(frames)
        except zmq.Again:
            raise ArlError("the store writer has taken no records for 5 s") from None

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.socket.close()


class LearnerLink:
    """PUSH links to the learners of a phase's central agents: each agent's transitions
    go to its learner as :class:`~arl.messages.learner.Experiences`, in batches as the
    store's records do (the loop's flushes, ``FLUSH_INTERVAL``, ``FLUSH_ITEMS``)."""

    FLUSH_INTERVAL = 0.01
    FLUSH_ITEMS = 256

    def __init__(
        self,
        ctx: zmq.Context[Any],
        phase: int,
        endpoints: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.phase, self.clock = phase, clock
        self.sockets: dict[str, zmq.Socket[Any]] = {}
        try:
            for agent, endpoint in endpoints.items():
                sock = self.sockets[agent] = ctx.socket(zmq.PUSH)
                sock.setsockopt(zmq.LINGER, 5000)  # transitions must reach the learner as this process ends
                sock.setsockopt(zmq.SNDTIMEO, 5000)
                sock.connect(endpoint)
        except BaseException:
            self.close()
            raise
        self._waiting: dict[str, list[list[Any]]] = {}
        self._count = 0
        self._due = 0.0

    def send(self, experiences: Mapping[str, list[list[Any]]] | None, *, flush: bool = False) -> None:
        for agent, items in (experiences or {}).items():
            self._waiting.setdefault(agent, []).extend(items)
            self._count += len(items)
        if self._count and (flush or self._count >= self.FLUSH_ITEMS or self.clock() >= self._due):
            self.flush()

    def flush(self) -> None:
        self._due = self.clock() + self.FLUSH_INTERVAL
        waiting, self._waiting, self._count = self._waiting, {}, 0
        for agent, items in waiting.items():
            frame = _checked(encode(Experiences(self.phase, agent, items)), f"agent {agent}'s transitions")
            try:
                self.sockets[agent].send(frame)
            except zmq.Again:
                raise ArlError(
                    f"agent {agent}'s learner has taken no transitions for 5 s: its train() may be far slower "
                    "than the workers act (set learner.max_train_frequency, or use fewer workers), or it hangs "
                    "(see its log lines)"
                ) from None

    def close(self) -> None:
        try:
            if self._count:
                self.flush()
        finally:
            for sock in self.sockets.values():
                sock.close()


class MetricLink:
    """An agent process's link to the run's StoreWriter, for what its brains and muscles
    log (``log_metric``). Values are buffered (from any thread: a learner may train in
    one of its own) and sent by a thread of this link's, which alone uses the socket: as
    :class:`~arl.messages.store.Metrics` records, one a phase and agent, in one multipart
    message at most every ``interval`` seconds while values wait, at once when
    ``MAX_WAITING`` wait or on :meth:`flush`, and on :meth:`close`. Never a ZeroMQ send a
    value: a step may log several."""

    INTERVAL = 0.1
    MAX_WAITING = 4096
    VALUES_PER_RECORD = 1024  # about 50 bytes a value: records far below the frame limit

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, *, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._link = StoreLink(ctx, endpoint)
        self._cond = threading.Condition()
        self._waiting: dict[tuple[int, str], list[list[Any]]] = {}
        self._count = 0
        self._now = False  # send at once: a flush, or close
        self._closing = False
        self.sent = 0  # values handed to the socket (tests and logs)
        self.dropped = 0  # values logged after the link closed (or its thread died)
        self._thread = threading.Thread(target=self._run, name="arl-metrics", daemon=True)
        self._thread.start()

    def add(self, phase: int, agent: str, worker: int | None, name: str, step: int, value: float) -> None:
        with self._cond:
            if self._closing or not self._thread.is_alive():
                self.dropped += 1  # nothing sends any more: never let values pile up
                return
            self._waiting.setdefault((phase, agent), []).append([worker, name, step, value, time.time()])
            self._count += 1
            if self._count == 1 or self._count >= self.MAX_WAITING:
                self._cond.notify()

    def flush(self) -> None:
        """Send what waits now (without waiting for the send)."""
        with self._cond:
            if self._count:
                self._now = True
                self._cond.notify()

    def close(self) -> None:
        """Send what waits, then close the socket (its linger lets the last values reach
        the writer as this process exits)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        last = -math.inf
        try:
            while True:
                batch, closing = self._next_batch(last)
                if batch:
                    self._send(batch)
                last = time.monotonic()
                if closing:
                    return
        finally:
            self._link.socket.close()

    def _next_batch(self, last: float) -> tuple[dict[tuple[int, str], list[list[Any]]], bool]:
        """Wait until values are due (or the link closes); take them."""
        with self._cond:
            while not (self._count or self._closing):
                self._cond.wait()
            due = last + self.interval
            while not (self._now or self._closing or self._count >= self.MAX_WAITING):
                left = due - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, self._waiting, self._count, self._now = self._waiting, {}, 0, False
            return batch, self._closing

    def _send(self, batch: dict[tuple[int, str], list[list[Any]]]) -> None:
        step = self.VALUES_PER_RECORD
        records = [
            store.Metrics(phase, agent, values[i : i + step])
            for (phase, agent), values in batch.items()
            for i in range(0, len(values), step)
        ]
        try:
            self._link.send(records, flush=True)
        except (ArlError, zmq.ZMQError, ProtocolError) as exc:  # the run is failing already
            log.error("metrics lost: %s", exc)
            return
        self.sent += sum(len(values) for values in batch.values())


def _as_stored(record: Any) -> Any:
    """A step's or an action's values as the JSON text the store keeps, made here: each
    worker's controller does its share, rather than the one writer all of them feed. A
    value JSON cannot hold (a complex number, a datetime64) leaves the record as it is:
    the writer drops and counts it, saying why, as it always has."""
    try:
        return _with_json_text(record)
    except (TypeError, ValueError, RecursionError):
        return record


def _with_json_text(record: Any) -> Any:
    if type(record) is store.EnvironmentStep:
        r = record
        sensors, rewards = to_json_text(r.sensors), to_json_text(r.rewards)
        # (r.info is JSON text already, made where the environment runs: arl.stepinfo)
        return store.EnvironmentStep(
            r.phase, r.worker, r.episode, r.step, r.env_uid, sensors, rewards, r.terminated, r.truncated,
            r.sim_time, r.info,
        )  # fmt: skip
    if type(record) is store.AgentAction:
        a = record
        inputs, setpoints, rewards = to_json_text(a.inputs), to_json_text(a.setpoints), to_json_text(a.rewards)
        return store.AgentAction(
            a.phase, a.worker, a.episode, a.step, a.agent, inputs, setpoints, rewards, a.objective, a.policy_version
        )
    return record


class Driver:
    """Runs a step loop: each command to its link, each answer back into the loop. A
    link's failure is thrown into the loop, which stores what completed and re-raises."""

    def __init__(
        self,
        envs: Environments,
        agents: Agents,
        store: StoreLink,
        stop: Stop,
        learners: LearnerLink | None = None,
        hold: Stop | None = None,
    ) -> None:
        self.envs, self.agents, self.store, self.stop, self.learners = envs, agents, store, stop, learners
        # At a step boundary: pause there if asked (conductors.hold); True if a stop came meanwhile.
        self.hold = hold

    def run(self, loop: Loop) -> Any:
        answer: Any = None
        failure: Exception | None = None
        while True:
            try:
                command = loop.send(answer) if failure is None else loop.throw(failure)
            except StopIteration as end:
                return end.value
            answer, failure = None, None
            try:
                answer = self.execute(command)
            except Exception as exc:
                failure = exc

    def execute(self, command: Command) -> Any:
        match command:
            case AskAgents():
                return self.agents.ask(command)
            case StepEnvironments(setpoints=setpoints):
                return self.envs.call({uid: emsg.Step(values) for uid, values in setpoints.items()})
            case ResetEnvironments(seeds=seeds):
                # Nothing to store from a reset: a stop does not wait for it.
                return self.envs.call({uid: emsg.Reset(seed) for uid, seed in seeds.items()}, grace=0)
            case Store(records=records, flush=flush, experiences=experiences):
                self.store.send(records, flush=flush)
                if self.learners is not None:
                    self.learners.send(experiences, flush=flush)
                stop = self.stop()
                if command.boundary and self.hold is not None and not stop:
                    stop = self.hold()
                return stop
            case _:
                assert_never(command)


class LocalAgents:
    """Agents hosted in this process (an :class:`~arl.conductors.agent.AgentHost`): the same
    request and reply an agent process would get, through the codec, by a direct call.
    The in-process harness of the tests runs whole phases this way, without processes."""

    def __init__(self, worker: int, host: Any) -> None:
        self.worker, self.host = worker, host

    def ask(self, command: AskAgents) -> Replies:
        agents = {name: [ask.sensors, ask.rewards] for name, ask in command.asks.items()}
        request = amsg.Act(self.worker, agents, command.terminated, command.truncated, command.final)
        try:
            reply = decode(encode(self.host.handle(decode(encode(request)))))
        except Exception as exc:
            reply = ErrorReply("agents", type(exc).__name__, str(exc), traceback.format_exc())
        return Replies(split_acted(reply, agents))
