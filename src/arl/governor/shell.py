"""The RunGovernor's shell: executes the machine's commands, turns outcomes into events.

It owns the run's MajorDomo broker, its StoreWriter (a thread in this process: a run
needs one process fewer, and the writer shares nothing with the step loop), the
supervised children, and the link to the executor.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import logging
import os
import shutil
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, assert_never

import zmq
import zmq.asyncio

import arl
from arl import codec
from arl.checkpoints import RunCheckpoints, Saved, load_from
from arl.classref import build
from arl.conditions import RunView, TerminationCondition
from arl.conductors.service import HEARTBEAT, controller_service
from arl.config.spec import AgentSpec, ClassRef, EnvironmentSpec, PhaseSpec, RunSpec
from arl.errors import ArlError, ComponentCrashed
from arl.governor import machine as m
from arl.governor.childlogs import ChildLogRelay
from arl.governor.livestate import LiveState
from arl.governor.options import RunOptions, describe_exit, last_lines
from arl.governor.plan import Plan, plan_children
from arl.governor.restart import begin_restart
from arl.mdp.broker import Broker
from arl.mdp.client import MdpClient
from arl.messages import control, executor, store
from arl.messages.common import raise_failures
from arl.proc.child import ChildContext, SupervisedChild
from arl.proc.ipc import private_dir
from arl.seeding import agent_seed, worker_seed
from arl.status import Ending
from arl.store.engine import short_error
from arl.store.writer import StoreWriter

log = logging.getLogger("arl.governor")


class GovernorShell:
    """Runs one experiment run to its end. Use :meth:`run` once."""

    def __init__(self, ctx: ChildContext | None, spec: RunSpec, options: RunOptions) -> None:
        self.ctx = ctx
        self.spec = spec
        self.options = options
        self.machine = m.RunMachine(spec)
        self.rundir = options.rundir or private_dir("arl-run-")
        os.makedirs(self.rundir, mode=0o700, exist_ok=True)
        self.zctx = zmq.asyncio.Context()
        # The children's log records come through here: it keeps each one's last lines.
        self.logs = ChildLogRelay(zmq.Context.shadow(self.zctx.underlying), f"ipc://{self.rundir}/log", options.logs)
        self.broker_endpoint = f"ipc://{self.rundir}/broker"
        self.store_endpoint = f"ipc://{self.rundir}/store"
        self.plan: Plan = plan_children(
            spec,
            self.rundir,
            self.broker_endpoint,
            self.store_endpoint,
            store_steps=options.store_steps,
            reply_grace=options.timeouts.reply_grace,
            liveness=options.timeouts.liveness,
        )
        self.endpoints: dict[str, str] = {}  # host service -> its direct link, looked up once
        self.children = {c.label: SupervisedChild(c, self.logs.child_config) for c in self.plan.all}
        self.writer = StoreWriter(
            options.store_url, self.store_endpoint, on_failure=self._writer_failed, patience=options.timeouts.store
        )
        self.client: MdpClient | None = None
        self.run_id: int | None = None
        self.checkpoints = RunCheckpoints(options.checkpoint_dir, spec.uid)  # the brains this run saved
        self.started = time.time()
        self._events: asyncio.Queue[m.Event] = asyncio.Queue()
        self._activities: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []  # listeners and watchers, cancelled at the end
        self._watchers: dict[str, asyncio.Task[None]] = {}  # child label -> the task watching its exit
        self._workers: dict[int, asyncio.Task[None]] = {}  # worker -> the activity running its phase
        # Set once the workers were asked to stop (InterruptWorkers): a restart gives up.
        self.interrupted = asyncio.Event()
        self.broker: Broker | None = None
        self._control: zmq.asyncio.Socket | None = None
        self._outcome: executor.RunOutcome | None = None
        self._drained = False  # the writer took every child's last records
        self._sent: dict[int, collections.Counter[str]] = {}  # phase -> transitions sent to each learner
        self.live = LiveState(self)  # pauses, snapshots, control requests

    # -- the loop -----------------------------------------------------------------

    async def run(self) -> executor.RunOutcome:
        """Run to the end. Always stops every child and closes the store."""
        self._event_loop = asyncio.get_running_loop()
        try:
            self.logs.attach(self._event_loop)
            self.writer.start()
            liveness = max(1, round(self.options.timeouts.liveness / HEARTBEAT))
            broker = self.broker = Broker(self.zctx, self.broker_endpoint, heartbeat=HEARTBEAT, liveness=liveness)
            async with broker, MdpClient(self.zctx, self.broker_endpoint) as client:
                self.client = client
                async with asyncio.TaskGroup() as group:
                    self._group = group
                    self._connect_control(group)
                    if self.ctx is not None:
                        self.ctx.ready()
                    await self._loop()
        finally:
            await self.live.desk.settle()  # (answers to the executor's last requests go out)
            await self._ensure_children_stopped(controller_grace=not self.machine.store_failed)
            try:
                self.writer.close(settle=not self._drained)
            except ArlError as exc:  # reported as the run's failure already
                log.debug("closing the store writer: %s", exc)
            self.live.close()
            if self._control is not None:
                self._control.close(linger=2000)
            self.logs.close()
            self.zctx.term()
            shutil.rmtree(self.rundir, ignore_errors=True)
        assert self._outcome is not None
        return self._outcome

    async def _loop(self) -> None:
        self._post(m.Begin())
        while self._outcome is None:
            event = await self._events.get()
            before = self.machine.state
            commands = self.machine.handle(event)
            log.debug("%s: %s -> %s", type(event).__name__, before.name, [type(c).__name__ for c in commands])
            if self.machine.state is not before:
                await self._report(executor.GovernorStatus(self.spec.uid, self.machine.state.name, self.run_id))
            for command in commands:
                await self._execute(command)
        for task in [*self._activities, *self._background]:
            task.cancel()

    def _post(self, event: m.Event) -> None:
        self._events.put_nowait(event)

    def _writer_failed(self, exc: BaseException) -> None:
        """From the writer's thread: a run that cannot be stored must stop."""
        error = f"the store failed: {short_error(exc)}"
        self._event_loop.call_soon_threadsafe(self._post, m.Failed(error, store=True))

    def activity(self, work: Callable[[], Awaitable[m.Event | None]]) -> asyncio.Task[None]:
        """Run ``work`` as a task of the shell; its result, or its failure, becomes an
        event. Cancelled when the run stops its children."""

        async def wrapper() -> None:
            try:
                event = await work()
            except asyncio.CancelledError:
                raise
            except ComponentCrashed as exc:
                log.error("%s\n%s", exc, exc.remote_traceback.rstrip())
                self._post(m.Failed(f"{exc}\n{exc.remote_traceback}".rstrip()))
            except ArlError as exc:
                log.error("%s", exc)
                self._post(m.Failed(str(exc)))
            except Exception as exc:  # the shell's error boundary: the run fails, with the reason
                log.error("%s", exc, exc_info=True)
                self._post(m.Failed(f"{type(exc).__name__}: {exc}"))
            else:
                if event is not None:
                    self._post(event)

        task = self._group.create_task(wrapper())
        self._activities.add(task)
        task.add_done_callback(self._activities.discard)
        return task

    async def _execute(self, command: m.Command) -> None:
        match command:
            case m.RecordRunStarted():
                await self._record_run_started()
            case m.StartChildren():
                self.activity(self._start_children)
            case m.SetupPhase(phase=phase):
                self.activity(functools.partial(self._locked, phase))
            case m.RunWorkers(phase=phase):
                done = self.machine.done_workers()  # (a resumed phase's workers may have ended it)
                for worker in range(self.spec.phases[phase].workers):
                    if worker in done:
                        continue
                    work = functools.partial(self._run_worker, self.spec.phases[phase], worker)
                    self._workers[worker] = self.activity(work)
            case m.InterruptWorkers(restarting=restarting):
                self.interrupted.set()
                spared = {str(worker) for worker in restarting}  # (their restart gives up)
                for child in self.children.values():
                    if child.spec.role == "controller" and child.spec.name not in spared:
                        child.request_stop()
            case m.SaveBrains(phase=phase):
                self.activity(lambda: self._save_brains(self.spec.phases[phase]))
            case m.RecordPhaseStarted(phase=phase):
                p = self.spec.phases[phase]
                # Committed before any controller can send an episode of this phase:
                # records from different pipes may arrive in any order.
                await self._record(store.PhaseStarted(phase, p.name, p.mode, time.time()), flush=True)
            case m.RecordPhaseEnded(phase=phase, reason=reason):
                await self._record(store.PhaseEnded(phase, reason, time.time()))
            case m.CheckRun(phase=phase):
                self.activity(functools.partial(self._check_run, phase))
            case m.StopChildren(controller_grace=controller_grace):
                for task in list(self._activities):
                    task.cancel()
                self.activity(functools.partial(self._stop_children, controller_grace))
            case m.RecordEvent(kind=kind, detail=detail):
                await self._record(store.Event(kind, detail, time.time()))
            case m.ReportDeath(label=label, code=code, note=note):
                fate = f"the run fails ({note})" if note else "the run fails"
                self._post(m.Failed(self.death(self.children[label], code, fate)))
            case m.RestartWorker():
                begin_restart(self, command)
            case m.ResumeWorker(phase=phase, worker=worker):
                work = functools.partial(self._run_worker, self.spec.phases[phase], worker, command)
                self._workers[worker] = self.activity(work)
            case m.Finish(outcome=outcome, error=error, reason=reason):
                await self._finish(outcome, error, reason)
            case _:
                assert_never(command)

    async def _locked(self, index: int) -> m.Event:
        """Set phase ``index`` up after any snapshot in progress (and after the file's
        ``at_phase_end`` one): a phase is not set up while one saves the last."""
        async with self.live.snapshots.lock:
            await self.live.at_phase_start(index)
            return await self._setup_phase(self.spec.phases[index])

    # -- commands -----------------------------------------------------------------

    async def _record(self, record: Any, *, flush: bool = False) -> None:
        """Hand a record to the writer. A writer that died has already failed the run
        (through ``on_failure``), so what it can no longer take is dropped here."""
        try:
            self.writer.submit(record)
            if flush:
                await asyncio.to_thread(self.writer.flush)
        except ArlError as exc:
            log.debug("not stored (%s): %s", exc, type(record).__name__)

    async def _record_run_started(self) -> None:
        spec = self.spec
        host, now = socket.gethostname(), time.time()
        if self.live.resumed is not None:  # the run's row is the store's: rewound, then written on
            try:
                run_id = await self.live.rewind_store()
            except ArlError as exc:  # nothing was changed: the run fails, saying why
                self._post(m.Failed(f"the run cannot go on from snapshot {self.live.resumed.path}: {exc}"))
                return
            await self._record(store.RunResumed(run_id), flush=True)
            detail = {"snapshot": str(self.live.resumed.path), "phase": self.live.resumed.fields["phase_name"]}
            await self._record(store.Event("resumed", detail, now))
        else:
            started = store.RunStarted(
                spec.uid, spec.experiment_uid, spec.seed, spec.document, arl.__version__, host, now, spec.swept
            )
            await self._record(started, flush=True)
            await self._record(store.Event("layout", self.plan.layout(), time.time()))
        self.run_id = self.writer.run_id
        self._post(m.RunRecorded(self.run_id, store_failed=self.writer.error is not None))
        await self._report(executor.GovernorStatus(self.spec.uid, self.machine.state.name, self.run_id))

    async def _start_children(self) -> m.Event:
        timeout = self.options.timeouts.start
        await asyncio.gather(*(child.start(timeout) for child in self.children.values()))
        for child in self.children.values():
            self.start_watching(child)
        await self._look_up_endpoints()
        return m.ChildrenStarted()

    async def _look_up_endpoints(self) -> None:
        """The direct link of every agent and environment process, once for the run, from
        the broker (the registry): each advertised it when it registered."""
        services = [c.args["service"] for c in self.plan.environments + self.plan.agents]
        found = await asyncio.gather(*(self._endpoint(service) for service in services))
        self.endpoints.update(zip(services, found, strict=True))

    async def _endpoint(self, service: str) -> str:
        """A started child's READY may still be on its way to the broker: ask again
        until it has arrived (each ask is a round trip to the broker, well under 1 ms)."""
        assert self.client is not None
        timeout = self.options.timeouts.request
        deadline = time.monotonic() + timeout
        while True:
            metadata = await self.client.lookup(service, timeout=timeout)
            if metadata and metadata.get("direct"):
                return str(metadata["direct"])
            if time.monotonic() >= deadline:
                raise ArlError(f"service {service} is not registered with the broker")
            await asyncio.sleep(0.005)

    def start_watching(self, child: SupervisedChild) -> None:
        """From now on an exit of ``child`` is news: a ``ChildExited`` event (and a
        controller's words up its pipe are heard)."""
        self.live.listen_controller(child.spec.label)
        task = self._group.create_task(self._watch(child))
        self._background.append(task)
        self._watchers[child.spec.label] = task

    async def _watch(self, child: SupervisedChild) -> None:
        code = await child.exited
        self._post(m.ChildExited(child.spec.role, child.spec.name, code, child.stop_requested, time.monotonic()))

    def abandon(self, worker: int, labels: list[str]) -> None:
        """Give up on ``worker``'s phase as it ran (cancel the activity waiting for its
        reply) and stop watching processes ``labels``: what they do next is a restart's
        doing, not news."""
        running = self._workers.pop(worker, None)
        if running is not None:
            running.cancel()
        for label in labels:
            watcher = self._watchers.pop(label, None)
            if watcher is not None:
                watcher.cancel()

    def death(self, child: SupervisedChild, code: int, fate: str, *, level: int = logging.ERROR) -> str:
        """Say, on the console and for the store, which child died, how, what comes of
        it (``fate``), and its last lines; return the text."""
        self.logs.drain()  # what it sent before it died has arrived; take it now
        lines = self.logs.tail(child.spec.label)
        said = last_lines(lines)
        error = (
            f"process arl[{child.spec.label}] {describe_exit(code)} (pid {child.pid}); {fate}. "
            f"Its last log lines:\n{said}"
        )
        log.log(level, "run %s: %s", self.spec.uid, error)
        return error

    async def request(self, service: str, message: Any, timeout: float) -> Any:
        """Send a control request to ``service`` (through the broker) and return its
        reply; a component's failure raises (:class:`ComponentCrashed`)."""
        assert self.client is not None
        reply = codec.decode(await self.client.request(service, codec.encode(message), timeout=timeout))
        raise_failures({service: reply})
        return reply

    async def _setup_phase(self, phase: PhaseSpec) -> m.Event:
        timeout = self.options.timeouts.request
        envs = [(env, w) for w in range(phase.workers) for env in phase.environments]
        readies = await asyncio.gather(
            *(
                self.request(
                    self.plan.env_host(env.uid, w),
                    self.setup_environment(phase, env),
                    timeout,
                )
                for env, w in envs
            )
        )
        sensors: dict[str, Any] = {}
        actuators: dict[str, Any] = {}
        for ready in readies:
            sensors.update((sid, desc) for sid, desc in ready.sensors)
            actuators.update((aid, desc) for aid, desc in ready.actuators)
        setups = {agent.name: self._setup_agent(phase, agent, sensors, actuators) for agent in phase.agents}
        # A server's (a save's) own wait ends first, with its own error, not the request's.
        waves = self.plan.agent_setups(phase, setups, wait=0.8 * timeout)
        for wave in waves:
            await asyncio.gather(*(self.request(service, setup, timeout) for service, setup in wave))
        await self.live.load_services(phase.index)  # (going on from a snapshot of this phase)
        return m.PhaseSetUp(phase.index)

    def setup_environment(self, phase: PhaseSpec, env: EnvironmentSpec) -> control.SetupEnvironment:
        """An environment's setup: ``envs_per_worker`` copies of it in a controller."""
        entry = env.entry
        return control.SetupEnvironment(
            phase.index, env.uid, entry.entry_point, dict(entry.params), phase.envs_per_worker
        )

    def _setup_agent(
        self, phase: PhaseSpec, agent: AgentSpec, sensors: dict[str, Any], actuators: dict[str, Any]
    ) -> control.SetupAgent:
        missing = [s for s in agent.sensors if s not in sensors] + [a for a in agent.actuators if a not in actuators]
        if missing:
            raise ValueError(
                f"phase {phase.name}: agent {agent.name} names ids no environment provides: {', '.join(missing)}"
            )

        return control.SetupAgent(
            phase.index,
            agent.name,
            _wire(agent.brain),
            _wire(agent.muscle),
            _wire(agent.objective),
            [[s, sensors[s]] for s in agent.sensors],
            [[a, actuators[a]] for a in agent.actuators],
            phase.actors,
            phase.train,
            agent_seed(self.spec.seed, phase.name, agent.name),
            self._load_from(phase, agent),
        )

    def _load_from(self, phase: PhaseSpec, agent: AgentSpec) -> list[str] | None:
        """``SetupAgent.load_from``: the brain's folder and the sha256 recorded when it was
        saved, which the agent checks before loading it."""
        return load_from(self.checkpoints, self.options.store_url, phase, agent)

    async def _run_worker(self, phase: PhaseSpec, worker: int, resume: m.ResumeWorker | None = None) -> m.Event:
        """The worker's phase, or after a restart (``resume``) the episodes it still owes.
        With ``envs_per_worker`` the controller's copies are workers ``worker * copies + k``."""
        copies = phase.envs_per_worker
        agent_hosts = {a.name: self.plan.agent_host(a.name, worker) for a in phase.agents}
        learners = {a.name: self.plan.central[a.name].experiences for a in phase.agents if a.name in self.plan.central}
        env_hosts = self.plan.env_hosts([e.uid for e in phase.environments], worker)
        hosts = {*agent_hosts.values(), *env_hosts.values()} - {""}
        endpoints = {service: self.endpoints[service] for service in hosts}

        request = control.RunPhase(
            phase.index,
            phase.name,
            worker,
            _wire(phase.simulation.entry),
            [_wire(c) for c in phase.simulation.conditions],
            [_wire(c) for c in self.spec.conditions],
            phase.episodes if resume is None else resume.episodes[0],
            phase.max_steps,
            {a.name: [list(a.sensors), list(a.actuators)] for a in phase.agents},
            [e.uid for e in phase.environments],
            agent_hosts,
            env_hosts,
            endpoints,
            worker_seed(self.spec.seed, phase.name, worker),
            self.started,
            [dataclasses.asdict(h) for h in self.machine.history],
            phase.actors,
            learners=learners if phase.train and learners else None,
            first_episode=resume.first_episode[0] if resume else 0,
            episodes_before=resume.episodes_before[0] if resume else 0,
            steps_before=resume.steps_before[0] if resume else 0,
            resume=[list(copy) for copy in zip(*resume_fields(resume), strict=True)] if resume and copies > 1 else None,
            envs=copies,
            state=self.live.resume_state(phase.index, worker) if resume is None else None,
            statistics_interval=self.spec.statistics_interval,
            seeds=[worker_seed(self.spec.seed, phase.name, worker * copies + k) for k in range(copies)]
            if copies > 1
            else None,
        )
        done = await self.request(controller_service(worker), request, self.options.timeouts.phase)
        self._sent.setdefault(phase.index, collections.Counter()).update(done.experiences or {})
        return m.WorkerDone(
            done.phase, done.worker, done.episodes, done.steps, done.reason, done.ends_run, done.returns
        )

    @functools.cached_property
    def run_conditions(self) -> list[TerminationCondition]:
        """Built when first asked (inside an activity, so a constructor that raises fails the run)."""
        return [
            build(c.entry_point, c.params, TerminationCondition, "termination condition") for c in self.spec.conditions
        ]

    async def _check_run(self, phase: int) -> m.Event:
        """Ask the run-level conditions about the run so far (the machine's history)."""
        view = RunView(time.time() - self.started, tuple(self.machine.history))
        for condition in self.run_conditions:
            ended = condition.run_over(view)
            if ended is not None:
                log.info("run %s: %s ends the run after phase %s", self.spec.uid, ended, view.phases[-1].name)
                return m.RunChecked(phase, ended)
        return m.RunChecked(phase, None)

    async def _save_brains(self, phase: PhaseSpec) -> m.Event:
        # New folders, proven inside --checkpoint-dir; the run's is unique across stores.
        self.checkpoints.phase_folder(self.run_id, phase.name)
        sent = self._sent.get(phase.index, collections.Counter())

        def saver(name: str) -> tuple[str, control.SaveBrain]:
            folder = str(self.checkpoints.brain_folder(phase.name, name))
            central = self.plan.central.get(name)
            if central is None:
                return self.plan.agent_hosts[name], control.SaveBrain(name, folder)
            # The learner takes every transition the workers sent before it saves.
            return central.learner, control.SaveBrain(name, folder, sent[name])

        saved = await asyncio.gather(
            *(self.request(*saver(a.name), self.options.timeouts.request) for a in phase.agents)
        )
        for reply in saved:
            self.checkpoints.record(phase.name, reply.name, Saved(reply.directory, reply.sha256))
            await self._record(
                store.CheckpointSaved(phase.index, reply.name, reply.directory, reply.sha256, time.time())
            )
            detail = {"phase": phase.name, "agent": reply.name, "path": reply.directory, "sha256": reply.sha256}
            await self._record(store.Event("brain_saved", detail, time.time()))
        return m.BrainsSaved(phase.index)

    async def _stop_children(self, controller_grace: bool) -> m.Event:
        reaped = await self._ensure_children_stopped(controller_grace=controller_grace)
        # Every producer has exited; collect what they sent before they went. A writer
        # that failed has said so already (a Failed event); stopping goes on regardless.
        if self.writer.error is None:
            try:
                await asyncio.to_thread(self.writer.drain)
                self._drained = reaped  # nothing more can come from a child: closing need not wait
            except ArlError as exc:
                log.error("%s", exc)
        return m.ChildrenStopped()

    async def _ensure_children_stopped(self, *, controller_grace: bool) -> bool:
        """Controllers first (they end at a step boundary), then the agent and environment
        processes together (nothing asks them anything once the controllers are gone). Reaps
        all; False if one could not be stopped (it may still send records)."""
        reaped = True
        for roles in (("controller",), ("agent", "learner", "environment")):
            grace = self.options.timeouts.stop_grace
            if roles == ("controller",) and not controller_grace:
                # The store takes nothing more: a controller's grace would only be spent
                # waiting out its store link's linger.
                grace = 0.0
            group = [c for c in self.children.values() if c.spec.role in roles]
            results = await asyncio.gather(*(c.stop(grace=grace) for c in group), return_exceptions=True)
            for child, result in zip(group, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("could not stop arl[%s]: %s", child.spec.label, result)
                    reaped = False
        return reaped

    async def _finish(self, outcome: m.Outcome, error: str | None, reason: str) -> None:
        ended = store.RunEnded(outcome.value, error, time.time(), reason)
        await self._record(ended, flush=True)
        if self.writer.error is not None and self.run_id is not None:  # once more, on a connection of its own
            await asyncio.to_thread(self._record_end_directly, ended)
        counts = await self.live.run_counts()  # (a resumed run's: all it has stored)
        self._outcome = executor.RunOutcome(
            self.spec.uid, self.run_id, outcome.value, counts.get("phases", 0), counts.get("episodes", 0),
            counts.get("environment_steps", 0), counts.get("agent_actions", 0), error, reason,
            self.live.desk.history(),
        )  # fmt: skip
        await self._report(self._outcome)

    def _record_end_directly(self, ended: store.RunEnded) -> None:
        from arl.store.query import end_run_at

        assert self.run_id is not None
        end_run_at(
            self.options.store_url, self.run_id, ended.status, ended.error, ended.reason,
            patience=self.options.timeouts.store,
        )  # fmt: skip

    # -- the executor link --------------------------------------------------------

    def _connect_control(self, group: asyncio.TaskGroup) -> None:
        if self.options.control is not None:
            self._control = self.zctx.socket(zmq.DEALER)
            self._control.setsockopt(zmq.IDENTITY, self.options.control_id.encode())
            self._control.connect(self.options.control)
        if self.ctx is not None:
            self._background.append(group.create_task(self._listen_pipe(self.ctx)))
        self.live.control_tasks(group)

    async def _listen_pipe(self, ctx: ChildContext) -> None:
        readable = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(ctx.control_fd, readable.set)
        try:
            await readable.wait()
        finally:
            loop.remove_reader(ctx.control_fd)
        if ctx.stop_requested():
            self._post(m.StopRequested(Ending.INTERRUPTED))

    async def _report(self, message: Any) -> None:
        if self._control is not None:
            await self._control.send(codec.encode(message))


def resume_fields(resume: m.ResumeWorker) -> tuple[tuple[int, ...], ...]:
    """A restarted worker's progress as ``RunPhase.resume`` holds it, a copy at a time:
    first episode, episodes owed, episodes before, steps before."""
    return (resume.first_episode, resume.episodes, resume.episodes_before, resume.steps_before)


def _wire(ref: ClassRef) -> list[Any]:
    """A class reference as messages carry it: ``[entry point, params]``."""
    return [ref.entry_point, dict(ref.params)]


async def main(ctx: ChildContext) -> None:
    """Entry point of an ``arl[governor:<run uid>]`` process (forked by the fork server)."""
    spec: RunSpec = ctx.spec.args["spec"]
    options: RunOptions = ctx.spec.args["options"]
    outcome = await GovernorShell(ctx, spec, options).run()
    log.debug("run %s ended %s", spec.uid, outcome.status)
