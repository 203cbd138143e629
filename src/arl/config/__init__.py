"""Experiment files: reading, checking and the specs they turn into.

``load_experiment`` raises :class:`arl.errors.ConfigError` listing every problem in the
file, each with its line and column, so a user fixes them in one go.
"""

from arl.classref import import_class
from arl.config.loader import Prober, load_experiment, load_experiment_text
from arl.config.spec import (
    AgentSpec,
    ClassRef,
    EnvironmentSpec,
    LoadSpec,
    PhaseSpec,
    RunSpec,
    SimulationSpec,
)

__all__ = [
    "AgentSpec",
    "ClassRef",
    "EnvironmentSpec",
    "LoadSpec",
    "PhaseSpec",
    "Prober",
    "RunSpec",
    "SimulationSpec",
    "import_class",
    "load_experiment",
    "load_experiment_text",
]
