"""Where the tests collect what agents, learners and servers log: a list, with the
interface of arl.conductors.links.MetricLink (add, flush)."""

from __future__ import annotations

from typing import Any


class Collected:
    """Every value logged, as (phase, agent, worker, name, step, value); counts flushes."""

    def __init__(self) -> None:
        self.values: list[tuple[Any, ...]] = []
        self.flushes = 0

    def add(self, phase: int, agent: str, worker: int | None, name: str, step: int, value: float) -> None:
        self.values.append((phase, agent, worker, name, step, value))

    def flush(self) -> None:
        self.flushes += 1
