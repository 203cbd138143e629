"""Which snapshots to keep: keepers decide, the caller deletes.

A keeper is told of each new snapshot, oldest first, by :meth:`StatesKeeper.append`,
and answers with the snapshots to remove now (never the newest). The built-in rules
each say which of the snapshots they were told of to keep; :func:`combine` joins them
for an experiment file's ``keep: {latest: 10, every_hours: 1, max_total_mb: 500}``:

1. a snapshot is kept if *any* retention rule (``latest``, ``every_hours``) keeps it;
2. then the size cap (``max_total_mb``) removes the oldest of those kept until their total
   size is at most the cap, never removing the newest (which may alone exceed it);
3. with no retention rule, every snapshot is kept before the cap applies.

A removed snapshot is forgotten: it is never offered for removal twice. A keeper made
anew for a resumed run learns of the snapshots made before by :func:`restore_keeper`.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.state.snapshot import MANIFEST

MB = 1024 * 1024


def saved_at(path: Path) -> float:
    """When the snapshot at ``path`` was saved (POSIX seconds), from its manifest."""
    data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    return datetime.fromisoformat(data["saved_at"]).timestamp()


def folder_bytes(path: Path) -> int:
    """The total size of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class StatesKeeper(ABC):
    """Told of each new snapshot in order; says which to remove. Never the newest."""

    @abstractmethod
    def append(self, path: Path) -> list[Path]:
        """Record ``path`` as the newest snapshot; return the snapshots to remove now."""


def restore_keeper(keeper: StatesKeeper, paths: Iterable[Path]) -> list[Path]:
    """Tell a new ``keeper`` of a resumed run's snapshots made before (``paths``, oldest
    first: the paths of :func:`arl.state.snapshot.snapshots`), as if it had been told of
    each when it was made, so that it goes on deciding as the first run's keeper would.
    Returns what it answers to remove among them (under new ``keep:`` settings, say);
    the caller deletes those, as after any :meth:`StatesKeeper.append`."""
    removed: list[Path] = []
    for path in paths:
        removed += keeper.append(path)
    return removed


class RuleKeeper(StatesKeeper):
    """A keeper whose decision is a pure function of the snapshots it holds (:meth:`keep`)."""

    def __init__(self) -> None:
        self.held: list[Path] = []  # oldest first

    @abstractmethod
    def keep(self, paths: Sequence[Path]) -> set[Path]:
        """Which of ``paths`` (oldest first, never empty) to keep."""

    def append(self, path: Path) -> list[Path]:
        self.held.append(path)
        kept = self.keep(self.held) | {path}  # the newest is never removed
        removed = [p for p in self.held if p not in kept]
        self.held = [p for p in self.held if p in kept]
        return removed


class LatestKeeper(RuleKeeper):
    """Keeps the ``latest`` newest snapshots."""

    def __init__(self, latest: int) -> None:
        super().__init__()
        if latest < 1:
            raise ArlError(f"keep.latest must be at least 1, not {latest}")
        self.latest = latest

    def keep(self, paths: Sequence[Path]) -> set[Path]:
        return set(paths[-self.latest :])


class EveryHoursKeeper(RuleKeeper):
    """Keeps the first snapshot of each window of ``hours`` (windows start at the POSIX
    epoch, so ``hours: 1`` means each clock hour, UTC), and the newest."""

    def __init__(self, hours: float, time_of: Callable[[Path], float] = saved_at) -> None:
        super().__init__()
        if not (hours > 0 and math.isfinite(hours)):
            raise ArlError(f"keep.every_hours must be a positive number, not {hours}")
        self.seconds = hours * 3600.0
        self.time_of = time_of
        self._times: dict[Path, float] = {}

    def keep(self, paths: Sequence[Path]) -> set[Path]:
        first: dict[int, Path] = {}
        for path in paths:
            if path not in self._times:  # read once: the manifest is not read again per append
                self._times[path] = self.time_of(path)
            first.setdefault(math.floor(self._times[path] / self.seconds), path)
        kept = set(first.values())
        self._times = {p: t for p, t in self._times.items() if p in kept or p == paths[-1]}
        return kept


class MaxTotalKeeper(RuleKeeper):
    """Removes the oldest snapshots until the rest total at most ``max_total_mb``
    (MiB); the newest is kept even if it alone is larger."""

    def __init__(self, max_total_mb: float, size_of: Callable[[Path], int] = folder_bytes) -> None:
        super().__init__()
        if not (max_total_mb > 0 and math.isfinite(max_total_mb)):
            raise ArlError(f"keep.max_total_mb must be a positive number, not {max_total_mb}")
        self.max_bytes = max_total_mb * MB
        self.size_of = size_of
        self._sizes: dict[Path, int] = {}

    def keep(self, paths: Sequence[Path]) -> set[Path]:
        kept: set[Path] = set()
        total = 0
        for index, path in enumerate(reversed(paths)):  # newest first: the oldest go first
            if path not in self._sizes:
                self._sizes[path] = self.size_of(path)
            total += self._sizes[path]
            if index > 0 and total > self.max_bytes:
                break
            kept.add(path)
        self._sizes = {p: s for p, s in self._sizes.items() if p in kept}
        return kept


class Combined(RuleKeeper):
    """Rules joined as the module's docstring says: any retention rule keeps, then caps trim."""

    def __init__(self, rules: Sequence[RuleKeeper], caps: Sequence[MaxTotalKeeper]) -> None:
        super().__init__()
        self.rules = list(rules)
        self.caps = list(caps)

    def keep(self, paths: Sequence[Path]) -> set[Path]:
        kept = set(paths) if not self.rules else set().union(*(rule.keep(paths) for rule in self.rules))
        if paths:
            kept.add(paths[-1])  # the newest always stays: the caps must count it
        for cap in self.caps:
            kept = cap.keep([p for p in paths if p in kept])
        return kept


def combine(*keepers: RuleKeeper) -> RuleKeeper:
    """One keeper from several: a :class:`MaxTotalKeeper` among them caps the total of
    what the others keep; the others keep a snapshot if any of them does."""
    caps = [k for k in keepers if isinstance(k, MaxTotalKeeper)]
    rules = [k for k in keepers if not isinstance(k, MaxTotalKeeper)]
    return Combined(rules, caps)


KEYS = {"latest", "every_hours", "max_total_mb"}


def from_keep(keep: Mapping[str, float]) -> RuleKeeper:
    """The keeper for an experiment file's ``keep:`` table (keys: ``latest``,
    ``every_hours``, ``max_total_mb``); an empty table keeps everything."""
    unknown = sorted(keep.keys() - KEYS)
    if unknown:
        raise ArlError(f"unknown keep setting(s) {unknown}; use {sorted(KEYS)}")
    keepers: list[RuleKeeper] = []
    if "latest" in keep:
        latest = keep["latest"]
        if not isinstance(latest, int) or isinstance(latest, bool):
            raise ArlError(f"keep.latest must be a whole number, not {latest!r}")
        keepers.append(LatestKeeper(latest))
    if "every_hours" in keep:
        keepers.append(EveryHoursKeeper(_number(keep, "every_hours")))
    if "max_total_mb" in keep:
        keepers.append(MaxTotalKeeper(_number(keep, "max_total_mb")))
    return combine(*keepers)


def _number(keep: Mapping[str, Any], key: str) -> float:
    value = keep[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ArlError(f"keep.{key} must be a number more than 0, not {value!r}")
    return float(value)
