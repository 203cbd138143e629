"""The classes a user subclasses: Environment, Brain, Muscle, Objective.

They know nothing of processes or sockets: arl hosts each in its own process and calls
these methods. Sensor and actuator ids are local to an environment here (``"s0"``); the
experiment file names them qualified by the environment's uid (``"env.s0"``), and agents
see the qualified ids.
"""

from __future__ import annotations

import math
import numbers
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing arl.api must not import gymnasium and numpy
    from gymnasium import spaces


@dataclass(frozen=True)
class SensorInfo:
    """A reading an environment provides, and the space its values lie in."""

    id: str
    space: spaces.Space[Any]


@dataclass(frozen=True)
class ActuatorInfo:
    """A setpoint an environment accepts, and the space its values must lie in."""

    id: str
    space: spaces.Space[Any]


@dataclass(frozen=True)
class StepResult:
    """What an environment returns from one step.

    ``terminated``: the episode reached a terminal state (the task ended).
    ``truncated``: the episode was cut short (a time limit, say) and could have gone on.
    ``info``: anything else to keep of the step (gymnasium's ``info``): stored with it in
    ``environment_steps.info``, made JSON-safe and capped at 4 KiB (:mod:`arl.stepinfo`);
    None or empty stores nothing.
    """

    sensors: Mapping[str, Any]
    rewards: Mapping[str, float]
    terminated: bool = False
    truncated: bool = False
    info: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Experience:
    """One transition an agent's muscle went through, as its brain learns from it.

    ``terminated``: the episode ended in a terminal state (nothing follows it).
    ``truncated``: the episode ended without one, so its value goes on: the environment's
    time limit, or arl cut it (``max_steps``, a condition, a stop). A brain never sees an
    episode end with both False: the last transition of every episode says which.
    """

    worker: int
    inputs: Mapping[str, Any]
    setpoints: Mapping[str, Any]
    rewards: Mapping[str, float]
    objective: float
    next_inputs: Mapping[str, Any]
    terminated: bool
    truncated: bool
    policy_version: int | None = None
    """The version of the policy that chose ``setpoints`` (the muscle's
    ``policy_version``; with a central learner, the version of the weights it broadcast)."""


class Environment(ABC):
    """A world agents act in. Constructed with the ``params`` of the experiment file."""

    @abstractmethod
    def sensors(self) -> Sequence[SensorInfo]:
        """The readings this environment provides (stable for its lifetime)."""

    @abstractmethod
    def actuators(self) -> Sequence[ActuatorInfo]:
        """The setpoints this environment accepts (stable for its lifetime)."""

    @abstractmethod
    def reset(self, *, seed: int) -> Mapping[str, Any]:
        """Start a new episode and return the first sensor readings, keyed by sensor id."""

    @abstractmethod
    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        """Apply the setpoints (keyed by actuator id; an id may be missing) and advance."""

    def applies(self, actuator: str) -> bool:
        """Whether the next :meth:`step` applies a setpoint of ``actuator`` (its id). arl
        checks a setpoint against its actuator's space before each step; one that lies
        outside it is let through when this says False (the environment ignores it: a
        PettingZoo agent off its turn, or done, sends ``None``). The default is True:
        every setpoint is applied, so every one is checked."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the environment holds. Called once, when the instance is done:
        before the next phase sets up a new one, or when the run ends."""

    def save_state(self, path: Path) -> None:  # noqa: B027 - optional hook
        """Write what this environment needs to continue exactly where it is (its
        simulation's state, step counters, RNG states) into ``path``, a folder of its
        own that arl has created; called at step boundaries only, never during a step.
        The default writes nothing: an environment with no state to keep. See
        docs/state.md."""

    def load_state(self, path: Path) -> None:  # noqa: B027 - optional hook
        """Read back what :meth:`save_state` wrote into ``path``, on an instance set up as
        the saving one was, so that it goes on as that one would have. The default
        reads nothing. See docs/state.md."""


MetricSink = Callable[[str, float, int], None]
"""Where a brain's or muscle's metrics go: ``(name, value, step)``. arl's agent process
sets one on every brain and muscle it builds; without one, metrics are checked and dropped."""

METRIC_NAME_LENGTH = 64
"""The longest metric name (the store's ``metrics.name`` column)."""

_STEP_LIMIT = 2**63  # the store's metrics.step is a 64-bit integer


class _AgentPart:
    """What a muscle and a brain both learn before the first step, and how both log metrics.

    No ``__init__`` here: subclasses need not call one (the defaults are class attributes).
    """

    sensors: Sequence[SensorInfo] = ()
    actuators: Sequence[ActuatorInfo] = ()
    seed: int = 0
    _arl_metric_sink: MetricSink | None = None
    _arl_metric_steps: dict[str, int] | None = None

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        """Called once before the first step with what the agent sees and drives, and a
        seed of its own (derived from the run's seed). Call super() when overriding."""
        self.sensors, self.actuators, self.seed = sensors, actuators, seed

    def save_state(self, path: Path) -> None:
        """Write what this part needs to continue exactly where it is (RNG states, step
        counts, the weights it acts with) into ``path``, a folder of its own that arl
        has created. The default writes nothing (a part with no state to keep); a
        :class:`Brain`'s default is its :meth:`Brain.save`. Called after :meth:`setup`,
        at step boundaries only. See docs/state.md."""

    def load_state(self, path: Path) -> None:
        """Read back what :meth:`save_state` wrote into ``path``; called after
        :meth:`setup`, on a part set up as the saving one was. The default reads
        nothing; a :class:`Brain`'s default is its :meth:`Brain.load`."""

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Store ``value`` of the metric ``name`` (a loss, an epsilon, a buffer's size).

        ``name``: 1 to 64 printable characters. ``value``: a finite number (a Python or
        numpy number, or anything else ``float()`` takes that is not text or a bool: a
        zero-dimensional array, a one-element tensor). ``step``: a non-negative integer
        of your choosing; by default this part's count of the values it logged under
        ``name`` in this phase (1, 2, ...). The store keeps each value with its run,
        phase, agent, worker (none for a brain), step and the time it was logged
        (``arl-run results metrics RUN``). A bad argument raises ``TypeError`` or
        ``ValueError`` here. May be called from any thread of the agent's process; the
        values go to the store in batches, not one by one.
        """
        value = _metric_value(name, value)
        if step is None:
            with _STEP_LOCK:  # any thread may log: each value its own step
                steps = self._arl_metric_steps
                if steps is None:
                    steps = self._arl_metric_steps = {}
                step = steps[name] = steps.get(name, 0) + 1
        else:
            step = _metric_step(name, step)
        sink = self._arl_metric_sink
        if sink is not None:
            sink(name, value, step)


_STEP_LOCK = threading.Lock()


def _metric_value(name: object, value: object) -> float:
    """``value`` as a float, once ``name`` and ``value`` are known to be storable."""
    if not isinstance(name, str):
        raise TypeError(f"a metric's name must be a string, not {type(name).__name__}")
    if not name or len(name) > METRIC_NAME_LENGTH or not name.isprintable():
        raise ValueError(
            f"metric name {name[:80]!r} must be 1 to {METRIC_NAME_LENGTH} printable characters (it has {len(name)})"
        )
    if isinstance(value, str | bytes | bool) or not hasattr(value, "__float__"):
        raise TypeError(f"metric {name!r}: the value must be a number, not {type(value).__name__}")
    try:
        number = float(value)  # has __float__, checked above
    except (TypeError, ValueError) as exc:  # a tensor of several elements, say
        raise TypeError(f"metric {name!r}: the value (a {type(value).__name__}) is not one number: {exc}") from exc
    if not math.isfinite(number):
        raise ValueError(f"metric {name!r}: the value must be finite, not {number}")
    return number


def _metric_step(name: str, step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"metric {name!r}: the step must be an integer, not {type(step).__name__}")
    if not 0 <= int(step) < _STEP_LIMIT:
        raise ValueError(f"metric {name!r}: the step must be between 0 and 2**63 - 1, not {step}")
    return int(step)


class Muscle(_AgentPart, ABC):
    """An agent's policy in action: turns sensor readings into actuator setpoints.

    ``policy_version``: the version of the policy that chose the setpoints :meth:`act`
    returns (a learner's weight version, say: a non-negative integer), or None when
    policies have no versions. A muscle that takes versioned policies in :meth:`update`
    sets it; each stored action carries the value it had right after ``act``.
    """

    policy_version: int | None = None
    worker: int = 0
    """The worker this muscle acts for (0 ... ``workers`` - 1), set by arl before :meth:`setup`:
    a policy may explore differently per worker (Ape-X's epsilons)."""
    workers: int = 1
    device: str = "cpu"
    """Where to run the policy (the agent's ``inference: {device: ...}``: ``cpu``,
    ``cuda``, ``cuda:1``), set by arl before :meth:`setup`; arl has checked it exists."""

    @abstractmethod
    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return setpoints keyed by (qualified) actuator id."""

    def act_batch(self, batch: Sequence[tuple[Muscle, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
        """Act for several workers at once (batched inference): ``batch`` pairs each
        worker's muscle (this agent's, all given the same policy updates) with its
        readings; return each one's setpoints, in order. arl calls it on the batch's
        first muscle with the requests it gathered (``inference: {batchsize, delay}``);
        a batch of one worker's request is :meth:`act`'s.

        The default calls each muscle's :meth:`act`. Override it to run the policy once
        on the whole batch (one forward pass of a network), with per-worker choices (an
        epsilon, an RNG, a step count) taken from each muscle of the batch.
        """
        return [muscle.act(sensors) for muscle, sensors in batch]

    def update(self, update: Any) -> None:
        """Take what the brain's :meth:`Brain.learn` returned (new weights, say)."""


class Brain(_AgentPart, ABC):
    """An agent's learner. Sees every transition its muscles made while training.

    Two ways to learn. By default the brain lives in its agent's process and
    :meth:`learn` is called with each transition as it completes, between the muscles'
    actions. With a central learner (the agent's ``learner:`` or ``inference:`` key,
    SEED-style) the brain lives in a learner process of its own: each transition goes to
    :meth:`remember`, and :meth:`train` is called as often as the learner may
    (``max_train_frequency``, from ``minimum_buffer_size`` transitions on); every
    ``broadcast_period`` seconds :meth:`policy` is sent to the inference servers'
    muscles, versioned by arl (the count of updates so far).
    """

    device: str = "cpu"
    """Where to train (the agent's ``learner: {device: ...}``), set by arl before :meth:`setup`."""

    @abstractmethod
    def learn(self, experience: Experience) -> Any:
        """Learn from one transition (train mode only). A non-None result goes to
        every muscle of this brain through :meth:`Muscle.update`."""

    def remember(self, experience: Experience) -> None:
        """Central learner: keep one transition for training. The default hands it to
        :meth:`learn`, and a non-None result counts as an update, which the learner
        broadcasts when :meth:`policy` gives none: a brain that only implements
        :meth:`learn` trains with a central learner too, as its own schedule says, and
        ``max_train_frequency`` does not apply to it."""
        update = self.learn(experience)
        if update is not None:
            self._arl_learned = True
            self._arl_update = update

    def train(self) -> bool:
        """Central learner: one update (a gradient step, say) from what was remembered;
        True if the policy changed. Not called before ``minimum_buffer_size``
        transitions were remembered. The default trains in :meth:`learn` (above)."""
        learned, self._arl_learned = self._arl_learned, False
        return learned

    _arl_learned = False
    _arl_update: Any = None  # what learn() last returned (the default remember keeps it)

    def buffer_size(self) -> int | None:
        """How many transitions the brain holds for training (a replay buffer's fill, a
        rollout's length), which a central learner logs as ``arl/buffer_size``; None
        (the default): not said."""
        return None

    def policy(self) -> Any:
        """What a fresh muscle needs to act as this brain would have it (weights, say).

        Called after setup and after a load; a non-None result goes to every muscle
        through :meth:`Muscle.update`. The default, None, sends nothing.
        """
        return None

    def save(self, directory: Path) -> None:
        """Write everything needed to resume into ``directory`` (which exists)."""

    def load(self, directory: Path) -> None:
        """Read back what :meth:`save` wrote."""

    def save_state(self, path: Path) -> None:
        """The default calls :meth:`save`: a brain's resumable state is what ``save``
        writes (weights, optimizer, counters, RNG states; arl's learners' replay buffer
        or rollout as they are configured to). Override it to keep more in a state than
        in a checkpoint. See docs/state.md."""
        self.save(path)

    def load_state(self, path: Path) -> None:
        """The default calls :meth:`load`."""
        self.load(path)


class Objective(ABC):
    """Turns the rewards an agent receives into the single value it strives for."""

    @abstractmethod
    def evaluate(self, rewards: Mapping[str, float]) -> float:
        """The agent's objective value for one step's rewards."""

    def save_state(self, path: Path) -> None:  # noqa: B027 - optional hook
        """Write what this objective keeps between steps (a running normaliser, say) into
        ``path``, a folder of its own that arl has created. The default writes nothing.
        See docs/state.md."""

    def load_state(self, path: Path) -> None:  # noqa: B027 - optional hook
        """Read back what :meth:`save_state` wrote. The default reads nothing."""
