"""``--set KEY=VALUE`` and ``--sweep KEY=A,B,C``: change a file's values from the command line.

A key is a dotted path into the file: ``seed``, ``schedule.0.phase_0.phase_config.episodes``;
in a list of phases, a phase's name may stand for its index
(``schedule.phase_0.phase_config.episodes``). A value is read as YAML (``3`` is a number,
``[a, b]`` a list, ``"3"`` a string). Several sweeps multiply: every combination is a run of
its own. Its uid is the file's with a short hash of its swept values appended
(:func:`sweep_uid`), each keyed by the value it reached in the file whatever the key's
spelling (:func:`swept_by_path`): safe in a path, the same for the same values, and the
values themselves go into the store with the run, keyed as typed (:func:`swept_values`).

``paths`` cannot be overridden: its folders go on the Python path before the file is
read and checked (:mod:`arl.config.modulepaths`), so a value given here would be
checked but never used.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arl.classref import article
from arl.config import modulepaths
from arl.config.parse import MAX_DEPTH, parse
from arl.config.report import shorten
from arl.errors import ConfigError


class OverrideError(ValueError):
    """A ``--set`` or ``--sweep`` that cannot be read; the message says which and why."""


class SweptTwice(OverrideError):
    """Two ``--sweep`` options, spelled differently, that sweep one value of the file;
    ``option`` is the later one (``--sweep KEY``), where the problem is reported."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Override:
    """One value to put at ``key``; ``source`` is the option as typed, for messages;
    ``swept`` says it is one value of a ``--sweep`` (stored with the run, and hashed into
    its uid)."""

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
    if key.split(".")[0] == modulepaths.KEY:
        raise OverrideError(
            f"{option} {shorten(text)}: {modulepaths.KEY} cannot be set from the command line: its folders go on "
            f"the Python path before the file is read and checked, so write {modulepaths.KEY}: in the experiment file"
        )
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


def parse_sweeps(texts: Sequence[str]) -> list[list[Override]]:
    """Every ``--sweep`` as typed, each a list of overrides; a key swept twice is refused
    (its runs would differ only in a value the later sweep replaces)."""
    sweeps = [parse_sweep(text) for text in texts]
    seen: set[str] = set()
    for sweep in sweeps:
        key = sweep[0].key
        if key in seen:
            raise OverrideError(f"--sweep {key} is given twice; give all its values in one --sweep {key}=A,B,...")
        seen.add(key)
    return sweeps


def count(sweeps: list[list[Override]]) -> int:
    """How many runs the sweeps make of one file (each sweep multiplies)."""
    return math.prod(len(values) for values in sweeps)


def combinations(sets: list[Override], sweeps: list[list[Override]]) -> list[list[Override]]:
    """Every run's overrides: the sets, then one value of each sweep (cartesian product).
    Check :func:`count` first: the list is built whole."""
    return [sets + list(choice) for choice in itertools.product(*sweeps)] if sweeps else [sets]


HASH_DIGITS = 10
"""Hex digits of the hash a swept run's uid ends in: 40 bits, so that two of a thousand runs
share one by chance about once in two million sweeps."""
SUFFIX_LENGTH = 1 + HASH_DIGITS
"""Characters :func:`sweep_uid` adds to the file's uid: ``-`` and the hash."""


def swept_values(chosen: Sequence[Override]) -> dict[str, Any]:
    """A run's swept values, ``{"dotted.key": value}`` in the order the sweeps were given;
    empty for a run no ``--sweep`` made."""
    return {o.key: o.value for o in chosen if o.swept}


def sweep_uid(uid: str, swept: Mapping[str, Any]) -> str:
    """The uid of the run of file ``uid`` made with ``swept`` values: ``<uid>-<hash>``.

    Only letters, digits and ``-`` are added, so a uid that is a valid name stays one
    (folders and process titles are named from it). The hash is of the keys and values
    as JSON, keys sorted: the same values give the same uid again, whatever the order
    of the ``--sweep`` options (``--resume`` finds a run's snapshots by its uid), and
    ``1``, ``1.0`` and ``"1"`` give three. Give the keys as :func:`swept_by_path` spells
    them, so that two spellings of one key give one uid."""
    canonical = json.dumps(swept, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"{uid}-{hashlib.sha256(canonical.encode('ascii')).hexdigest()[:HASH_DIGITS]}"


def swept_by_path(data: Any, variant: Sequence[Override]) -> dict[str, Any]:
    """A run's swept values keyed by the value each reached in ``data`` (the parsed file,
    changed in place: every override of ``variant`` is applied, in order), each key spelled
    one way (:func:`spelling`): ``schedule.0.phase_0.x`` and ``schedule.phase_0.x`` are one
    key. Raises :class:`SweptTwice` when two sweeps reach one value, and OverrideError
    where a path breaks (as :func:`apply`)."""
    keyed: dict[str, Any] = {}
    typed: dict[str, str] = {}
    for override in variant:
        path = apply(data, override)
        if not override.swept:
            continue
        key = spelling(data, path)
        if key in typed:
            raise SweptTwice(
                f"sweeps the same value as --sweep {typed[key]} ({key}); give all its values in one --sweep",
                f"--sweep {override.key}",
            )
        typed[key], keyed[key] = override.key, override.value
    return keyed


def spelling(data: Any, path: Sequence[str | int]) -> str:
    """The dotted key of ``path`` (as :func:`apply` returns it) in ``data``, one spelling
    for each value: a schedule item by its name (``schedule.phase_0.phase_config.episodes``,
    as the docs write it) wherever that name finds the item, any other list item by its
    index counted from the start (``layers.1``, not ``layers.-1``), a mapping's key as it
    is. A key already spelled so is kept as typed, so its runs keep their uids."""
    words: list[str] = []
    node: Any = data
    rest = list(path)
    while rest:
        part = rest.pop(0)
        if isinstance(node, list) and isinstance(part, int):
            item = node[part]
            name = rest[0] if rest else None
            if isinstance(name, str) and not name.lstrip("-").isdigit() and _named(node, name) == part:
                del rest[0]
                words.append(name)
                node = item.get(name)
                continue
            words.append(str(part))
            node = item
        else:
            words.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(words)


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
    named = _named(items, part)
    if named is None:
        raise OverrideError(f"{where} has no item named {part!r}")
    return named


def _named(items: list[Any], name: str) -> int | None:
    """The index of the first item of ``items`` that is a mapping of the one key ``name``
    (a schedule's phase), if any."""
    for index, item in enumerate(items):
        if isinstance(item, dict) and len(item) == 1 and name in item:
            return index
    return None
