"""Names that stand for one of arl's classes (``gym:CartPole-v1``, ``vanilla``), and the
class reference any name in a file comes to."""

from __future__ import annotations

import copy
import typing
from dataclasses import dataclass
from typing import Any

from arl.api import Environment
from arl.classref import normalise_entry_point
from arl.config.filemodels import ClassRefFile, EnvironmentFile, SimulationFile
from arl.config.spec import ClassRef
from arl.simulation import BUILT_IN as BUILT_IN_SIMULATIONS
from arl.simulation import Simulation


@dataclass(frozen=True)
class Shorthand:
    """A name that stands for one of arl's classes: the whole name is ``word``, or, with a
    ``key``, it is ``word`` followed by the value of the class's param ``key``."""

    base: type
    word: str
    entry_point: str
    key: str | None = None


SHORTHANDS = (
    Shorthand(Environment, "gym:", "arl.gym:GymEnvironment", "id"),
    Shorthand(Environment, "pettingzoo:", "arl.pettingzoo:PettingZooEnvironment", "env"),
    *(Shorthand(Simulation, word, entry_point) for word, entry_point in BUILT_IN_SIMULATIONS.items()),
)
"""Every shorthand a file may use; checked and built alike through :func:`expand`."""

ADAPTERS = frozenset(s.entry_point for s in SHORTHANDS if s.key is not None)
"""The adapter classes the shorthands stand for; each is an :class:`Adapter`."""


class Adapter(typing.Protocol):
    """An adapter checks what its params name (an environment id, say) before anything
    runs, however the file names the adapter."""

    @classmethod
    def problem(cls, **params: Any) -> str | None:
        """What is wrong with ``params``, or None."""

    @classmethod
    def param_problems(cls, **params: Any) -> list[tuple[tuple[str | int, ...], str, bool]]:
        """What is wrong inside ``params`` (its named wrappers), each as (path from the
        params, message, at the key): reported at its own line."""


def expand(name: str, base: type) -> ClassRef | None:
    """The class a shorthand ``name`` stands for in the role of a ``base``, with the
    params the name sets; None if ``name`` is no shorthand."""
    for shorthand in SHORTHANDS:
        if shorthand.base is not base:
            continue
        if shorthand.key is None and name == shorthand.word:
            return ClassRef(shorthand.entry_point, {})
        if shorthand.key is not None and name.startswith(shorthand.word):
            return ClassRef(shorthand.entry_point, {shorthand.key: name.removeprefix(shorthand.word)})
    return None


def class_ref(ref: ClassRefFile | EnvironmentFile | SimulationFile, base: type) -> ClassRef:
    """The class and params ``ref`` names in the role of a ``base`` (a shorthand expanded)."""
    params = copy.deepcopy(dict(ref.params or {}))
    shorthand = expand(ref.name, base)
    if shorthand is None:
        return ClassRef(normalise_entry_point(ref.name), params)
    return ClassRef(shorthand.entry_point, {**shorthand.params, **params})
