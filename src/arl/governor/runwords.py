"""The run machine's words: its states, the events it is fed and the commands it
returns (:mod:`arl.governor.machine` is the machine; it re-exports all of these, so
``machine.WorkerDone`` and the like keep working)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from arl.conditions import PhaseSummary
from arl.status import RunStatus

__all__ = [
    "Begin",
    "BrainsSaved",
    "CheckRun",
    "ChildExited",
    "ChildrenStarted",
    "ChildrenStopped",
    "Command",
    "Event",
    "Failed",
    "Finish",
    "InterruptWorkers",
    "Outcome",
    "PhaseSetUp",
    "PhaseStep",
    "RecordEvent",
    "RecordPhaseEnded",
    "RecordPhaseStarted",
    "RecordRunStarted",
    "ReportDeath",
    "RestartWorker",
    "ResumePoint",
    "ResumeWorker",
    "RunChecked",
    "RunRecorded",
    "RunState",
    "RunWorkers",
    "SaveBrains",
    "SetupPhase",
    "StartChildren",
    "StopChildren",
    "StopRequested",
    "WorkerDone",
    "WorkerRestarted",
    "replaced",
]

RunState = RunStatus  # the machine's state is the run's status (arl.status)


class PhaseStep(enum.Enum):
    SETTING_UP = "SETTING_UP"
    STEPPING = "STEPPING"
    SAVING = "SAVING"
    CHECKING = "CHECKING"


Outcome = RunStatus  # how a run ended: FINISHED, INTERRUPTED or FAILED


# ---- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    pass


@dataclass(frozen=True)
class ChildrenStarted:
    pass


@dataclass(frozen=True)
class PhaseSetUp:
    phase: int


@dataclass(frozen=True)
class WorkerDone:
    phase: int
    worker: int
    episodes: int
    steps: int
    reason: str  # "episodes", "interrupted" or a condition's reason
    ends_run: bool = False  # the reason came from a run-level condition
    returns: dict[str, list[float]] = field(default_factory=dict)  # per agent, each episode's return


@dataclass(frozen=True)
class RunChecked:
    """The run-level conditions were asked after a phase; ``reason`` if one fired."""

    phase: int
    reason: str | None


@dataclass(frozen=True)
class BrainsSaved:
    phase: int


@dataclass(frozen=True)
class Failed:
    """Anything that makes the run fail: a crashed component, a dead process, a timeout.
    ``store``: the store itself failed (it takes no more records)."""

    error: str
    store: bool = False


@dataclass(frozen=True)
class RunRecorded:
    """The store answered the run's start record: ``run_id`` None if it dropped it;
    ``store_failed`` if the store had failed by then (its failure may still be on its way)."""

    run_id: int | None
    store_failed: bool = False


@dataclass(frozen=True)
class ChildExited:
    """A child process ended: ``stop_requested`` if the shell had asked it to; ``at``
    when the shell saw it (monotonic seconds: restarts are counted in a time window)."""

    role: str
    name: str
    code: int
    stop_requested: bool
    at: float = 0.0


@dataclass(frozen=True)
class WorkerRestarted:
    """A dead worker's processes run again and its environments are set up. For each
    copy of its environments (one, unless ``envs_per_worker``), the store holds
    ``episodes`` episodes it ended before it died and ``steps`` steps of it (the cut
    episode's too), and its next episode is numbered ``first_episode``."""

    phase: int
    worker: int
    first_episode: tuple[int, ...]
    episodes: tuple[int, ...]
    steps: tuple[int, ...]


@dataclass(frozen=True)
class StopRequested:
    reason: str


@dataclass(frozen=True)
class ChildrenStopped:
    pass


Event = (
    Begin
    | ChildrenStarted
    | PhaseSetUp
    | WorkerDone
    | BrainsSaved
    | RunChecked
    | Failed
    | StopRequested
    | ChildrenStopped
    | RunRecorded
    | ChildExited
    | WorkerRestarted
)

# ---- commands -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordRunStarted:
    pass


@dataclass(frozen=True)
class StartChildren:
    pass


@dataclass(frozen=True)
class SetupPhase:
    phase: int


@dataclass(frozen=True)
class RunWorkers:
    phase: int


@dataclass(frozen=True)
class InterruptWorkers:
    """Ask every worker's controller to end its phase at a step boundary, except those
    of the workers in ``restarting``: their processes are being replaced, and a stop
    sent to a new one would end it before it is set up (the restart gives up instead,
    and the worker counts as interrupted when it answers :class:`WorkerRestarted`)."""

    restarting: tuple[int, ...] = ()


@dataclass(frozen=True)
class SaveBrains:
    phase: int


@dataclass(frozen=True)
class RecordPhaseStarted:
    phase: int


@dataclass(frozen=True)
class RecordPhaseEnded:
    phase: int
    reason: str


@dataclass(frozen=True)
class CheckRun:
    """Ask the run-level conditions about :attr:`RunMachine.history`, now that phase
    ``phase`` has ended."""

    phase: int


@dataclass(frozen=True)
class StopChildren:
    """Stop every child, controllers first; ``controller_grace`` False when the store has
    failed: a controller's records can no longer be stored, so it is not waited for."""

    controller_grace: bool = True


@dataclass(frozen=True)
class RecordEvent:
    """Store an event of the run (``events`` table): a failure, a stop request, the
    run-level condition that ended the run."""

    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class ReportDeath:
    """A child died while the run needed it: say which, how, and its last lines (the
    shell knows them), as the run's failure. ``note``: why it was not restarted, when
    the run has a restart policy."""

    label: str
    code: int
    note: str = ""


@dataclass(frozen=True)
class RestartWorker:
    """Process ``label`` of worker ``worker`` died (``code``): replace it (and the
    worker's controller, when an environment process died), set the worker's
    environments up again, end its open episode ``worker-died`` in the store, and answer
    :class:`WorkerRestarted`. ``restarts``: the run's restarts so far, this one included."""

    phase: int
    worker: int
    label: str
    code: int
    restarts: int


@dataclass(frozen=True)
class ResumeWorker:
    """Run ``episodes`` more episodes of the phase on a restarted worker, numbered from
    ``first_episode``, its counts going on from ``episodes_before`` and ``steps_before``
    (like :class:`RunWorkers`, for one worker): each a tuple, one value a copy of its
    environments."""

    phase: int
    worker: int
    first_episode: tuple[int, ...]
    episodes: tuple[int, ...]
    episodes_before: tuple[int, ...]
    steps_before: tuple[int, ...]


@dataclass(frozen=True)
class Finish:
    outcome: Outcome
    error: str | None
    reason: str  # "completed", a run-level condition's reason, "failed" or "interrupted"


Command = (
    RecordRunStarted
    | StartChildren
    | SetupPhase
    | RunWorkers
    | InterruptWorkers
    | SaveBrains
    | RecordPhaseStarted
    | RecordPhaseEnded
    | CheckRun
    | StopChildren
    | RecordEvent
    | ReportDeath
    | RestartWorker
    | ResumeWorker
    | Finish
)


def replaced(label: str, worker: int) -> list[str]:
    """The processes a restart replaces after process ``label`` of ``worker`` died: that
    one, and for an environment process also the worker's controller, which would wait
    for its dead peer forever. (A dead controller's environment processes live on: they
    are set up again.)"""
    controller = f"controller:{worker}"
    return [label] if label == controller else [label, controller]


@dataclass(frozen=True)
class ResumePoint:
    """Where a snapshot left the run: in ``phase``, after the ended phases ``history``,
    with the workers in ``done`` already through it (the others go on from the snapshot)."""

    phase: int
    history: tuple[PhaseSummary, ...] = ()
    done: dict[int, WorkerDone] = field(default_factory=dict)
