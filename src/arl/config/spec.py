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

# --------------------------------------------------------------------------- specs


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
class AgentSpec:
    """One agent: its brain, muscle and objective, and the qualified ids it sees and drives."""

    name: str
    brain: ClassRef
    muscle: ClassRef
    objective: ClassRef
    sensors: tuple[str, ...]
    actuators: tuple[str, ...]
    load: LoadSpec | None = None


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


# --------------------------------------------------------------------------- file schema

DEFAULT_CONDITION = "arl.conditions:EnvironmentDone"

MIN_INT, MAX_INT = -(2**63), 2**64 - 1
"""Integers anywhere in a file: what the wire (msgpack) carries."""
MAX_SEED = 2**63 - 1
"""The store keeps a run's seed in a signed 64-bit column; numpy wants it not negative."""
MAX_COUNT = 2**31 - 1
"""Episodes and steps: the store counts them in 32-bit columns."""
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


class AgentFile(_FileModel):
    name: str = Field(min_length=1)
    brain: ClassRefFile
    muscle: ClassRefFile
    objective: ClassRefFile
    sensors: list[str] = Field(default_factory=list)
    actuators: list[str] = Field(default_factory=list)
    load: LoadFile | None = None


class SimulationFile(_FileModel):
    name: str = Field(min_length=1)
    params: dict[str, Any] | None = None
    conditions: list[ClassRefFile] | None = None


class PhaseConfigFile(_FileModel):
    mode: Literal["train", "test"] = "train"
    episodes: int = Field(default=1, ge=1, le=MAX_COUNT)
    workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS)
    worker: int | None = Field(default=None, ge=1, le=MAX_WORKERS)  # palaestrAI's spelling
    max_steps: int | None = Field(default=None, ge=1, le=MAX_COUNT)


class PhaseFile(_FileModel):
    """One phase after inheritance: the three sections are required by then."""

    environments: list[EnvironmentEntryFile] = Field(min_length=1)
    agents: list[AgentFile]
    simulation: SimulationFile
    phase_config: PhaseConfigFile | None = None


class ProcessesFile(_FileModel):
    environments: Literal["in_controller", "own"] = "in_controller"
    agents: int = Field(default=1, ge=1, le=MAX_AGENT_PROCESSES)


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
