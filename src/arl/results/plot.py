"""The picture a user wants first: each agent's return, episode by episode, across phases.

Drawn on a bare matplotlib ``Figure`` (rendered by Agg when saved), never through
pyplot: no GUI backend, no global figure state, so it works headless and in a notebook.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.results import queries as q
from arl.results.common import require
from arl.results.queries import Record, Store

MARKERS_UP_TO = 100
"""Episodes up to which each point is marked; beyond, lines only."""


def default_path(uid: str) -> Path:
    """``<run uid>-returns.png`` in the working directory, the uid made a safe file name."""
    return Path(re.sub(r"[^\w.=\[\],+-]", "_", uid) + "-returns.png")


def plot_returns(run: str | int, path: str | os.PathLike[str] | None = None, store: Store = None) -> Path:
    """Draw each agent's return per episode of ``run`` across its phases to a PNG at
    ``path`` (default :func:`default_path`) and return the path.

    x is the episode, counted across phases (ordered by phase, episode, worker); phases
    are separated and named at the top, test phases shaded and drawn dashed.
    """
    with q.reading(store) as reader:
        found = q.find_run(reader, run)
        records, _columns, agents = q.episode_table(reader, found["id"], rewards=False)
    if not records or not agents:
        raise ArlError(f"run {found['uid']} (run id {found['id']}) has no agent actions to plot")
    target = Path(path) if path is not None else default_path(found["uid"])
    figure = draw_returns(f"{found['uid']} (run id {found['id']}, {found['status'].lower()})", records, agents)
    try:
        figure.savefig(target, format="png", dpi=100)
    except OSError as exc:
        raise ArlError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def draw_returns(title: str, records: Sequence[Record], agents: Sequence[str]) -> Any:
    """The figure of :func:`plot_returns`, from :func:`arl.results.queries.episode_table` rows."""
    figure_module: Any = require("matplotlib.figure", "plots")
    figure = figure_module.Figure(figsize=(10, 5), layout="constrained")
    axes = figure.add_subplot()
    spans = _phase_spans(records)
    _draw_phases(axes, spans)
    _draw_returns(axes, spans, records, agents)
    axes.set_title(title, pad=22)
    axes.set_xlabel("episode, across phases (test phases shaded and dashed)")
    axes.set_ylabel("return (sum of the agent's objective)")
    axes.set_xlim(0.5, len(records) + 0.5)
    if len(records) <= 20:
        axes.set_xticks(range(1, len(records) + 1))
    axes.grid(alpha=0.3)
    axes.legend(title="agent", loc="best")
    return figure


Spans = dict[tuple[int, int], tuple[str, str]]
"""The first and last x of each phase, with its name and mode."""


def _draw_phases(axes: Any, spans: Spans) -> None:
    for (first, last), (name, mode) in spans.items():
        if mode == "test":
            axes.axvspan(first - 0.5, last + 0.5, color="0.93", zorder=0)
        if first > 1:
            axes.axvline(first - 0.5, color="0.45", linestyle=":", linewidth=1)
        label = name if name == mode else f"{name} ({mode})"
        axes.text((first + last) / 2, 1.01, label, transform=axes.get_xaxis_transform(),
                  ha="center", va="bottom", fontsize=9, color="0.3")  # fmt: skip


def _draw_returns(axes: Any, spans: Spans, records: Sequence[Record], agents: Sequence[str]) -> None:
    """One line per agent and phase, so that no line joins two phases; one legend entry per agent."""
    marker = "o" if len(records) <= MARKERS_UP_TO else None
    for i, agent in enumerate(agents):
        label: str | None = agent
        for (first, last), (_name, mode) in spans.items():
            points = [(x, records[x - 1][f"return.{agent}"]) for x in range(first, last + 1)]
            points = [(x, y) for x, y in points if not math.isnan(y)]
            if not points:
                continue
            axes.plot([x for x, _ in points], [y for _, y in points], color=f"C{i % 10}", marker=marker,
                      linestyle="--" if mode == "test" else "-", label=label)  # fmt: skip
            label = None


def _phase_spans(records: Sequence[Record]) -> Spans:
    """The first and last x (1-based episode number) of each phase, with its name and mode."""
    spans: Spans = {}
    start = 1
    for x, record in enumerate(records, start=1):
        ends_phase = x == len(records) or records[x]["phase"] != record["phase"]
        if ends_phase:
            spans[(start, x)] = (record["phase_name"], record["mode"])
            start = x + 1
    return spans
