"""arl: Adversarial Resilience Learning — multi-agent RL experiments across processes.

What users subclass lives here, and :func:`run_experiment`, ``arl-run FILE`` as a call;
everything else is reached through ``arl-run``.

``import arl`` imports nothing else: each name below is imported the first time it is
used (PEP 562), so that ``arl-run``, and any process that needs only a part of arl,
does not pay for numpy and gymnasium (which :mod:`arl.api` imports) unless it uses them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "ActuatorInfo": "arl.api",
    "Brain": "arl.api",
    "Environment": "arl.api",
    "Experience": "arl.api",
    "Muscle": "arl.api",
    "Objective": "arl.api",
    "SensorInfo": "arl.api",
    "StepResult": "arl.api",
    "EnvironmentDone": "arl.conditions",
    "MaxEpisodes": "arl.conditions",
    "MaxSteps": "arl.conditions",
    "PhaseView": "arl.conditions",
    "RewardThreshold": "arl.conditions",
    "RunView": "arl.conditions",
    "StepView": "arl.conditions",
    "TerminationCondition": "arl.conditions",
    "WallClock": "arl.conditions",
    "check_environment": "arl.envcheck",
    "Simulation": "arl.simulation",
    "run_experiment": "arl.runner",
}

__all__ = [*sorted(_WHERE), "__version__"]

if TYPE_CHECKING:  # what the names are, for type checkers and editors (``as``: re-exported)
    from arl.api import ActuatorInfo as ActuatorInfo
    from arl.api import Brain as Brain
    from arl.api import Environment as Environment
    from arl.api import Experience as Experience
    from arl.api import Muscle as Muscle
    from arl.api import Objective as Objective
    from arl.api import SensorInfo as SensorInfo
    from arl.api import StepResult as StepResult
    from arl.conditions import EnvironmentDone as EnvironmentDone
    from arl.conditions import MaxEpisodes as MaxEpisodes
    from arl.conditions import MaxSteps as MaxSteps
    from arl.conditions import PhaseView as PhaseView
    from arl.conditions import RewardThreshold as RewardThreshold
    from arl.conditions import RunView as RunView
    from arl.conditions import StepView as StepView
    from arl.conditions import TerminationCondition as TerminationCondition
    from arl.conditions import WallClock as WallClock
    from arl.envcheck import check_environment as check_environment
    from arl.runner import run_experiment as run_experiment
    from arl.simulation import Simulation as Simulation


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'arl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
