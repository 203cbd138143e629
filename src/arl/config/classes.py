"""Class references checked: the name spells a class (or a shorthand), the class imports,
is a concrete subclass of what its role needs, and its constructor takes the params given,
with values of the types and in the ranges it declares."""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from typing import Any

from arl.classref import import_class, kind_problem, normalise_entry_point, params_problems, split_entry_point
from arl.conditions import TerminationCondition
from arl.config.params import type_problems
from arl.config.report import DocPath
from arl.config.shorthands import ADAPTERS, Adapter, expand
from arl.errors import ComponentLoadError

Found = tuple[DocPath, str, bool]
"""A problem of a class reference: (path from the reference, message, at the key)."""


class Classes:
    """Checks class references; each class is imported once per file (with ``resolve``
    False, only the spelling of references is checked)."""

    def __init__(self, resolve: bool) -> None:
        self.resolve = resolve
        self._classes: dict[str, type | str] = {}  # entry point -> class or error message

    def check(
        self, ref: Any, base: type, role: str, announce: Callable[[str], None] | None = None
    ) -> tuple[type | None, list[Found]]:
        """The class ``ref`` (a file's ``{name, params}``) names when it can serve as a
        ``role`` (a concrete subclass of ``base``, taking the params given), else None;
        and the problems found. ``announce`` is told before a module is imported (the
        user's code runs then)."""
        name = ref.get("name") if isinstance(ref, dict) else None
        if not isinstance(name, str) or not name:
            return None, []
        params = ref.get("params")
        named = self._entry_point(name, base, params)
        if isinstance(named, list):
            return None, named
        entry_point, own = named
        if not self.resolve:
            return None, []
        cls = self._import(entry_point, announce)
        if isinstance(cls, str):
            return None, [(("name",), _palaestrai_hint(cls, name, base), False)]
        problem = kind_problem(cls, base, role)
        if problem is not None:
            return None, [(("name",), problem, False)]
        if not isinstance(params, dict | None):
            return None, []  # the schema reports it
        found = _params_found(cls, own, params)
        if found:
            return None, found
        if entry_point in ADAPTERS:
            adapter = typing.cast(type[Adapter], cls)
            try:  # (it imports the user's modules: what they raise is a problem, not the check's end)
                problem = adapter.problem(**own, **(params or {}))
                inside = [] if problem is not None else adapter.param_problems(**own, **(params or {}))
            except Exception as exc:
                problem = f"checking {name} raised {type(exc).__name__}: {exc}"
            if problem is not None:
                return None, [(("name",), problem, False)]
            found = [(("params", *at), message, key) for at, message, key in inside]  # its wrappers, each at its line
            if found:
                return None, found
        return cls, []

    def _entry_point(self, name: str, base: type, params: Any) -> tuple[str, dict[str, Any]] | list[Found]:
        """The entry point ``name`` stands for and the params the name itself sets; or the
        problems of the spelling."""
        shorthand = expand(name, base)
        if shorthand is None:
            try:
                return normalise_entry_point(name), {}
            except ValueError as exc:
                return [(("name",), str(exc), False)]
        clashes = [param for param in shorthand.params if isinstance(params, dict) and param in params]
        if clashes:
            return [
                (
                    ("params", param),
                    f"{param!r} is given by the name {name!r} already; leave it out here "
                    f"(or name {shorthand.entry_point!r} and give {param!r} in params)",
                    True,
                )
                for param in clashes
            ]
        return shorthand.entry_point, shorthand.params

    def _import(self, entry_point: str, announce: Callable[[str], None] | None) -> type | str:
        """The class, or why it cannot be had; imported once per file."""
        if entry_point not in self._classes:
            module = split_entry_point(entry_point)[0]
            if announce is not None and module not in sys.modules:  # only a first import runs its code
                announce(f"importing module {module!r}")
            try:
                self._classes[entry_point] = import_class(entry_point)
            except ComponentLoadError as exc:
                self._classes[entry_point] = str(exc)
        return self._classes[entry_point]


def _params_found(cls: type, own: dict[str, Any], params: dict[str, Any] | None) -> list[Found]:
    """Params the constructor does not take or lacks (at the key, or at the whole ref when
    the file gives no params), then values of the wrong type or out of range (at the value;
    a value the name set, at the name)."""
    given = {**own, **(params or {})}
    found: list[Found] = []
    for key, message in params_problems(cls, given):
        if key is None:
            found.append((("params",) if params is not None else (), message, False))
        else:
            found.append((("params", key), message, True))
    if found:
        return found
    for loc, message in type_problems(cls, given):
        in_file = params is not None and loc[0] in params
        found.append((("params", *loc) if in_file else ("name",), message, False))
    return found


def _palaestrai_hint(message: str, name: str, base: type) -> str:
    """A ported file names palaestrAI's classes; say what to use instead."""
    if not name.lower().startswith("palaestrai"):
        return message
    qualified = f"{base.__module__}.{base.__qualname__}"
    message += f"; palaestrAI's classes do not run in arl: name a subclass of {qualified}"
    if base is TerminationCondition:
        message += " such as 'arl.conditions:EnvironmentDone' or 'arl.conditions:MaxSteps'"
    return message
