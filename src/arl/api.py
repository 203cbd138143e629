"""The classes a user subclasses: Environment, Brain, Muscle, Objective.

They know nothing of processes or sockets: arl hosts each in its own process and calls
these methods. Sensor and actuator ids are local to an environment here (``"s0"``); the
experiment file names them qualified by the environment's uid (``"env.s0"``), and agents
see the qualified ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
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
    """

    sensors: Mapping[str, Any]
    rewards: Mapping[str, float]
    terminated: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class Experience:
    """One transition an agent's muscle went through, as its brain learns from it."""

    worker: int
    inputs: Mapping[str, Any]
    setpoints: Mapping[str, Any]
    rewards: Mapping[str, float]
    objective: float
    next_inputs: Mapping[str, Any]
    terminated: bool
    truncated: bool


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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the environment holds. Called once, when the instance is done:
        before the next phase sets up a new one, or when the run ends."""


class _AgentPart:
    """What a muscle and a brain both learn before the first step."""

    sensors: Sequence[SensorInfo] = ()
    actuators: Sequence[ActuatorInfo] = ()
    seed: int = 0

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        """Called once before the first step with what the agent sees and drives, and a
        seed of its own (derived from the run's seed). Call super() when overriding."""
        self.sensors, self.actuators, self.seed = sensors, actuators, seed


class Muscle(_AgentPart, ABC):
    """An agent's policy in action: turns sensor readings into actuator setpoints."""

    @abstractmethod
    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return setpoints keyed by (qualified) actuator id."""

    def update(self, update: Any) -> None:
        """Take what the brain's :meth:`Brain.learn` returned (new weights, say)."""


class Brain(_AgentPart, ABC):
    """An agent's learner. Sees every transition its muscles made while training."""

    @abstractmethod
    def learn(self, experience: Experience) -> Any:
        """Learn from one transition (train mode only). A non-None result goes to
        every muscle of this brain through :meth:`Muscle.update`."""

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


class Objective(ABC):
    """Turns the rewards an agent receives into the single value it strives for."""

    @abstractmethod
    def evaluate(self, rewards: Mapping[str, float]) -> float:
        """The agent's objective value for one step's rewards."""
