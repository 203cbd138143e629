"""The RunGovernor's logic: events in, commands out. No sockets, processes or clocks.

::

    PRISTINE --Begin--> STARTING --ChildrenStarted--> RUNNING --last phase done--> STOPPING
                            |                            |  (failure / stop request)     |
                            +----------------------------+----------------------------> STOPPING
    STOPPING --ChildrenStopped--> FINISHED | INTERRUPTED | FAILED

In RUNNING each phase goes SETTING_UP -> STEPPING -> SAVING (train phases only) ->
CHECKING (the run-level conditions) and then on to the next phase, unless a run-level
condition ended the run. A stop request while stepping interrupts the workers and
waits for them to end at a step boundary, so every completed step is stored.
With the file's ``restart`` policy, a worker whose controller or environment process
dies while it steps is restarted (within the policy's budget) and runs the episodes it
still owes; any other death fails the run.
The shell executes the commands and feeds back the events they lead to.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any, assert_never

from arl.conditions import PhaseSummary
from arl.config.spec import RunSpec
from arl.status import Ending, RunStatus

from .runwords import (  # re-exported: machine.WorkerDone and the like
    Begin as Begin,
)
from .runwords import (
    BrainsSaved as BrainsSaved,
)
from .runwords import (
    CheckRun as CheckRun,
)
from .runwords import (
    ChildExited as ChildExited,
)
from .runwords import (
    ChildrenStarted as ChildrenStarted,
)
from .runwords import (
    ChildrenStopped as ChildrenStopped,
)
from .runwords import (
    Command as Command,
)
from .runwords import (
    Event as Event,
)
from .runwords import (
    Failed as Failed,
)
from .runwords import (
    Finish as Finish,
)
from .runwords import (
    InterruptWorkers as InterruptWorkers,
)
from .runwords import (
    Outcome as Outcome,
)
from .runwords import (
    PhaseSetUp as PhaseSetUp,
)
from .runwords import (
    PhaseStep as PhaseStep,
)
from .runwords import (
    RecordEvent as RecordEvent,
)
from .runwords import (
    RecordPhaseEnded as RecordPhaseEnded,
)
from .runwords import (
    RecordPhaseStarted as RecordPhaseStarted,
)
from .runwords import (
    RecordRunStarted as RecordRunStarted,
)
from .runwords import (
    ReportDeath as ReportDeath,
)
from .runwords import (
    RestartWorker as RestartWorker,
)
from .runwords import (
    ResumePoint as ResumePoint,
)
from .runwords import (
    ResumeWorker as ResumeWorker,
)
from .runwords import (
    RunChecked as RunChecked,
)
from .runwords import (
    RunRecorded as RunRecorded,
)
from .runwords import (
    RunState as RunState,
)
from .runwords import (
    RunWorkers as RunWorkers,
)
from .runwords import (
    SaveBrains as SaveBrains,
)
from .runwords import (
    SetupPhase as SetupPhase,
)
from .runwords import (
    StartChildren as StartChildren,
)
from .runwords import (
    StopChildren as StopChildren,
)
from .runwords import (
    StopRequested as StopRequested,
)
from .runwords import (
    WorkerDone as WorkerDone,
)
from .runwords import (
    WorkerRestarted as WorkerRestarted,
)
from .runwords import (
    replaced as replaced,
)


@dataclass
class RunMachine:
    """The run's state. Feed it events with :meth:`handle`; execute what it returns."""

    spec: RunSpec
    state: RunState = RunState.PRISTINE
    phase: int = -1
    phase_step: PhaseStep | None = None
    outcome: Outcome | None = None
    error: str | None = None
    history: list[PhaseSummary] = field(default_factory=list)  # every phase that ended, in order
    end_reason: str | None = None  # the run-level condition that ended the run
    stop_reason: str = Ending.INTERRUPTED  # why a stop was asked ("max-uptime": the run's age)
    ended_by_worker: int | None = None  # the worker whose run-level condition it was, if one
    store_failed: bool = False  # the store takes no more records
    _workers_done: dict[int, WorkerDone] = field(default_factory=dict)
    _interrupting: bool = False
    _restarts: list[float] = field(default_factory=list)  # when each restart of the run was decided
    # Workers whose processes are being replaced, with the labels of those processes.
    _restarting: dict[int, frozenset[str]] = field(default_factory=dict)
    resume: ResumePoint | None = None  # the run goes on from a snapshot (until its phase is set up)

    def done_workers(self) -> dict[int, WorkerDone]:
        """The workers of the current phase that have ended it, with what they reported."""
        return dict(self._workers_done)

    def handle(self, event: Event) -> list[Command]:
        """Apply one event; return the commands it leads to (possibly none)."""
        match event:
            case Begin():
                return self._on_Begin(event)
            case ChildrenStarted():
                return self._on_ChildrenStarted(event)
            case RunRecorded():
                return self._on_RunRecorded(event)
            case PhaseSetUp():
                return self._on_PhaseSetUp(event)
            case WorkerDone():
                return self._on_WorkerDone(event)
            case BrainsSaved():
                return self._on_BrainsSaved(event)
            case RunChecked():
                return self._on_RunChecked(event)
            case Failed():
                return self._on_Failed(event)
            case StopRequested():
                return self._on_StopRequested(event)
            case ChildExited():
                return self._on_ChildExited(event)
            case WorkerRestarted():
                return self._on_WorkerRestarted(event)
            case ChildrenStopped():
                return self._on_ChildrenStopped(event)
            case _:
                assert_never(event)

    # -- lifecycle ----------------------------------------------------------------

    def _on_Begin(self, event: Begin) -> list[Command]:
        self._expect(event, RunState.PRISTINE)
        self.state = RunState.STARTING
        return [RecordRunStarted(), StartChildren()]

    def _on_ChildrenStarted(self, event: ChildrenStarted) -> list[Command]:
        if self.state is not RunState.STARTING:
            return []  # a stop overtook the start
        self.state = RunState.RUNNING
        if self.resume is not None:  # the phase's row is the store's already (rewound)
            self.history = list(self.resume.history)
            return self._enter_phase(self.resume.phase, record=False)
        return self._enter_phase(0)

    def _on_RunRecorded(self, event: RunRecorded) -> list[Command]:
        if event.run_id is None and not (event.store_failed or self.store_failed):  # a failed store says why
            # Every later record would be dropped as one of no run: stop now, and say why.
            return self._on_Failed(
                Failed("the store dropped the run's start record (see the log above); nothing was stored")
            )
        return []

    def _on_Failed(self, event: Failed) -> list[Command]:
        if self.state.ended:
            return []
        self.store_failed = self.store_failed or event.store
        recorded: list[Command] = [RecordEvent("failed", {"error": event.error})]
        if self.error is None:
            self.error = event.error
        if self.state is RunState.STOPPING:
            return recorded  # already on the way down; keep the first error
        self.outcome = Outcome.FAILED
        return recorded + self._stop(phase_reason=Ending.FAILED)

    def _on_StopRequested(self, event: StopRequested) -> list[Command]:
        if self.state is RunState.STOPPING or self.state.ended:
            return []
        self.outcome = Outcome.INTERRUPTED
        self.stop_reason = event.reason
        if self.state is RunState.PRISTINE:
            self.state = RunStatus.INTERRUPTED
            return [Finish(Outcome.INTERRUPTED, None, event.reason)]
        recorded: list[Command] = [RecordEvent("stop_requested", {"reason": event.reason})]
        if self.state is RunState.RUNNING and self.phase_step is PhaseStep.STEPPING:
            # End at a step boundary so every completed step is stored.
            if not self._interrupting:
                self._interrupting = True
                return [*recorded, InterruptWorkers(tuple(sorted(self._restarting)))]
            return recorded
        return recorded + self._stop(phase_reason=Ending.INTERRUPTED)

    def _on_ChildExited(self, event: ChildExited) -> list[Command]:
        if event.stop_requested and event.code == 0:
            # An interrupted controller ends its phase and exits; one that had not got its
            # RunPhase yet exits without a reply, so its worker counts as done here.
            if event.role == "controller" and self.phase >= 0:
                return self._on_WorkerDone(WorkerDone(self.phase, int(event.name), 0, 0, Ending.INTERRUPTED))
            return []
        if self.state not in (RunState.STARTING, RunState.RUNNING):
            return []
        label = f"{event.role}:{event.name}"
        worker = self._stepping_worker(event)
        if worker is not None and worker in self._restarting:
            if label in self._restarting[worker]:
                return []  # a process the restart replaces, gone with it (or stopped by it)
            # Another of its processes died: the restart would set up, or resume with, a dead peer.
            return [ReportDeath(label, event.code, f"while worker {worker} was being restarted")]
        policy = self.spec.restart
        if worker is None or policy is None or self._interrupting:
            return [ReportDeath(label, event.code)]
        recent = sum(1 for at in self._restarts if at > event.at - policy.within)
        if recent >= policy.max:
            spent = f"not restarted: the file's restart allows {policy.max} restarts within {policy.within:g} s"
            return [ReportDeath(label, event.code, spent)]
        self._restarts.append(event.at)
        self._restarting[worker] = frozenset(replaced(label, worker))
        detail = {
            "phase": self.spec.phases[self.phase].name,
            "worker": worker,
            "process": label,
            "code": event.code,
            "signal": _signal_name(event.code),
            "restarts": len(self._restarts),
        }
        return [
            RecordEvent("worker-died", detail),
            RestartWorker(self.phase, worker, label, event.code, len(self._restarts)),
        ]

    def _stepping_worker(self, event: ChildExited) -> int | None:
        """The worker whose controller or environment process ``event`` is, if that
        worker is stepping now (its phase runs and it has not reported done), whatever
        the number of copies of its environments it steps (``envs_per_worker``)."""
        if event.role == "controller":
            number = event.name
        elif event.role == "environment":
            number = event.name.rpartition(".")[2]  # "<uid>.<worker>"
        else:
            return None
        if not (self.state is RunState.RUNNING and self.phase_step is PhaseStep.STEPPING and number.isdigit()):
            return None
        worker, phase = int(number), self.spec.phases[self.phase]
        if worker >= phase.workers or worker in self._workers_done:
            return None
        return worker

    def _on_WorkerRestarted(self, event: WorkerRestarted) -> list[Command]:
        if not self._in_phase(event.phase, PhaseStep.STEPPING) or event.worker not in self._restarting:
            return []
        self._restarting.pop(event.worker, None)
        owed = tuple(max(0, self.spec.phases[event.phase].episodes - ended) for ended in event.episodes)
        if self._interrupting or not any(owed):  # (it died after its last episode ended)
            reason = Ending.INTERRUPTED if self._interrupting else Ending.EPISODES
            done = WorkerDone(event.phase, event.worker, sum(event.episodes), sum(event.steps), reason)
            return self._on_WorkerDone(done)
        return [ResumeWorker(event.phase, event.worker, event.first_episode, owed, event.episodes, event.steps)]

    def _on_ChildrenStopped(self, event: ChildrenStopped) -> list[Command]:
        self._expect(event, RunState.STOPPING)
        outcome = self.outcome or Outcome.FAILED
        self.state = outcome
        reason = {Outcome.FAILED: Ending.FAILED, Outcome.INTERRUPTED: self.stop_reason}.get(outcome)
        commands: list[Command] = []
        if self.end_reason is not None:  # a run-level condition ended the run: say which, where
            detail: dict[str, Any] = {"phase": self.history[-1].name, "reason": self.end_reason}
            if self.ended_by_worker is not None:
                detail["worker"] = self.ended_by_worker
            commands.append(RecordEvent("run_condition", detail))
        return [*commands, Finish(outcome, self.error, reason or self.end_reason or Ending.COMPLETED)]

    # -- phases -------------------------------------------------------------------

    def _on_PhaseSetUp(self, event: PhaseSetUp) -> list[Command]:
        if not self._in_phase(event.phase, PhaseStep.SETTING_UP):
            return []
        self.phase_step = PhaseStep.STEPPING
        resume, self.resume = self.resume, None
        if resume is None or not resume.done:
            return [RunWorkers(event.phase)]
        # Workers that had ended the phase at the snapshot count as done (the shell runs
        # only the others); if all had, the phase goes on as the last one's report would.
        done = dict(resume.done)
        last = done.pop(max(done))
        self._workers_done.update(done)
        return [RunWorkers(event.phase), *self._on_WorkerDone(last)]

    def _on_WorkerDone(self, event: WorkerDone) -> list[Command]:
        if not self._in_phase(event.phase, PhaseStep.STEPPING) or event.worker in self._workers_done:
            return []
        if event.worker in self._restarting:
            return []  # (a reply of the process that died: the restarted one reports)
        self._workers_done[event.worker] = event
        if len(self._workers_done) < self.spec.phases[event.phase].workers:
            return []
        if self._interrupting:
            return self._stop(phase_reason=Ending.INTERRUPTED)
        if self.spec.phases[event.phase].train:
            self.phase_step = PhaseStep.SAVING
            return [SaveBrains(event.phase)]
        return self._phase_ended()

    def _on_BrainsSaved(self, event: BrainsSaved) -> list[Command]:
        if not self._in_phase(event.phase, PhaseStep.SAVING):
            return []
        return self._phase_ended()

    def phase_reason(self) -> str:
        """Why the current phase ended: "completed" when every worker ran all its
        episodes, else the conditions' reasons (workers are asked separately)."""
        reasons = sorted({d.reason for d in self._workers_done.values()} - {Ending.EPISODES})
        return ",".join(reasons) or Ending.COMPLETED

    def _summarise(self, reason: str) -> None:
        """Add the current phase, as its workers reported it, to :attr:`history`."""
        phase = self.spec.phases[self.phase]
        done = [self._workers_done[w] for w in sorted(self._workers_done)]
        returns: dict[str, list[float]] = {}
        for worker in done:
            for agent, values in worker.returns.items():
                returns.setdefault(agent, []).extend(values)
        episodes, steps = sum(d.episodes for d in done), sum(d.steps for d in done)
        self.history.append(PhaseSummary(phase.name, phase.mode, reason, episodes, steps, returns))

    def _phase_ended(self) -> list[Command]:
        reason = self.phase_reason()
        self._summarise(reason)
        ended = RecordPhaseEnded(self.phase, reason)
        by_worker = next((d for w, d in sorted(self._workers_done.items()) if d.ends_run), None)
        if by_worker is not None:  # a worker's run-level condition already ended the run
            self.ended_by_worker = by_worker.worker
            return [ended, *self._finish_run(by_worker.reason)]
        self.phase_step = PhaseStep.CHECKING
        return [ended, CheckRun(self.phase)]

    def _on_RunChecked(self, event: RunChecked) -> list[Command]:
        if not self._in_phase(event.phase, PhaseStep.CHECKING):
            return []
        if event.reason is None and self.phase + 1 < len(self.spec.phases):
            return self._enter_phase(self.phase + 1)
        return self._finish_run(event.reason)

    def _finish_run(self, reason: str | None) -> list[Command]:
        self.outcome = Outcome.FINISHED
        self.end_reason = reason
        self.phase_step = None
        self.state = RunState.STOPPING
        return [StopChildren(controller_grace=not self.store_failed)]

    def _enter_phase(self, index: int, *, record: bool = True) -> list[Command]:
        self.phase, self.phase_step = index, PhaseStep.SETTING_UP
        self._workers_done.clear()
        self._restarting.clear()
        return [RecordPhaseStarted(index), SetupPhase(index)] if record else [SetupPhase(index)]

    def _stop(self, *, phase_reason: str) -> list[Command]:
        commands: list[Command] = []
        if self.state is RunState.RUNNING and self.phase_step not in (None, PhaseStep.CHECKING):
            commands.append(RecordPhaseEnded(self.phase, phase_reason))  # (a checked phase has ended)
            if len(self._workers_done) == self.spec.phases[self.phase].workers:
                self._summarise(phase_reason)  # every worker reported: what it ran is known
        self.phase_step = None
        self.state = RunState.STOPPING
        commands.append(StopChildren(controller_grace=not self.store_failed))
        return commands

    # -- guards -------------------------------------------------------------------

    def _in_phase(self, phase: int, step: PhaseStep) -> bool:
        return self.state is RunState.RUNNING and self.phase == phase and self.phase_step is step

    def _expect(self, event: Any, state: RunState) -> None:
        if self.state is not state:
            raise RuntimeError(f"{type(event).__name__} arrived in state {self.state.name}")


def _signal_name(code: int) -> str | None:
    """The name of the signal that killed a process (exit code ``-signal``), if one did."""
    if code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return None
