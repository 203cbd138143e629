"""arl: Adversarial Resilience Learning — multi-agent RL experiments across processes.

What users subclass lives here; everything else is reached through ``arl-run``.
"""

from arl.api import ActuatorInfo, Brain, Environment, Experience, Muscle, Objective, SensorInfo, StepResult
from arl.conditions import (
    EnvironmentDone,
    MaxEpisodes,
    MaxSteps,
    PhaseView,
    RewardThreshold,
    RunView,
    StepView,
    TerminationCondition,
    WallClock,
)
from arl.simulation import Simulation

__version__ = "0.1.0"

__all__ = [
    "ActuatorInfo",
    "Brain",
    "Environment",
    "EnvironmentDone",
    "Experience",
    "MaxEpisodes",
    "MaxSteps",
    "Muscle",
    "Objective",
    "PhaseView",
    "RewardThreshold",
    "RunView",
    "SensorInfo",
    "Simulation",
    "StepResult",
    "StepView",
    "TerminationCondition",
    "WallClock",
    "__version__",
]
