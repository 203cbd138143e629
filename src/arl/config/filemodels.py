"""The experiment file's schema: strict pydantic models that mirror its YAML keys one to
one (:mod:`arl.config.spec` has the specs the rest of arl runs from). Each field's
docstring is its description in the JSON Schema (``arl-run schema``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arl.config.spec import DEFAULT_STATE_DIR, SAVE_SIGNALS
from arl.state.snapshot import NAME_FORMAT

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
    are mistakes (typos), not extensions. The docstring under a field is its description in
    the JSON Schema (``arl-run schema``), which editors show on hover: write it for the
    file's author. A model's docstring describes its mapping there too; notes for arl's
    developers go in comments."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)


class ClassRefFile(_FileModel):
    """A class reference: the class to build, and the keyword arguments to build it with."""

    name: str = Field(min_length=1, examples=["arl.dummy:DummyBrain", "arl.conditions:MaxSteps"])
    """The class, module:Class (or module.Class). The module is imported as Python imports it: from what is
    installed, PYTHONPATH, the experiment file's folder and the folders of the top-level paths."""
    params: dict[str, Any] | None = Field(default=None, examples=[{"steps": 100}, {"key": "env.reward", "weight": 0.5}])
    """Keyword arguments for the class's constructor (default none); each value is checked against the
    annotation of its parameter, strictly (3 is no string, "3" no integer)."""


class EnvironmentFile(_FileModel):
    """One environment: its class, its id in the phase and its constructor's arguments."""

    name: str = Field(min_length=1, examples=["arl.dummy:DummyEnvironment", "gym:CartPole-v1"])
    """The class, module:Class (or module.Class), a subclass of arl.api.Environment; gym:<id> runs a registered
    Gymnasium environment (gym:module:Env-v0 for another package's) and pettingzoo:<env> a PettingZoo one."""
    uid: str = Field(min_length=1, examples=["env", "cartpole"])
    """The environment's id, unique in the phase: 1 to 100 ASCII letters, digits, _ and - (no dot). Its sensor
    and actuator ids are qualified by it: env.s0 is sensor s0 of environment env."""
    params: dict[str, Any] | None = Field(default=None, examples=[{"sensors": 10}, {"max_episode_steps": 200}])
    """Keyword arguments for the class's constructor (default none); with gym:<id> they go to gymnasium.make,
    with pettingzoo:<env> (but api: parallel or aec) to the function that builds the environment."""


class EnvironmentEntryFile(_FileModel):
    """An entry of a phase's environments list, palaestrAI's layout: {environment: {...}}."""

    environment: EnvironmentFile = Field(
        examples=[{"name": "arl.dummy:DummyEnvironment", "uid": "env", "params": {"sensors": 10}}]
    )
    """The environment: its class (name), its id in the phase (uid) and its constructor's arguments (params)."""


class LoadFile(_FileModel):
    """Start the agent's brain from one saved at the end of an earlier phase, of this run or another."""

    phase: str | None = Field(default=None, min_length=1, examples=["phase_0", "train"])
    """The phase whose saved brain to start from; without run, an earlier phase of this file. Required unless
    run is given (then default: that run's last phase)."""
    agent: str | None = Field(default=None, min_length=1, examples=["defender"])
    """The agent whose brain to load (default: this agent's name)."""
    run: str | None = Field(default=None, min_length=1, examples=["dummy-run"])
    """Another run's uid (or id) in the store to load from (default: this run); arl-run run checks that the
    store has the brain before it starts anything."""


DEVICE_PATTERN = r"^(cpu|cuda(:[0-9]{1,3})?|mps)$"
MAX_INFERENCE_SERVERS = 64


class LearnerFile(_FileModel):
    """Train the agent's brain in a learner process of its own (SEED-style): the agent becomes central for the
    whole run, and each key left out takes its default."""

    max_train_frequency: float | int | None = Field(default=None, gt=0, allow_inf_nan=False, examples=[200])
    """Updates (Brain.train calls) a second at most; default none: as fast as it can."""
    minimum_buffer_size: int = Field(default=1, ge=1, le=MAX_COUNT, examples=[1000])
    """Transitions the brain must hold (Brain.buffer_size(); a loaded replay buffer counts) before the learner
    first trains in a phase; default 1. Only the first update waits for it."""
    broadcast_period: float | int = Field(default=0.1, gt=0, le=3600, allow_inf_nan=False, examples=[0.1, 0.02])
    """Seconds between policy broadcasts to the inference servers after updates (default 0.1, at most 3600); the
    latest policy also goes out every second regardless."""
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN, examples=["cpu", "cuda:0"])
    """Where the brain trains (Brain.device): cpu, cuda, cuda:<n> or mps; default cpu. A device that is not
    there fails the phase's setup."""
    max_steps_per_update: float | int | None = Field(default=None, gt=0, allow_inf_nan=False, examples=[2])
    """Environment steps the workers of a train phase may run ahead of the learner per update (2 is a replay
    ratio of 0.5); default none: the workers never wait."""


class InferenceFile(_FileModel):
    """Act through inference servers that batch the workers' requests (SEED-style): the agent becomes central
    for the whole run, and each key left out takes its default."""

    servers: int = Field(default=1, ge=1, le=MAX_INFERENCE_SERVERS, examples=[2])
    """Inference processes acting for this agent, each for a share of the workers (1 to 64, default 1)."""
    batchsize: int | None = Field(default=None, ge=1, le=65536, examples=[8])
    """The most requests one policy call takes (1 to 65536); default: one from every controller the server
    answers. It counts requests, not observations: a controller stepping envs_per_worker K copies sends one
    request of K observations."""
    delay: float | int = Field(default=0.0, ge=0, le=10, allow_inf_nan=False, examples=[0.002])
    """Seconds a server waits for a fuller batch (0 to 10); default 0: it takes what is waiting."""
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN, examples=["cpu", "cuda:1"])
    """Where the muscles run the policy (Muscle.device): cpu, cuda, cuda:<n> or mps; default cpu. A device that
    is not there fails the phase's setup."""


class AgentFile(_FileModel):
    """One agent: its brain (the learner), muscle (the policy), objective, and the ids it reads and drives."""

    name: str = Field(min_length=1, examples=["defender", "balancer"])
    """The agent's name, unique in the phase: 1 to 100 ASCII letters, digits, _, - and . (not first)."""
    brain: ClassRefFile = Field(
        examples=[{"name": "arl.dummy:DummyBrain"}, {"name": "arl.agents.dqn:DQNBrain", "params": {}}]
    )
    """The learner: a class reference to a subclass of arl.api.Brain."""
    muscle: ClassRefFile = Field(examples=[{"name": "arl.dummy:DummyMuscle"}, {"name": "arl.agents.dqn:DQNMuscle"}])
    """The acting policy: a class reference to a subclass of arl.api.Muscle (one per worker)."""
    objective: ClassRefFile = Field(
        examples=[{"name": "arl.dummy:DummyObjective"}, {"name": "arl.objectives:RewardOf", "params": {"key": "env.r"}}]
    )
    """Makes the rewards the agent receives into the one number it strives for: a class reference to a
    subclass of arl.api.Objective."""
    sensors: list[str] = Field(default_factory=list, examples=[["env.s0", "env.s1"], ["cartpole.obs"]])
    """The sensor ids the agent reads, each <environment uid>.<id>; default none."""
    actuators: list[str] = Field(default_factory=list, examples=[["env.a0"], ["cartpole.action"]])
    """The actuator ids the agent drives, each <environment uid>.<id>; default none."""
    load: LoadFile | None = Field(default=None, examples=[{"phase": "phase_0"}, {"run": "dummy-run", "phase": "train"}])
    """Start from a brain saved at the end of an earlier phase (of this run, or of another with run); default
    none."""
    learner: LearnerFile | None = Field(
        default=None, examples=[{"max_train_frequency": 200, "minimum_buffer_size": 1000, "device": "cpu"}]
    )
    """Train the brain in a learner process of its own (SEED-style); with learner or inference the agent is
    central for the whole run, and the one not given takes its defaults."""
    inference: InferenceFile | None = Field(default=None, examples=[{"servers": 2, "batchsize": 8, "delay": 0.002}])
    """Act through inference servers that batch the workers' requests (SEED-style); with learner or inference
    the agent is central for the whole run, and the one not given takes its defaults."""


class SimulationFile(_FileModel):
    """How the phase's environments are stepped (which agents act each step) and when episodes end."""

    name: str = Field(min_length=1, examples=["vanilla", "taking_turns"])
    """vanilla (every agent acts on every step), taking_turns (one agent a step, in the file's order), or a class
    of your own, module:Class, subclassing arl.simulation.Simulation."""
    params: dict[str, Any] | None = Field(default=None, examples=[{"period": 3}])
    """Keyword arguments for a simulation class of your own (the built-ins take none); default none."""
    conditions: list[ClassRefFile] | None = Field(
        default=None,
        examples=[
            [{"name": "arl.conditions:EnvironmentDone"}, {"name": "arl.conditions:MaxSteps", "params": {"steps": 10}}]
        ],
    )
    """Termination conditions that end an episode or the phase (subclasses of arl.conditions.TerminationCondition);
    default [{name: arl.conditions:EnvironmentDone}]. Empty only together with phase_config.max_steps."""


class PhaseConfigFile(_FileModel):
    """The phase's mode, episodes (per worker), workers and step cap; merged key by key over the previous
    phase's."""

    mode: Literal["train", "test"] = Field(default="train", examples=["train", "test"])
    """train (the default): brains learn and are saved at the phase's end; test: they only act."""
    episodes: int = Field(default=1, ge=1, le=MAX_COUNT, examples=[10])
    """Episodes EACH WORKER runs (the phase runs episodes x workers in all, x envs_per_worker with copies),
    unless a phase condition ends it first; default 1."""
    workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS, examples=[4])
    """Workers stepping the phase side by side, each in a controller process of its own with its own instances
    of the environments (1 to 256, default 1; more than the machine's cores only slow a run)."""
    worker: int | None = Field(default=None, ge=1, le=MAX_WORKERS, examples=[4])
    """palaestrAI's spelling of workers (give one of the two, not both)."""
    max_steps: int | None = Field(default=None, ge=1, le=MAX_COUNT, examples=[100])
    """Steps an episode takes at most; default none: the environment or a condition ends it."""
    envs_per_worker: int = Field(default=1, ge=1, le=MAX_ENVS_PER_WORKER, examples=[8])
    """Copies of the environments each worker's controller steps together, each a worker of its own in the
    store (1 to 256, default 1; needs processes.environments: in_controller)."""


# Examples for the keys that nest them: a phase, and the schedule it is a part of.
_EXAMPLE_ENVIRONMENT = {"environment": {"name": "arl.dummy:DummyEnvironment", "uid": "env", "params": {"sensors": 10}}}
_EXAMPLE_AGENT = {
    "name": "defender",
    "brain": {"name": "arl.dummy:DummyBrain"},
    "muscle": {"name": "arl.dummy:DummyMuscle"},
    "objective": {"name": "arl.dummy:DummyObjective"},
    "sensors": ["env.s0"],
    "actuators": ["env.a0"],
}
_EXAMPLE_PHASE = {
    "environments": [_EXAMPLE_ENVIRONMENT],
    "agents": [_EXAMPLE_AGENT],
    "simulation": {"name": "vanilla"},
    "phase_config": {"mode": "train", "episodes": 5},
}


class PhaseFile(_FileModel):
    """One phase: its environments, agents, simulation and phase_config. A later phase states only what changes
    and inherits the rest from the phase before it."""

    # The loader validates a phase after inheritance, so these three are required here;
    # schema.py makes them optional in the JSON Schema, which sees the file as written.
    environments: list[EnvironmentEntryFile] = Field(min_length=1, examples=[[_EXAMPLE_ENVIRONMENT]])
    """The worlds the agents act in: a non-empty list of {environment: {...}} entries, uids unique in the phase.
    Required in the first phase; a later phase without it takes the previous phase's whole."""
    agents: list[AgentFile] = Field(examples=[[_EXAMPLE_AGENT], []])
    """The agents (the list may be empty), names unique in the phase. Required in the first phase; a later phase
    without it takes the previous phase's whole."""
    simulation: SimulationFile = Field(
        examples=[
            {"name": "vanilla"},
            {"name": "taking_turns", "conditions": [{"name": "arl.conditions:EnvironmentDone"}]},
        ]
    )
    """Which agents act in each step and when episodes end. Required in the first phase; a later phase without
    it takes the previous phase's whole."""
    phase_config: PhaseConfigFile | None = Field(
        default=None, examples=[{"mode": "train", "episodes": 5, "workers": 2, "max_steps": 100}, {"mode": "test"}]
    )
    """Mode, episodes (per worker), workers and step cap; merged key by key over the previous phase's (the first
    phase's defaults: train, 1 episode, 1 worker, no step cap)."""


class RestartFile(_FileModel):
    """Restart a worker whose controller or environment process dies, up to max times in any window of within
    seconds; without it, a dead process fails the run."""

    max: int = Field(ge=1, le=1_000_000, examples=[3])
    """Restarts allowed in any window of within seconds, counted over the whole run (all workers together); one
    more fails the run."""
    within: float | int = Field(gt=0, le=10**9, allow_inf_nan=False, examples=[60])
    """The length of that window, in seconds."""


class ProcessesFile(_FileModel):
    """How the run's components are spread over processes; nothing stored depends on it."""

    environments: Literal["in_controller", "own"] = Field(default="in_controller", examples=["in_controller", "own"])
    """in_controller (the default): each worker's environments run inside its simulation controller, called
    directly every step; own: every environment of every worker gets a process of its own."""
    agents: int = Field(default=1, ge=1, le=MAX_AGENT_PROCESSES, examples=[2])
    """How many processes host the agents (1 to 256, default 1; more than there are agents start one per agent),
    dealt to them in order of first appearance in the file."""


class SaveFile(_FileModel):
    """When to snapshot the live run: a snapshot is taken when any rule is due, and every rule counts again from
    the last snapshot, whatever took it. Without save, only when asked (the control API, max_uptime)."""

    # Ranges as arl.state.conditions.from_save accepts them (a test holds them to it).
    # ``float``, not ``float | int``: strict, it takes an integer too, and a wrong value
    # is one problem, not one per member of the union.
    every_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False, examples=[300])
    """Every so many seconds of the run's clock, which runs time_scale times as fast as the machine's and stands
    still while the run is paused."""
    every_steps: int | None = Field(default=None, ge=1, examples=[10000])
    """Every so many steps of the whole run (all workers together)."""
    every_episodes: int | None = Field(default=None, ge=1, examples=[5])
    """Every so many episodes of the whole run (all workers together)."""
    at_phase_end: bool = Field(default=False, examples=[True])
    """When a phase ends (default false)."""
    # A string, checked beside the schema (statekeys) to say why another signal is refused.
    on_signal: str | None = Field(default=None, json_schema_extra={"enum": [*SAVE_SIGNALS, None]}, examples=["SIGUSR1"])
    """When arl-run gets this signal (kill -USR1 <pid>): SIGUSR1, SIGUSR2 or SIGHUP; SIGINT and SIGTERM stop
    the run."""
    conditions: list[ClassRefFile] | None = Field(
        default=None, examples=[[{"name": "mypkg.saving:OnPlateau", "params": {"window": 100}}]]
    )
    """Save conditions of your own: subclasses of arl.state.conditions.SaveCondition (due(view) says whether to
    save now), each built with its params."""


class KeepFile(_FileModel):
    """Which snapshots stay (without keep: all). A snapshot stays if latest or every_hours keeps it (all, when
    neither is given), then max_total_mb removes the oldest of those; the newest always stays."""

    # Ranges as arl.state.keepers.from_keep accepts them (a test holds them to it).
    latest: int | None = Field(default=None, ge=1, examples=[10])
    """Keep the newest so many snapshots."""
    every_hours: float | None = Field(default=None, gt=0, allow_inf_nan=False, examples=[1, 24])
    """Keep the oldest snapshot of each window of so many hours, counted from the epoch (1: each UTC clock
    hour)."""
    max_total_mb: float | None = Field(default=None, gt=0, allow_inf_nan=False, examples=[500])
    """Then remove the oldest of those kept until the rest total at most this many MiB."""
    keeper: ClassRefFile | None = Field(default=None, examples=[{"name": "mypkg.keeping:KeepBest", "params": {}}])
    """A keeper of your own instead of latest, every_hours and max_total_mb (not beside them): a subclass of
    arl.state.keepers.StatesKeeper, built with its params."""


class StateFile(_FileModel):
    """Snapshots of the live run: where they go (<dir>/<run uid>/<name>), when they are taken and which stay."""

    dir: str = Field(default=DEFAULT_STATE_DIR, min_length=1, examples=["arl-states", "/scratch/arl-states"])
    """The folder snapshots go under, relative to arl-run's working directory unless absolute (~ and $VARS are
    not expanded); default arl-states. It need not exist."""
    name_format: str = Field(default=NAME_FORMAT, min_length=1, examples=[NAME_FORMAT, "snap-%Y%m%d-%H%M%S"])
    """A snapshot's name: a strftime format of the UTC time it is taken (default %Y%m%dT%H%M%S.%fZ). It must
    give a valid name (no :, / or space) and tell times a second apart: include the date and the seconds."""
    save: SaveFile | None = Field(default=None, examples=[{"every_seconds": 300, "at_phase_end": True}])
    """When to snapshot: any rule that is due saves. Without it, a snapshot is taken only when asked for (the
    control API, max_uptime)."""
    keep: KeepFile | None = Field(default=None, examples=[{"latest": 10, "every_hours": 1, "max_total_mb": 500}])
    """Which snapshots stay; without it, every snapshot stays."""


class ControlFile(_FileModel):
    """How the run is paused (to take a snapshot, or when the control API asks) and how many commands the
    control API holds."""

    pause_timeout: float = Field(default=5.0, gt=0, allow_inf_nan=False, examples=[5.0, 30])
    """Seconds every worker has to stop at its next step boundary and say so (default 5)."""
    pause_attempts: int = Field(default=3, ge=1, examples=[3])
    """How many times a pause is tried, resuming the workers between attempts, before it fails (default 3)."""
    queue_size: int = Field(default=16, ge=1, examples=[16])
    """Commands the control API queues; more are refused until it has taken some (default 16)."""


class RunFile(_FileModel):
    """An arl experiment file: one run of a schedule of phases (docs/experiment-file.md)."""

    # Phases are validated one by one (after inheritance) as PhaseFile, so schedule is list[Any].
    uid: str = Field(min_length=1, examples=["dummy-run"])
    """The run's name; the store keys the run by it. 1 to 100 ASCII letters, digits, _, - and . (not first)."""
    experiment_uid: str | None = Field(default=None, min_length=1, examples=["dummy"])
    """Groups runs that belong to one experiment; default none."""
    seed: int = Field(default=0, ge=0, le=MAX_SEED, examples=[42])
    """The run's seed, from which its components are seeded (0 to 2^63 - 1, default 0)."""
    version: int = Field(default=1, examples=[1])
    """The version of this file format; only 1 exists (palaestrAI's version strings do not apply)."""
    schedule: list[Any] = Field(
        min_length=1, examples=[[{"phase_0": _EXAMPLE_PHASE}, {"phase_1": {"phase_config": {"mode": "test"}}}]]
    )
    """The phases, run in order: each entry is {<phase name>: {...}}, names unique. A later phase states only
    what changes: environments, agents and simulation are inherited whole, phase_config key by key."""
    conditions: list[ClassRefFile] | None = Field(
        default=None, examples=[[{"name": "arl.conditions:WallClock", "params": {"seconds": 3600}}]]
    )
    """Run-level termination conditions (subclasses of arl.conditions.TerminationCondition answering run_over):
    the run ends when one says so, and the phases after it are skipped."""
    run_config: dict[str, Any] | None = Field(
        default=None,
        examples=[
            {"condition": {"name": "palaestrai.experiment:VanillaRunGovernorTerminationCondition", "params": {}}}
        ],
    )
    """palaestrAI's run configuration: accepted and kept in the stored document, but not used (write run-level
    conditions instead)."""
    processes: ProcessesFile | None = Field(default=None, examples=[{"environments": "in_controller", "agents": 2}])
    """How the run's components are spread over processes (default: environments in the controllers, one agent
    process)."""
    restart: RestartFile | None = Field(default=None, examples=[{"max": 3, "within": 60}])
    """Restart a worker whose controller or environment process dies, up to max times in any window of within
    seconds; default none: a dead process fails the run."""
    state: StateFile | None = Field(
        default=None, examples=[{"dir": "arl-states", "save": {"every_seconds": 300}, "keep": {"latest": 10}}]
    )
    """Where snapshots of the live run go, when they are taken and which stay."""
    control: ControlFile | None = Field(default=None, examples=[{"pause_timeout": 5.0, "pause_attempts": 3}])
    """How a pause is asked of the workers, and the control API's queue."""
    time_scale: float = Field(default=1.0, gt=0, allow_inf_nan=False, examples=[1.0, 10])
    """How fast the run's clock (arl.time) runs against the machine's: 2 is twice as fast (default 1). It stands
    still while the run is paused."""
    max_uptime: float | None = Field(default=None, gt=0, allow_inf_nan=False, examples=[3600])
    """Seconds; at this age the run takes a snapshot and ends INTERRUPTED, to be resumed (default none; arl-run
    run --max-uptime overrides it)."""
    statistics_interval: float | None = Field(default=None, gt=0, allow_inf_nan=False, examples=[60])
    """Seconds between logging and storing each worker's step statistics (steps a second and step-time
    percentiles); default none: no periodic statistics."""
    paths: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, examples=[["src", "../shared_components"]]
    )
    """Folders where this run's own modules (module:Class) are found, absolute or relative
    to the experiment file's folder (which is searched too); after the standard library,
    what is installed and PYTHONPATH. Read from the file as written (not from --set)."""
