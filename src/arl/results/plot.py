"""The picture a user wants first: each agent's return, episode by episode, across phases;
and the runs of a sweep side by side, a panel per agent and a line per run.

Drawn on a bare matplotlib ``Figure`` (rendered by Agg when saved), never through
pyplot: no GUI backend, no global figure state, so it works headless and in a notebook.
Every text from the store (uids, swept values, agent and phase names) is drawn as it
is (:func:`literal`): matplotlib would read ``$...$`` in it as a formula.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.results import queries as q
from arl.results.common import require
from arl.results.queries import Record, Store
from arl.results.swept import describe, short_keys

MARKERS_UP_TO = 100
"""Episodes up to which each point is marked; beyond, lines only."""
COMPARED_PATH = Path("returns-compared.png")
"""Where :func:`plot_runs` draws when not told."""


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
        found, (records, _columns, agents) = _returns_of(reader, run)
    target = Path(path) if path is not None else default_path(found["uid"])
    figure = draw_returns(f"{found['uid']} (run id {found['id']}, {found['status'].lower()})", records, agents)
    return _save(figure, target)


def _returns_of(reader: q.Reader, run: str | int) -> tuple[Record, q.EpisodeTable]:
    """The run ``run`` names and its episodes with each agent's return; ArlError if it has
    none to draw (no episode, or no agent acted yet)."""
    found = q.find_run(reader, run)
    table = q.episode_table(reader, found["id"], rewards=False)
    if not table.records or not table.agents:
        raise ArlError(f"run {found['uid']} (run id {found['id']}) has no agent actions to plot")
    return found, table


def literal(text: str) -> str:
    """``text`` for a matplotlib label or title, shown as written: each ``$`` escaped, as
    a pair of them would start a mathtext formula (``note=$x$``) and an odd formula
    (``$\\nope$``) would fail the drawing."""
    return text.replace("$", r"\$")


def _save(figure: Any, target: Path) -> Path:
    try:
        figure.savefig(target, format="png", dpi=100)
    except OSError as exc:
        raise ArlError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # matplotlib's: text it cannot lay out (a formula it cannot parse)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArlError(f"cannot draw {target}: matplotlib refused the figure's text: {first}") from exc
    return target


@dataclass(frozen=True)
class RunReturns:
    """One run of :func:`plot_runs`: its legend label and its episodes
    (:func:`arl.results.queries.episode_table` rows, with ``return.<agent>``)."""

    label: str
    records: Sequence[Record]
    agents: Sequence[str]


def plot_runs(runs: Sequence[str | int], path: str | os.PathLike[str] | None = None, store: Store = None) -> Path:
    """Draw several runs' returns in one figure, to a PNG at ``path`` (default
    :data:`COMPARED_PATH`), and return the path: a panel per agent, in it a line per run,
    x the episode across phases as in :func:`plot_returns`. Each run is labelled by its
    uid and the values a sweep made it with (``dummy-run-3f9a1c2b7d  seed=1``)."""
    with q.reading(store) as reader:
        found, tables = zip(*(_returns_of(reader, run) for run in runs), strict=True)
    labels = _labels(found)
    drawn = [RunReturns(label, t.records, t.agents) for label, t in zip(labels, tables, strict=True)]
    return _save(draw_runs(f"returns of {len(drawn)} runs", drawn), Path(path) if path else COMPARED_PATH)


def _labels(runs: Sequence[Record]) -> list[str]:
    """Each run's uid (with its id where two runs share one) and its swept values, their
    keys shortened alike for all runs."""
    uids = [run["uid"] for run in runs]
    names = short_keys(key for run in runs for key in run["swept"] or {})
    labels = []
    for run in runs:
        label = run["uid"] if uids.count(run["uid"]) == 1 else f"{run['uid']} (run id {run['id']})"
        labels.append(f"{label}  {describe(run['swept'], names)}" if run["swept"] else label)
    return labels


def draw_runs(title: str, runs: Sequence[RunReturns]) -> Any:
    """The figure of :func:`plot_runs`: a panel per agent (every agent of any run, by name),
    a line per run in the run's colour. Phases are shaded and named when every run has
    the same ones, of the same lengths; test phases are dashed in any case."""
    figure_module: Any = require("matplotlib.figure", "plots")
    agents = sorted({agent for run in runs for agent in run.agents})
    figure = figure_module.Figure(figsize=(11, 1.5 + 3 * len(agents)), layout="constrained")
    panels = figure.subplots(len(agents), 1, sharex=True, squeeze=False)[:, 0]
    spans = [_phase_spans(run.records) for run in runs]
    shared = spans[0] if all(s == spans[0] for s in spans) else None
    longest = max(len(run.records) for run in runs)
    for axes, agent in zip(panels, agents, strict=True):
        if shared is not None:
            _draw_phases(axes, shared)
        for i, (run, run_spans) in enumerate(zip(runs, spans, strict=True)):
            if agent in run.agents:
                _draw_agent(axes, run_spans, run.records, agent, color=f"C{i % 10}", label=run.label,
                            marker="o" if longest <= MARKERS_UP_TO else None)  # fmt: skip
        axes.set_ylabel(literal(f"return of {agent}"))
        axes.grid(alpha=0.3)
    panels[-1].set_xlabel("episode, across phases (test phases dashed)")
    panels[-1].set_xlim(0.5, longest + 0.5)
    if longest <= 20:
        panels[-1].set_xticks(range(1, longest + 1))
    figure.suptitle(literal(title))
    handles, labels = panels[0].get_legend_handles_labels()
    for axes in panels[1:]:  # a run missing the first panel's agent is still in the legend
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, title="run", loc="outside lower center", ncols=min(len(labels), 2))
    return figure


def draw_returns(title: str, records: Sequence[Record], agents: Sequence[str]) -> Any:
    """The figure of :func:`plot_returns`, from :func:`arl.results.queries.episode_table` rows."""
    figure_module: Any = require("matplotlib.figure", "plots")
    figure = figure_module.Figure(figsize=(10, 5), layout="constrained")
    axes = figure.add_subplot()
    spans = _phase_spans(records)
    _draw_phases(axes, spans)
    _draw_returns(axes, spans, records, agents)
    axes.set_title(literal(title), pad=22)
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
        axes.text((first + last) / 2, 1.01, literal(label), transform=axes.get_xaxis_transform(),
                  ha="center", va="bottom", fontsize=9, color="0.3")  # fmt: skip


def _draw_returns(axes: Any, spans: Spans, records: Sequence[Record], agents: Sequence[str]) -> None:
    """One line per agent and phase, so that no line joins two phases; one legend entry per agent."""
    marker = "o" if len(records) <= MARKERS_UP_TO else None
    for i, agent in enumerate(agents):
        _draw_agent(axes, spans, records, agent, color=f"C{i % 10}", label=agent, marker=marker)


def _draw_agent(
    axes: Any, spans: Spans, records: Sequence[Record], agent: str, *, color: str, label: str, marker: str | None
) -> None:
    """``agent``'s return over ``records``, a line a phase (dashed in a test phase), one
    legend entry."""
    shown: str | None = literal(label)
    for (first, last), (_name, mode) in spans.items():
        points = [(x, records[x - 1][f"return.{agent}"]) for x in range(first, last + 1)]
        points = [(x, y) for x, y in points if not math.isnan(y)]
        if not points:
            continue
        axes.plot([x for x, _ in points], [y for _, y in points], color=color, marker=marker,
                  linestyle="--" if mode == "test" else "-", label=shown)  # fmt: skip
        shown = None


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
