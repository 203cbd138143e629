"""What an experiment file says, in two layers.

The *file schema* (``*File`` pydantic models) mirrors the YAML keys one to one, so that
pydantic's error locations are paths into the document and can be mapped back to lines.
The *specs* (frozen dataclasses) are what the rest of arl consumes: normalised, defaults
filled in, inheritance between phases already applied. Keeping them apart lets the file
vocabulary follow palaestrAI's while the specs stay convenient to use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


# --------------------------------------------------------------------------- file schema

DEFAULT_CONDITION = "arl.conditions:EnvironmentDone"

MIN_INT, MAX_INT = -(2**63), 2**64 - 1
"""Integers anywhere in a file: what the wire (msgpack) carries."""
MAX_SEED = 2**63 - 1
"""The store keeps a run's seed in a signed 64-bit column; numpy wants it not negative."""
MAX_COUNT = 2**31 - 1
"""Episodes and steps: the store counts them in 32-bit columns."""
MAX_ENVS_PER_WORKER = 256
"""Copies of the environments one controller steps, each a worker of its own."""
MAX_AGENT_PROCESSES = 256
"""More agent processes than agents are not started (each hosts at least one agent)."""
MAX_WORKERS = 256
"""Each worker is a process per environment and a controller: far more than a machine's
cores only makes a run slower (and can exhaust its processes and file descriptors)."""


class _FileModel(BaseModel):
    """Strict: an experiment file should say ``3``, not ``"3"`` or ``3.0``; unknown keys
    are mistakes (typos), not extensions."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class ClassRefFile(_FileModel):
    name: str = Field(min_length=1)
    params: dict[str, Any] | None = None


class EnvironmentFile(_FileModel):
    name: str = Field(min_length=1)
    uid: str = Field(min_length=1)
    params: dict[str, Any] | None = None


class EnvironmentEntryFile(_FileModel):
    environment: EnvironmentFile


class LoadFile(_FileModel):
    phase: str | None = Field(default=None, min_length=1)
    agent: str | None = Field(default=None, min_length=1)
    run: str | None = Field(default=None, min_length=1)


DEVICE_PATTERN = r"^(cpu|cuda(:[0-9]{1,3})?|mps)$"
MAX_INFERENCE_SERVERS = 64


class LearnerFile(_FileModel):
    max_train_frequency: float | int | None = Field(default=None, gt=0, allow_inf_nan=False)
    minimum_buffer_size: int = Field(default=1, ge=1, le=MAX_COUNT)
    broadcast_period: float | int = Field(default=0.1, gt=0, le=3600, allow_inf_nan=False)
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN)
    max_steps_per_update: float | int | None = Field(default=None, gt=0, allow_inf_nan=False)


class InferenceFile(_FileModel):
    servers: int = Field(default=1, ge=1, le=MAX_INFERENCE_SERVERS)
    batchsize: int | None = Field(default=None, ge=1, le=65536)
    delay: float | int = Field(default=0.0, ge=0, le=10, allow_inf_nan=False)
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN)


class AgentFile(_FileModel):
    name: str = Field(min_length=1)
    brain: ClassRefFile
    muscle: ClassRefFile
    objective: ClassRefFile
    sensors: list[str] = Field(default_factory=list)
    actuators: list[str] = Field(default_factory=list)
    load: LoadFile | None = None
    learner: LearnerFile | None = None
    inference: InferenceFile | None = None


class SimulationFile(_FileModel):
    name: str = Field(min_length=1)
    params: dict[str, Any] | None = None
    conditions: list[ClassRefFile] | None = None


class PhaseConfigFile(_FileModel):
    mode: Literal["train", "test"] = Field(
        default="train", description="train: brains learn and are saved at the phase's end; test: they only act."
    )
    episodes: int = Field(
        default=1, ge=1, le=MAX_COUNT,
        description="Episodes EACH WORKER runs (the phase runs episodes x workers in all, "
        "x envs_per_worker with copies), unless a phase condition ends it first.",
        examples=[10],
    )  # fmt: skip
    workers: int | None = Field(
        default=None, ge=1, le=MAX_WORKERS,
        description="Workers stepping the phase side by side, each in a controller process of its own with its own "
        "instances of the environments (default 1).",
    )  # fmt: skip
    worker: int | None = Field(default=None, ge=1, le=MAX_WORKERS, description="palaestrAI's spelling of workers.")
    max_steps: int | None = Field(
        default=None, ge=1, le=MAX_COUNT, description="Steps an episode takes at most (none: the environment ends it)."
    )
    envs_per_worker: int = Field(
        default=1, ge=1, le=MAX_ENVS_PER_WORKER,
        description="Copies of the environments each worker's controller steps together, each a worker of its own in "
        "the store (needs the environments in the controller).",
    )  # fmt: skip


class PhaseFile(_FileModel):
    """One phase after inheritance: the three sections are required by then."""

    environments: list[EnvironmentEntryFile] = Field(min_length=1)
    agents: list[AgentFile]
    simulation: SimulationFile
    phase_config: PhaseConfigFile | None = None


class RestartFile(_FileModel):
    max: int = Field(ge=1, le=1_000_000)
    within: float | int = Field(gt=0, le=10**9, allow_inf_nan=False)


class ProcessesFile(_FileModel):
    environments: Literal["in_controller", "own"] = "in_controller"
    agents: int = Field(default=1, ge=1, le=MAX_AGENT_PROCESSES)


class SaveFile(_FileModel):
    """Ranges as :func:`arl.state.conditions.from_save` accepts them (a test holds them to it).
    ``float``, not ``float | int``: strict, it takes an integer too, and a wrong value is
    one problem, not one per member of the union."""

    every_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    every_steps: int | None = Field(default=None, ge=1)
    every_episodes: int | None = Field(default=None, ge=1)
    at_phase_end: bool = False
    # A string, checked beside the schema (statekeys) to say why another signal is refused.
    on_signal: str | None = Field(default=None, json_schema_extra={"enum": [*SAVE_SIGNALS, None]})
    conditions: list[ClassRefFile] | None = None


class KeepFile(_FileModel):
    """Ranges as :func:`arl.state.keepers.from_keep` accepts them (a test holds them to it)."""

    latest: int | None = Field(default=None, ge=1)
    every_hours: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_total_mb: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    keeper: ClassRefFile | None = None


class StateFile(_FileModel):
    dir: str = Field(default=DEFAULT_STATE_DIR, min_length=1)
    name_format: str = Field(default=NAME_FORMAT, min_length=1)
    save: SaveFile | None = None
    keep: KeepFile | None = None


class ControlFile(_FileModel):
    pause_timeout: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    pause_attempts: int = Field(default=3, ge=1)
    queue_size: int = Field(default=16, ge=1)


class RunFile(_FileModel):
    """The top level; phases are validated one by one (after inheritance) as PhaseFile."""

    uid: str = Field(min_length=1)
    experiment_uid: str | None = Field(default=None, min_length=1)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    version: int = 1
    schedule: list[Any] = Field(min_length=1)
    conditions: list[ClassRefFile] | None = None  # run-level termination conditions
    run_config: dict[str, Any] | None = None  # palaestrAI's; kept in the document, unused
    processes: ProcessesFile | None = None
    restart: RestartFile | None = None
    state: StateFile | None = None
    control: ControlFile | None = None
    time_scale: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    max_uptime: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    statistics_interval: float | None = Field(default=None, gt=0, allow_inf_nan=False)
