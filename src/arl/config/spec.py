"""What an experiment file says, in two layers: the *specs* here, the file schema in
:mod:`arl.config.filemodels`.

The *file schema* (``*File`` pydantic models) mirrors the YAML keys one to one, so that
pydantic's error locations are paths into the document and can be mapped back to lines.
The *specs* (frozen dataclasses) are what the rest of arl consumes: normalised, defaults
filled in, inheritance between phases already applied. Keeping them apart lets the file
vocabulary follow palaestrAI's while the specs stay convenient to use (and a process that
only runs a spec never imports pydantic for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arl.state.snapshot import NAME_FORMAT

# --------------------------------------------------------------------------- specs

DEFAULT_STATE_DIR = "arl-states"
SAVE_SIGNALS = ("SIGUSR1", "SIGUSR2", "SIGHUP")
"""The signals a file may save on; SIGINT and SIGTERM stop a run, the rest are not arl's to take."""


@dataclass(frozen=True)
class ClassRef:
    """A user class named in the file, and the keyword arguments to construct it with."""

    entry_point: str  # always "module:Class"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvironmentSpec:
    """One environment of a phase; ``uid`` qualifies its sensor and actuator ids."""

    uid: str
    entry: ClassRef


@dataclass(frozen=True)
class LoadSpec:
    """Where an agent's brain starts from: a brain saved at the end of an earlier phase.

    ``run`` is None for this run; ``phase`` is None only when ``run`` is given (the store
    then picks that run's last phase).
    """

    phase: str | None
    agent: str
    run: str | None = None


@dataclass(frozen=True)
class LearnerSpec:
    """A central learner (the agent's ``learner``): the brain trains in a process of its
    own, at most ``max_train_frequency`` updates a second (None: as fast as it can),
    from ``minimum_buffer_size`` transitions on, and sends its policy to the inference
    servers every ``broadcast_period`` seconds."""

    max_train_frequency: float | None = None
    minimum_buffer_size: int = 1
    broadcast_period: float = 0.1
    device: str = "cpu"
    max_steps_per_update: float | None = None  # the workers wait rather than run further ahead


@dataclass(frozen=True)
class InferenceSpec:
    """Central inference (the agent's ``inference``): ``servers`` processes act for the
    agent, each for a share of the workers, gathering requests up to ``batchsize``
    (None: one from every worker it serves) or for ``delay`` seconds, then running the
    policy once on the batch, on ``device``."""

    servers: int = 1
    batchsize: int | None = None
    delay: float = 0.0
    device: str = "cpu"


@dataclass(frozen=True)
class AgentSpec:
    """One agent: its brain, muscle and objective, and the qualified ids it sees and drives.

    ``learner``/``inference``: SEED-style acting; either one makes the agent central (a
    learner process and inference servers), the other then takes its defaults."""

    name: str
    brain: ClassRef
    muscle: ClassRef
    objective: ClassRef
    sensors: tuple[str, ...]
    actuators: tuple[str, ...]
    load: LoadSpec | None = None
    learner: LearnerSpec | None = None
    inference: InferenceSpec | None = None

    @property
    def central(self) -> bool:
        return self.learner is not None or self.inference is not None


@dataclass(frozen=True)
class SimulationSpec:
    """Which agents act in each step (an :class:`arl.simulation.Simulation`), and when an
    episode or the phase ends."""

    name: str  # as the file wrote it: a word of arl.simulation.BUILT_IN, or "module:Class"
    entry: ClassRef
    conditions: tuple[ClassRef, ...]


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of the schedule, with everything it inherited already filled in."""

    name: str
    index: int
    mode: str  # "train" | "test"
    episodes: int
    workers: int
    max_steps: int | None
    environments: tuple[EnvironmentSpec, ...]
    agents: tuple[AgentSpec, ...]
    simulation: SimulationSpec
    envs_per_worker: int = 1  # copies of the environments each controller steps (each a worker of its own)

    @property
    def actors(self) -> int:
        """The phase's workers as the store and the agents count them: each copy of the
        environments a controller steps is one (``workers`` x ``envs_per_worker``)."""
        return self.workers * self.envs_per_worker

    @property
    def train(self) -> bool:
        """Whether brains learn in this phase."""
        return self.mode == "train"


ENV_LAYOUTS = ("in_controller", "own")


@dataclass(frozen=True)
class ProcessLayout:
    """How a run's components are spread over processes (the file's ``processes``).

    ``environments``: ``in_controller`` runs each worker's environments inside its
    simulation controller (a direct call a step, no round trip); ``own`` gives each
    environment of each worker a process of its own. ``agents``: how many processes
    host the agents, dealt to them in order of first appearance in the file."""

    environments: str = "in_controller"
    agents: int = 1


@dataclass(frozen=True)
class RestartSpec:
    """The file's ``restart``: a worker whose controller or environment process dies is
    restarted, at most ``max`` times within any ``within`` seconds (more fails the run)."""

    max: int
    within: float


@dataclass(frozen=True)
class SaveSpec:
    """The file's ``state.save``: when to snapshot a live run. Any rule that is due saves;
    a save (for whatever reason) restarts every rule's count. ``table()`` is what
    :func:`arl.state.conditions.from_save` takes for the built-in rules; ``conditions``
    are the user's :class:`~arl.state.conditions.SaveCondition` classes beside them, and
    ``on_signal`` the name of the signal that saves (``signal.Signals[on_signal]``)."""

    every_seconds: float | None = None  # of the run's scaled clock
    every_steps: int | None = None  # of the whole run, all workers together
    every_episodes: int | None = None  # of the whole run
    at_phase_end: bool = False
    on_signal: str | None = None  # one of SAVE_SIGNALS
    conditions: tuple[ClassRef, ...] = ()

    def table(self) -> dict[str, Any]:
        """The built-in rules given, as ``from_save`` reads them."""
        rules: dict[str, Any] = {
            "every_seconds": self.every_seconds,
            "every_steps": self.every_steps,
            "every_episodes": self.every_episodes,
        }
        table = {key: value for key, value in rules.items() if value is not None}
        if self.at_phase_end:
            table["at_phase_end"] = True
        return table


@dataclass(frozen=True)
class KeepSpec:
    """The file's ``state.keep``: which snapshots stay (nothing given: all of them).
    Either the built-in rules (``table()``, for :func:`arl.state.keepers.from_keep`) or a
    ``keeper`` of the user's (a :class:`~arl.state.keepers.StatesKeeper`), never both."""

    latest: int | None = None
    every_hours: float | None = None
    max_total_mb: float | None = None
    keeper: ClassRef | None = None

    def table(self) -> dict[str, float]:
        """The built-in rules given, as ``from_keep`` reads them (empty: keep all)."""
        rules = {"latest": self.latest, "every_hours": self.every_hours, "max_total_mb": self.max_total_mb}
        return {key: value for key, value in rules.items() if value is not None}


@dataclass(frozen=True)
class StateSpec:
    """The file's ``state``: snapshots go to ``<dir>/<run uid>/<name>``, ``dir`` as
    written (relative to arl-run's working directory unless absolute), each named by
    ``name_format`` (strftime, UTC; see :func:`arl.state.snapshot.snapshot_name`)."""

    dir: str = DEFAULT_STATE_DIR
    name_format: str = NAME_FORMAT
    save: SaveSpec = SaveSpec()
    keep: KeepSpec = KeepSpec()


@dataclass(frozen=True)
class ControlSpec:
    """The file's ``control``: how long (``pause_timeout`` seconds) every worker has to
    acknowledge a pause, how many times (``pause_attempts``) a pause is tried, resuming
    between attempts, and how many commands the control API queues (``queue_size``)."""

    pause_timeout: float = 5.0
    pause_attempts: int = 3
    queue_size: int = 16


@dataclass(frozen=True)
class RunSpec:
    """A whole experiment run: ``document`` is the file after inheritance (and its
    overrides) as plain JSON-able data, as the store keeps it."""

    uid: str
    experiment_uid: str | None
    seed: int
    version: int
    phases: tuple[PhaseSpec, ...]
    document: dict[str, Any]
    conditions: tuple[ClassRef, ...] = ()  # run-level termination conditions
    processes: ProcessLayout = ProcessLayout()
    restart: RestartSpec | None = None  # None: a dead worker fails the run
    state: StateSpec | None = None  # None: the file has no 'state' key
    control: ControlSpec = ControlSpec()
    time_scale: float = 1.0  # how fast arl.time runs against the machine's clock
    max_uptime: float | None = None  # seconds; None: no limit
    statistics_interval: float | None = None  # seconds; None: no periodic statistics
    # A --sweep's values this run was made with ({"dotted.key": value}, stored in
    # experiment_runs.swept); None for a run no sweep made.
    swept: dict[str, Any] | None = None
