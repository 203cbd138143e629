"""arl: Adversarial Resilience Learning — multi-agent RL experiments across processes.

What users subclass lives here; everything else is reached through ``arl-run``.
"""

from arl.api import ActuatorInfo, Brain, Environment, Experience, Muscle, Objective, SensorInfo, StepResult
from arl.conditions import EnvironmentDone, MaxSteps, StepView, TerminationCondition

__version__ = "0.1.0"

__all__ = [
    "ActuatorInfo",
    "Brain",
    "Environment",
    "EnvironmentDone",
    "Experience",
    "MaxSteps",
    "Muscle",
    "Objective",
    "SensorInfo",
    "StepResult",
    "StepView",
    "TerminationCondition",
    "__version__",
]
