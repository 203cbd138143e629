"""RunGovernor -> conductors and controllers, through the MajorDomo broker.

Each request names a phase by its index in the run's schedule. A conductor answers a
request with the reply named beside it, or with :class:`arl.messages.common.ErrorReply`.
"""

from __future__ import annotations

from typing import Any

from arl.codec import message


@message("control.setup_environment")
class SetupEnvironment:
    """Build the phase's environment instance. Reply: :class:`EnvironmentReady`."""

    phase: int
    env_uid: str
    entry_point: str
    params: dict[str, Any]
    copies: int = 1  # a controller stepping envs_per_worker copies builds that many instances


@message("control.environment_ready")
class EnvironmentReady:
    """Sensors and actuators as ``[qualified id, space description]`` pairs."""

    env_uid: str
    sensors: list[list[Any]]
    actuators: list[list[Any]]


@message("control.setup_agent")
class SetupAgent:
    """Build the phase's brain, objective and one muscle per worker for agent ``name``, in
    the agent process that hosts it. Reply: :class:`AgentReady`.

    ``role``: ``all`` (brain, objective and muscles here), or for a central agent
    ``learner`` (the brain, in the learner process) or ``inference`` (the objective and
    the muscles of the workers in ``serves``, in an inference server, which takes its
    policy from the learner's broadcasts at ``weights``). ``options``: the agent's
    ``learner``/``inference`` settings, and ``wait``, the seconds a server waits for
    the learner's first broadcast of the phase.
    """

    phase: int
    name: str
    brain: list[Any]  # [entry point, params]
    muscle: list[Any]
    objective: list[Any]
    sensors: list[list[Any]]  # [qualified id, space description]
    actuators: list[list[Any]]
    workers: int
    train: bool
    seed: int
    load_from: list[str] | None  # [brain folder, sha256 the store recorded], checked before loading; or None
    role: str = "all"
    serves: list[int] | None = None  # the workers whose muscles live here (None: every worker)
    weights: str | None = None  # the learner's broadcast endpoint (role "inference")
    options: dict[str, Any] | None = None


@message("control.agent_ready")
class AgentReady:
    name: str


@message("control.run_phase")
class RunPhase:
    """Run a phase on one worker; the reply :class:`PhaseDone` comes when it has ended.

    ``agents`` maps agent name to [sensor ids, actuator ids]; ``environments`` lists the
    env uids of this worker. ``agent_hosts`` and ``env_hosts`` name the service that hosts
    each agent and environment: an agent process serves several agents; an environment
    hosted by ``""`` runs inside the controller itself, set up by a
    :class:`SetupEnvironment` sent to the controller. ``endpoints`` maps each host service to its
    direct link.
    ``history`` summarises the run's ended phases for the run-level conditions, as the
    fields of :class:`arl.conditions.PhaseSummary`.
    ``episodes`` are run with the indices ``first_episode``, ``first_episode + 1``, ...: a
    worker restarted after its processes died runs the episodes it still owes, numbered
    after the last one the dead process started; its counts (what the conditions see,
    what :class:`PhaseDone` says) start from ``episodes_before`` and ``steps_before``.
    """

    phase: int
    phase_name: str
    worker: int
    simulation: list[Any]  # [entry point, params] of the arl.simulation.Simulation
    conditions: list[list[Any]]  # [entry point, params] of each episode/phase condition
    run_conditions: list[list[Any]]  # the same, of the run-level conditions
    episodes: int
    max_steps: int | None
    agents: dict[str, list[list[str]]]
    environments: list[str]
    agent_hosts: dict[str, str]
    env_hosts: dict[str, str]
    endpoints: dict[str, str]
    seed: int
    run_started: float  # epoch seconds, for run-level wall-clock limits
    history: list[dict[str, Any]]
    workers: int = 1  # how many workers run the phase
    learners: dict[str, str] | None = None  # central agent -> its learner's experience endpoint (train phases)
    first_episode: int = 0  # the first episode's index (a restarted worker goes on after the dead one's)
    episodes_before: int = 0  # a restarted worker: the episodes it ended before it died
    steps_before: int = 0  # and the steps the store holds of it
    # envs_per_worker: this controller steps `envs` copies of the worker's environments,
    # each a worker of its own (`worker` * envs + copy), with its seed in `seeds`.
    envs: int = 1
    seeds: list[int] | None = None
    # A restarted worker with envs > 1: each copy's [first_episode, episodes, episodes_before,
    # steps_before] (the fields above hold copy 0's).
    resume: list[list[int]] | None = None
    # Going on from a snapshot: its folder; each worker's loop, simulation, conditions and
    # environments hosted by the controller load from <state>/workers/<worker>/.
    state: str | None = None
    statistics_interval: float | None = None  # seconds between the worker's step statistics


@message("control.phase_done")
class PhaseDone:
    """``reason``: "episodes" (all were run), "interrupted", or a condition's reason;
    ``ends_run`` when that condition was a run-level one. ``returns``: per agent, the
    return of each episode this worker ran."""

    phase: int
    worker: int
    episodes: int
    steps: int
    reason: str
    ends_run: bool
    returns: dict[str, list[float]]
    experiences: dict[str, int] | None = None  # central agent -> transitions sent to its learner


@message("control.save_brain")
class SaveBrain:
    """Save agent ``name``'s brain into ``directory``, a new folder (its parent exists; an
    existing one is an error, never replaced). Reply: :class:`BrainSaved`."""

    name: str
    directory: str
    experiences: int = 0  # transitions the workers sent a central learner: it takes them all first


@message("control.brain_saved")
class BrainSaved:
    """``sha256``: :func:`arl.checkpoints.directory_digest` of the saved folder."""

    name: str
    directory: str
    sha256: str


@message("control.save_state")
class SaveState:
    """Save the state of every component this process hosts for the current phase into
    ``directory`` (a snapshot's staging folder), while the run is paused: an agent
    process under ``agents/<name>/``, an environment process under
    ``workers/<worker>/env.<uid>/``. Reply: :class:`StateSaved`."""

    directory: str
    experiences: int = 0  # a central agent's learner: the transitions the workers sent it, taken first


@message("control.load_state")
class LoadState:
    """After the phase's setup: load what :class:`SaveState` wrote into ``directory``.
    Reply: :class:`StateSaved` (the names loaded)."""

    directory: str


@message("control.state_saved")
class StateSaved:
    names: list[str]
