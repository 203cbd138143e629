"""Where problems are, and how they read: the position index, the report that collects
problems, and pydantic's errors turned into a user's sentences."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from arl.config.filemodels import DEVICE_PATTERN
from arl.errors import Location, Problem

DocPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Pos:
    """Where a value, and the key that names it (None for list items), start (0-based)."""

    value: tuple[int, int]
    key: tuple[int, int] | None = None


def render(path: DocPath) -> str:
    """A path as messages show it: keys and indices joined by dots."""
    return ".".join(str(p) for p in path)


class Report:
    """Collects problems, each once, located through the position index.

    Paths not in the index (a missing key, say) are located at their nearest ancestor
    that is, which is the mapping the key is missing from.
    """

    def __init__(self, filename: str, positions: dict[DocPath, Pos]) -> None:
        self.filename = filename
        self.positions = positions
        self.overridden: dict[DocPath, str] = {}  # path -> the option that set it
        self.problems: list[Problem] = []

    def add(self, path: DocPath, message: str, *, at_key: bool = False) -> None:
        problem = Problem(self.location(path, at_key=at_key), render(path), message)
        if problem not in self.problems:
            self.problems.append(problem)

    def location(self, path: DocPath, *, at_key: bool = False) -> Location:
        for depth in range(len(path), 0, -1):
            if path[:depth] in self.overridden:
                return Location(self.overridden[path[:depth]])
        while path not in self.positions and path:
            path, at_key = path[:-1], False
        pos = self.positions.get(path)
        if pos is None:
            return Location(self.filename)
        line, column = pos.key if at_key and pos.key is not None else pos.value
        return Location(self.filename, line + 1, column + 1)

    def line(self, path: DocPath) -> str:
        """``"line N"`` for messages that point at a second place in the file."""
        return f"line {self.location(path).line}"

    def sorted(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: (p.location.line or 0, p.location.column or 0))


# --------------------------------------------------------------------------- sentences


def show(value: Any) -> str:
    """A value as the user wrote it, with its YAML type, for "expected X, got Y"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"string {shorten(value)}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def shorten(text: str, limit: int = 60) -> str:
    """``text`` quoted (control characters escaped), cut to about ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"


_EXPECTED = {
    "int_type": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "float_type": "a number",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "none_required": "null",
}

_PATTERNS = {DEVICE_PATTERN: "a torch device: cpu, cuda, cuda:<n> or mps"}
"""What a value matching each of the file schema's patterns looks like, in words."""

_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def describe(error: Any) -> str:
    """A user's sentence for one pydantic error (other than missing and unknown keys)."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {show(value)}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {ctx[key]}, got {show(value)}"
    if kind == "finite_number":
        return f"must be a finite number, got {show(value)}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERNS:
        return f"must be {_PATTERNS[ctx['pattern']]}, got {show(value)}"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = f"must be {ctx.get('expected')}, got {show(value)}"
        return message + did_you_mean(str(value), options)
    return str(error["msg"])


def did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------- the file schema


def fields_at(model: type[BaseModel], loc: DocPath) -> list[str]:
    """The keys valid at ``loc`` inside ``model`` (for "did you mean" on unknown keys)."""
    tp: Any = model
    for part in loc:
        tp = _strip_none(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            tp = info.annotation if info is not None else None
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return []
    tp = _strip_none(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _strip_none(tp: Any) -> Any:
    """``X`` for ``X | None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def schema_problems(
    model: type[BaseModel], data: Any, skip_missing: Collection[str] = ()
) -> tuple[BaseModel | None, list[tuple[DocPath, str, bool]]]:
    """Validate ``data`` against ``model``: the model, or problems as (loc, message, at_key).

    A misspelt required key is reported once, as the unknown key with its suggestion,
    not a second time as "missing".
    """
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors()
    found: list[tuple[DocPath, str, bool]] = []
    suggested: set[DocPath] = set()
    for error in errors:
        loc: DocPath = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), fields_at(model, loc[:-1]), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            found.append((loc, f"unknown key {shorten(str(loc[-1]))}{hint}", True))
            suggested.update((*loc[:-1], c) for c in close)
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "missing":
            if loc not in suggested and not (len(loc) == 1 and loc[0] in skip_missing):
                found.append((loc[:-1], f"missing required key {loc[-1]!r}", False))
        elif error["type"] != "extra_forbidden":
            found.append((loc, describe(error), False))
    return None, found
