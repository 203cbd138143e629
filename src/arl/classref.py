"""Turning ``module:Class`` references into classes, with errors a user can act on.

A misspelt class name and a missing dependency look alike as a bare ImportError; the
messages here say which part is wrong (the module, something the module imports, or the
attribute) and suggest the nearest names, because that is what the user has to fix.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from arl.errors import ComponentLoadError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def split_entry_point(entry_point: str) -> tuple[str, str]:
    """``(module, attribute)`` of ``"module:Class"`` or ``"module.Class"``.

    The dotted form is what palaestrAI files often use; the last dotted part is taken as
    the class. Raises ValueError (with a message meant for the user) if neither form fits.
    """
    text = entry_point.strip()
    if ":" in text:
        module, _, attribute = text.partition(":")
    else:
        module, _, attribute = text.rpartition(".")
    parts = [*module.split("."), *attribute.split(".")]
    if not module or not attribute or not all(_IDENTIFIER.match(p) for p in parts):
        raise ValueError(
            f"{entry_point!r} is not a class reference; write 'module:Class' (for example 'arl.conditions:MaxSteps')"
        )
    return module, attribute


def normalise_entry_point(entry_point: str) -> str:
    """The ``"module:Class"`` spelling of either accepted form (raises ValueError)."""
    module_name, attribute_path = split_entry_point(entry_point)
    return f"{module_name}:{attribute_path}"


def import_class(entry_point: str) -> type:
    """The class ``entry_point`` names. Raises ComponentLoadError saying what is wrong."""
    try:
        module_name, attribute_path = split_entry_point(entry_point)
    except ValueError as exc:
        raise ComponentLoadError(str(exc)) from None
    obj: Any = import_module(module_name)
    owner = module_name
    for part in attribute_path.split("."):
        obj = attribute(obj, part, owner)
        owner = f"{owner}.{part}"
    if not inspect.isclass(obj):
        what = article(type(obj).__name__)
        raise ComponentLoadError(f"'{module_name}:{attribute_path}' is not a class but {what} object")
    return obj


def build(entry_point: str, params: Mapping[str, Any], base: type, role: str) -> Any:
    """An instance of the class ``entry_point`` names, constructed with ``params``.

    Raises ComponentLoadError, before anything is constructed, if the class cannot be
    had or is not a concrete subclass of ``base`` (what a ``role`` must be); whatever
    the constructor raises propagates.
    """
    cls = import_class(entry_point)
    problem = kind_problem(cls, base, role)
    if problem is not None:
        raise ComponentLoadError(problem)
    return cls(**params)


def qualname(cls: type) -> str:
    """``"module:Qualname"``, the way an experiment file names ``cls``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def import_module(name: str) -> Any:
    """The module ``name``; raises ComponentLoadError telling "no such module" apart from
    "the module failed to import" (and saying what it needs, or what it raised)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == name or name.startswith(missing + "."):
            raise ComponentLoadError(
                f"module {name!r} not found (no module named {missing!r}); is it installed, or on the Python path?"
            ) from None
        raise ComponentLoadError(
            f"module {name!r} was found but could not be imported: it needs module {missing!r}, which is not installed"
        ) from None
    except Exception as exc:  # any error in the user's module becomes a message
        raise ComponentLoadError(f"importing module {name!r} raised {type(exc).__name__}: {exc}") from None
    except SystemExit as exc:  # sys.exit() at import would end the checking process without a word
        raise ComponentLoadError(
            f"importing module {name!r} called sys.exit({exc.code!r}); a module must not exit when imported"
        ) from None


def attribute(obj: Any, name: str, owner: str | None = None) -> Any:
    """``obj.name``, or ComponentLoadError naming the nearest names ``obj`` does have.

    ``owner`` is the dotted name the message gives ``obj``; by default its ``__name__``
    (right for a module).
    """
    if not hasattr(obj, name):
        raise ComponentLoadError(_missing_attribute(owner or obj.__name__, name, obj))
    return getattr(obj, name)


def _missing_attribute(owner: str, name: str, obj: Any) -> str:
    """The message for ``owner`` lacking ``name``, with the nearest names it does have."""
    close = difflib.get_close_matches(name, [n for n in dir(obj) if not n.startswith("__")])
    message = f"module {owner!r} has no attribute {name!r}"
    if close:
        message += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return message


def kind_problem(cls: type, base: type, role: str) -> str | None:
    """Why ``cls`` cannot serve as ``role`` (needs to subclass ``base``), or None if it can."""
    if not issubclass(cls, base):
        qualified = f"{base.__module__}.{base.__qualname__}"
        return f"{qualname(cls)} is not {article(base.__name__)}; {article(role)} must subclass {qualified}"
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return f"{qualname(cls)} is abstract: it does not implement {missing}"
    return None


def params_problems(target: Callable[..., Any], params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Mismatches between ``params`` and the signature of ``target`` (a class: its
    constructor), as (param, message).

    Checked here so that a misspelt parameter is reported with its line in the file,
    instead of as a TypeError from a worker process minutes into a run. ``param`` is
    None when the message is about the whole mapping (a missing parameter).
    """
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some C-implemented classes have no signature
        return []
    name = getattr(target, "__qualname__", repr(target))
    accepted = signature.parameters
    named = [n for n, p in accepted.items() if p.kind in _KEYWORD_KINDS]
    problems: list[tuple[str | None, str]] = []
    suggested: set[str] = set()  # a misspelt parameter is reported once, not again as missing
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        for key in params:
            if key not in named:
                problems.append((key, _unexpected(name, key, named)))
                suggested.update(difflib.get_close_matches(key, named, n=1))
    missing = [
        n
        for n, p in accepted.items()
        if p.kind in _KEYWORD_KINDS and p.default is inspect.Parameter.empty and n not in params and n not in suggested
    ]
    if missing:
        problems.append((None, f"{name} needs parameter(s) " + ", ".join(map(repr, missing))))
    return problems


_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def article(word: str) -> str:
    """``word`` with "a" or "an" in front, as it is spoken ("an Environment", "a Brain")."""
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def _unexpected(name: str, key: str, named: list[str]) -> str:
    message = f"{name} takes no parameter {key!r}"
    close = difflib.get_close_matches(key, named, n=1)
    if close:
        return message + f"; did you mean {close[0]!r}?"
    if named:
        return message + " (it takes " + ", ".join(map(repr, named)) + ")"
    return message + " (it takes none)"
