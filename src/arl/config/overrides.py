"""``--set KEY=VALUE`` and ``--sweep KEY=A,B,C``: change a file's values from the command line.

A key is a dotted path into the file: ``seed``, ``schedule.0.phase_0.phase_config.episodes``;
in a list of phases, a phase's name may stand for its index
(``schedule.phase_0.phase_config.episodes``). A value is read as YAML (``3`` is a number,
``[a, b]`` a list, ``"3"`` a string). Several sweeps multiply: every combination is a run of
its own, with a uid that names its values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from arl.classref import article
from arl.config.parse import MAX_DEPTH, parse
from arl.config.report import shorten
from arl.errors import ConfigError


class OverrideError(ValueError):
    """A ``--set`` or ``--sweep`` that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Override:
    """One value to put at ``key``; ``source`` is the option as typed, for messages;
    ``swept`` says it is one value of a ``--sweep`` (which the run's uid then names)."""

    key: str
    value: Any
    source: str
    swept: bool = False

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


def _value(text: str, option: str) -> Any:
    """The value read as YAML, with the guards of the file itself (no tags, no alias
    bombs, no deep nesting, no endless integers), as the same plain data."""
    if not text.strip():
        return ""
    try:
        data, _ = parse(text, option, "the value")
    except ConfigError as exc:
        raise OverrideError(f"{option}: {exc.problems[0].message}") from None
    return data


def _split(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise OverrideError(f"{option} {shorten(text)}: write KEY=VALUE, KEY a dotted path such as seed or "
                            "schedule.phase_0.phase_config.episodes")  # fmt: skip
    if key.count(".") >= MAX_DEPTH:
        raise OverrideError(f"{option} {shorten(text)}: the key is more than {MAX_DEPTH} parts deep")
    return key, value


def parse_set(text: str) -> Override:
    """``KEY=VALUE`` as typed after ``--set``."""
    key, value = _split(text, "--set")
    return Override(key, _value(value, f"--set {text}"), f"--set {text}")


def parse_sweep(text: str) -> list[Override]:
    """``KEY=A,B,C`` as typed after ``--sweep``: one override per value, in order."""
    key, values = _split(text, "--sweep")
    parts = values.split(",")
    if len(parts) < 2 or any(not v.strip() for v in parts):
        raise OverrideError(f"--sweep {text!r}: give two or more values separated by commas")
    return [Override(key, _value(v, f"--sweep {text}"), f"--sweep {key}={v.strip()}", swept=True) for v in parts]


def count(sweeps: list[list[Override]]) -> int:
    """How many runs the sweeps make of one file (each sweep multiplies)."""
    return math.prod(len(values) for values in sweeps)


def combinations(sets: list[Override], sweeps: list[list[Override]]) -> list[list[Override]]:
    """Every run's overrides: the sets, then one value of each sweep (cartesian product).
    Check :func:`count` first: the list is built whole."""
    return [sets + list(choice) for choice in itertools.product(*sweeps)] if sweeps else [sets]


def sweep_suffix(chosen: list[Override]) -> str:
    """What a swept run's uid gets appended: ``[key=value,...]`` of its swept values."""
    swept = [o.source.removeprefix("--sweep ") for o in chosen if o.swept]
    return "[" + ",".join(swept) + "]" if swept else ""


def apply(data: Any, override: Override) -> tuple[str | int, ...]:
    """Put the value into ``data`` (the parsed file) and return the path it went to.

    Mappings on the way are created, also where the file has an empty value (``- b:``
    holds null); list items are addressed by index, or in a list of single-key mappings
    (the schedule) by that key. Raises OverrideError (saying where the path breaks) if it
    runs through something that is neither.
    """
    node, path = data, override.path
    resolved: list[str | int] = []
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = ".".join(path[:depth]) or "the file"
        if isinstance(node, list):
            index = _list_index(node, part, where)
            holder: Any
            slot: str | int
            if not part.lstrip("-").isdigit():  # a name: the item, then the body under its name
                resolved += [index, part]
                holder, slot = node[index], part
            else:
                resolved.append(index)
                holder, slot = node, index
            if last:
                holder[slot] = override.value
            else:
                node = _mapping_at(holder, slot)
        elif isinstance(node, dict):
            resolved.append(part)
            if last:
                node[part] = override.value
            else:
                node = _mapping_at(node, part)
        else:
            raise OverrideError(f"{where} is {article(type(node).__name__)}, it has no {part!r}")
    return tuple(resolved)


def _mapping_at(holder: Any, slot: str | int) -> Any:
    """``holder[slot]`` (a mapping or a list item), made an empty mapping first if it is
    missing or null."""
    current = holder.get(slot) if isinstance(holder, dict) else holder[slot]
    if current is None:
        holder[slot] = current = {}
    return current


def _list_index(items: list[Any], part: str, where: str) -> int:
    if part.lstrip("-").isdigit():
        index = int(part)
        if not -len(items) <= index < len(items):
            raise OverrideError(f"{where} has {len(items)} items, no item {index}")
        return index % len(items)
    for index, item in enumerate(items):
        if isinstance(item, dict) and len(item) == 1 and part in item:
            return index
    raise OverrideError(f"{where} has no item named {part!r}")
