"""A swept run's values as a person reads them: in ``results list``, ``show`` and
``compare``, and by ``arl-run check``. Pure text (only :mod:`json` is imported), so that
``arl-run`` may use it without loading the store's modules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


def value_text(value: Any) -> str:
    """A swept value as a person reads it: a string as it is, anything else as compact JSON
    (``1``, ``0.0003``, ``true``, ``[1,2]``), never rounded."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def short_keys(keys: Iterable[str]) -> dict[str, str]:
    """Each dotted key by its shortest tail that no other key ends with, for a column
    header: ``schedule.train.phase_config.episodes`` is ``episodes``, unless another key
    ends in ``.episodes`` too (then ``train.phase_config.episodes`` and its neighbour's)."""
    parts = {key: key.split(".") for key in dict.fromkeys(keys)}

    def shortest(key: str) -> str:
        mine = parts[key]
        for n in range(1, len(mine)):
            if not any(other != key and theirs[-n:] == mine[-n:] for other, theirs in parts.items()):
                return ".".join(mine[-n:])
        return key

    return {key: shortest(key) for key in parts}


def describe(swept: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """``key=value, ...`` of a run's swept values, each key as ``names`` shortens it."""
    names = names or {}
    return ", ".join(f"{names.get(key, key)}={value_text(value)}" for key, value in swept.items())
