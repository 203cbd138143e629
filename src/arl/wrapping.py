"""Wrappers an environment's params name: ``wrappers: [...]`` of the Gymnasium and
PettingZoo adapters.

Each entry is

* a name: ``NormalizeReward``, a class of the family's module (``gymnasium.wrappers``;
  ``pettingzoo.utils.wrappers`` for PettingZoo), or ``module:Class`` / ``module.Class``
  (imported as any class reference of a file is);
* or a mapping of one such name to the wrapper's params, ``{TimeLimit: {max_episode_steps:
  50}}`` (null or ``{}``: none).

They are applied in the order listed, the first innermost: it wraps the environment
(as ``gymnasium.make`` returns it), the second wraps the first, and so on; the last is
outermost. Each is built as ``Wrapper(env, **params)``.

:func:`problems` says, before anything runs, what is wrong with each entry (its shape,
a name that imports nothing, with the nearest names; a class that is no wrapper; params
its constructor does not take, or of the wrong type), as paths from the environment's
``params`` so that the check reports each at its line; :func:`wrap` builds them.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arl.classref import import_class, import_module, params_problems
from arl.errors import ComponentLoadError

KEY = "wrappers"
"""The param of an adapter that names its wrappers."""

Path = tuple[str | int, ...]
Found = tuple[Path, str, bool]
"""A problem: (path from the environment's params, message, at the key rather than the value)."""


@dataclass(frozen=True)
class Family:
    """Where bare names are looked up, and what a wrapper must subclass."""

    module: str
    bases: tuple[type, ...]
    what: str  # "a Gymnasium wrapper", for messages


@dataclass(frozen=True)
class Entry:
    """One wrapper of the list: its name as written, its params, and where it is."""

    name: str
    params: dict[str, Any]
    at: Path  # the name's place (a list item, or the key of a one-key mapping)
    keyed: bool  # the name is a key (``{Name: params}``), not a list item


def entries(spec: Any) -> tuple[list[Entry], list[Found]]:
    """The entries of a ``wrappers`` value, and what is wrong with its shape."""
    if spec is None:
        return [], []
    if not isinstance(spec, list):
        return [], [((KEY,), f"{KEY} must be a list of wrapper names or {{name: params}} mappings", False)]
    found: list[Entry] = []
    wrong: list[Found] = []
    for i, item in enumerate(spec):
        at: Path = (KEY, i)
        if isinstance(item, str):
            found.append(Entry(item, {}, at, keyed=False))
        elif isinstance(item, dict) and len(item) == 1:
            ((name, params),) = item.items()
            if params is not None and not isinstance(params, dict):
                message = f"wrapper {name}'s params must be a mapping (or null), not {params!r}"
                wrong.append(((*at, name), message, False))
            else:
                found.append(Entry(str(name), dict(params or {}), (*at, name), keyed=True))
        else:
            wrong.append((at, f"a wrapper is a name or a mapping of one name to its params, not {item!r}", False))
    return found, wrong


def resolve(name: str, family: Family) -> type:
    """The wrapper class ``name`` names; ComponentLoadError saying what is wrong."""
    try:
        cls = _lookup(name, family)
    except ComponentLoadError:
        raise
    except ModuleNotFoundError as exc:  # gymnasium.wrappers imports NumpyToTorch & co. only when asked
        missing = f"module {exc.name!r}" if exc.name else f"a module ({exc})"
        raise ComponentLoadError(f"wrapper {name} needs {missing}, which is not installed") from None
    except Exception as exc:  # the user's code, or a package's lazy import: whatever it raises is the finding
        raise ComponentLoadError(f"getting wrapper {name} raised {type(exc).__name__}: {exc}") from None
    if not (inspect.isclass(cls) and issubclass(cls, family.bases)):
        bases = " or ".join(f"{b.__module__}.{b.__qualname__}" for b in family.bases)
        raise ComponentLoadError(f"{name} is not {family.what}: a wrapper must subclass {bases}")
    return cls


def _lookup(name: str, family: Family) -> Any:
    """What ``name`` names: a class reference, or a bare name in the family's module."""
    if ":" in name or "." in name:
        return import_class(name)
    module = import_module(family.module)
    known = list(getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")])
    if name not in known or not hasattr(module, name):
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ComponentLoadError(
            f"{family.module} has no wrapper {name!r}{hint} (a wrapper of your own: 'module:Class')"
        )
    return getattr(module, name)


def problems(spec: Any, family: Family) -> list[Found]:
    """Everything wrong with a ``wrappers`` value, each at its place."""
    from arl.config.params import type_problems  # the check's only: pydantic stays out of the runs

    listed, found = entries(spec)
    for entry in listed:
        try:
            cls = resolve(entry.name, family)
        except ComponentLoadError as exc:
            found.append((entry.at, str(exc), entry.keyed))
            continue
        given = params_problems(_after_env(cls), entry.params)
        for key, message in given:
            found.append(((*entry.at, key), message, True) if key is not None else (entry.at, message, entry.keyed))
        if not given:
            found.extend(((*entry.at, *loc), message, False) for loc, message in type_problems(cls, entry.params))
    return found


def wrap(env: Any, spec: Any, family: Family) -> Any:
    """``env`` in the wrappers ``spec`` names, the first innermost. A ValueError lists
    what is wrong with the shape of ``spec``, a ComponentLoadError a name that names no
    wrapper; a constructor's own error propagates (the check finds all of these before
    a run: :func:`problems`)."""
    listed, wrong = entries(spec)
    if wrong:
        raise ValueError("; ".join(f"{_where(path)}: {message}" for path, message, _ in wrong))
    for entry in listed:
        env = resolve(entry.name, family)(env, **entry.params)
    return env


def _where(path: Path) -> str:
    return ".".join(map(str, path))


def _after_env(cls: type) -> Callable[..., Any]:
    """``cls``'s constructor without its first parameter (the environment, which arl
    passes), named as ``cls``: what the params are checked against."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature to check against
        return cls
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].kind in (parameters[0].POSITIONAL_ONLY, parameters[0].POSITIONAL_OR_KEYWORD):
        parameters = parameters[1:]

    def constructor(*args: Any, **kwargs: Any) -> Any:
        return cls(*args, **kwargs)

    constructor.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    constructor.__qualname__ = cls.__qualname__
    return constructor
