"""The dashboard's arithmetic, free of the store: steps per second from counts seen over
time (:class:`RateMeter`), and a chart's points from every episode's returns
(:func:`returns_chart`)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WINDOW = 5.0
"""Seconds of counts a rate is taken over: the store's writer commits in batches, so the
count grows in jumps that one poll's difference would show as a saw."""
MIN_SPAN = 0.5
"""Seconds two counts must be apart before a rate is given."""
MIN_GAP = 0.25
"""Seconds between two samples kept: several pages polling at once add no more samples."""

CHART_POINTS = 600
"""At most this many points a line: more episodes than that are averaged in bins."""


class RateMeter:
    """How fast counts grow, per key (a run), from the counts :meth:`rate` is given.

    The rate is the growth since the newest sample at least :data:`WINDOW` seconds old
    (or the oldest there is), once that lies :data:`MIN_SPAN` seconds back; before that it
    is None. A key's samples are dropped by :meth:`keep`.
    """

    def __init__(self, window: float = WINDOW, min_span: float = MIN_SPAN, min_gap: float = MIN_GAP) -> None:
        self.window, self.min_span, self.min_gap = window, min_span, min_gap
        self._samples: dict[Hashable, deque[tuple[float, int]]] = {}

    def rate(self, key: Hashable, now: float, count: int) -> float | None:
        """Count ``count`` of ``key`` seen at ``now`` (monotonic seconds); its growth per second."""
        samples = self._samples.setdefault(key, deque())
        if not samples or now - samples[-1][0] >= self.min_gap:
            samples.append((now, count))
        # Keep one sample at least a window old as the base; drop the ones before it.
        while len(samples) > 1 and now - samples[1][0] >= self.window:
            samples.popleft()
        since, then = samples[0]
        span = now - since
        if span < self.min_span:
            return None
        return max(0, count - then) / span

    def keep(self, keys: Iterable[Hashable]) -> None:
        """Forget every key but ``keys``."""
        kept = set(keys)
        for key in [key for key in self._samples if key not in kept]:
            del self._samples[key]


@dataclass(frozen=True, slots=True)
class Episode:
    """One episode's place in a run and its return per agent (so far, while ``open``)."""

    phase: int
    phase_name: str
    returns: Mapping[str, float]
    open: bool = False


def returns_chart(episodes: Sequence[Episode], max_points: int = CHART_POINTS) -> dict[str, Any]:
    """The returns chart's data: for each agent a line of ``[x, return]`` points, x the
    episode's place in the run (0, 1, ...: by phase, episode and worker); where there are
    more than ``max_points`` episodes, each point is the mean of ``per_point`` of them, at
    their middle. ``phases`` says where each phase begins; ``open`` how many episodes are
    still running (their return is so far). An agent with no return in a bin (it did not
    act, or its return is not a number) has no point there."""
    agents = sorted({agent for episode in episodes for agent in episode.returns})
    per_point = max(1, math.ceil(len(episodes) / max(1, max_points)))
    lines: dict[str, list[list[float]]] = {agent: [] for agent in agents}
    for start in range(0, len(episodes), per_point):
        chunk = episodes[start : start + per_point]
        x = start + (len(chunk) - 1) / 2
        for agent in agents:
            values = [v for e in chunk if (v := e.returns.get(agent)) is not None and math.isfinite(v)]
            if values:
                lines[agent].append([x, sum(values) / len(values)])
    phases: list[dict[str, Any]] = []
    for place, episode in enumerate(episodes):
        if not phases or phases[-1]["phase"] != episode.phase:
            phases.append({"phase": episode.phase, "name": episode.phase_name, "x": place})
    return {
        "agents": agents,
        "episodes": len(episodes),
        "per_point": per_point,
        "lines": lines,
        "phases": phases,
        "open": sum(episode.open for episode in episodes),
    }
