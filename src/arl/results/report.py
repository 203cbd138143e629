"""The text of ``arl-run results list`` and ``show``: records in, lines out, no I/O."""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from arl.results.queries import COMPARE_COLUMNS, Record
from arl.results.swept import describe, short_keys, value_text
from arl.terminal import printable

EPISODES_SHOWN = 30
"""``show`` prints every episode's returns up to this many episodes; beyond, the summary."""


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = (), indent: int = 0
) -> str:
    """Aligned columns; the columns numbered in ``right`` (numbers) aligned right."""
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        aligned = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return (" " * indent + "  ".join(aligned)).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def counted(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def text(value: Any) -> str:
    return "-" if value is None else str(value)


def runs_table(runs: Sequence[Record]) -> str:
    """``results list``: a row per run; a last column ``swept`` when any run was made by a
    ``--sweep``, its values with keys shortened alike for all rows (:func:`short_keys`)."""
    headers = ["uid", "id", "status", "started (UTC)", "duration", "phases", "episodes", "steps", "end reason"]
    rows = [
        [r["uid"], str(r["id"]), r["status"], when(r["started_at"]), duration(r["duration_s"]), str(r["phases"]),
         str(r["episodes"]), str(r["steps"]), text(r["end_reason"])]
        for r in runs
    ]  # fmt: skip
    if any(r["swept"] for r in runs):
        names = short_keys(key for r in runs for key in r["swept"] or {})
        headers.append("swept")
        for row, r in zip(rows, runs, strict=True):
            row.append(printable(describe(r["swept"], names)) if r["swept"] else "-")  # users' text
    return table(headers, rows, right={1, 4, 5, 6, 7})


def compare_table(records: Sequence[Record], columns: Sequence[str]) -> str:
    """``results compare``: a row per run; swept keys shortened (:func:`short_keys`) and
    their values as given, returns to 3 decimals, ``-`` where a run has no value."""
    swept = [c for c in columns if c not in COMPARE_COLUMNS and "/" not in c]
    names = short_keys(swept)
    headers = [names.get(c, c) for c in columns]

    def cell(column: str, value: Any) -> str:
        if value is None:
            return "-"
        if column in names:
            return printable(value_text(value))  # users' text: no escape codes reach the terminal
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    rows = [[cell(c, r.get(c)) for c in columns] for r in records]
    numbers = {i for i, c in enumerate(columns) if c == "id" or "/" in c}
    return table(headers, rows, right=numbers)


def run_header(run: Record) -> str:
    """The head of ``show``: a run as :func:`arl.results.queries.find_run` gives it, with its counts."""
    said = run["end_reason"] in (None, "completed", run["status"].lower())  # the status says it already
    reason = "" if said else f", ended by {run['end_reason']}"
    if run["ended_at"] is not None:
        ended = f"{when(run['ended_at'])} UTC  ({duration(run['duration_s'])})"
    else:
        ended = f"-  (for {duration(run['duration_s'])} so far)"
    fields = [
        ("experiment", text(run["experiment_uid"])),
        ("seed", str(run["seed"])),
        *([("swept", printable(describe(run["swept"])))] if run["swept"] else []),
        ("host", run["host"]),
        ("arl version", run["arl_version"]),
        ("started", f"{when(run['started_at'])} UTC"),
        ("ended", ended),
        ("stored", ", ".join(counted(n, what) for n, what in ((run["phases"], "phase"), (run["episodes"], "episode"),
                   (run["steps"], "step"), (run["actions"], "action"), (run["checkpoints"], "checkpoint")))),
    ]  # fmt: skip
    lines = [f"run {run['uid']} (run id {run['id']}): {run['status']}{reason}"]
    lines += [f"  {name:<12} {value}" for name, value in fields]
    if run["error"]:
        lines.append("  error")
        lines += ["    " + line for line in run["error"].rstrip().splitlines()]
    return "\n".join(lines)


def phases_table(phases: Sequence[Record]) -> str:
    headers = ("phase", "name", "mode", "episodes", "steps", "duration", "end reason")
    rows = [
        (str(p["phase"]), p["name"], p["mode"], str(p["episodes"]), str(p["steps"]), duration(p["duration_s"]),
         text(p["end_reason"]))
        for p in phases
    ]  # fmt: skip
    return table(headers, rows, right={0, 3, 4, 5}, indent=2)


def returns_summary(episodes: Sequence[Record], agents: Sequence[str]) -> str:
    """Mean, min and max return of each agent in each phase."""
    rows = []
    for phase in dict.fromkeys((e["phase"], e["phase_name"], e["mode"]) for e in episodes):
        for agent in agents:
            values = [e[f"return.{agent}"] for e in episodes if e["phase"] == phase[0]]
            values = [v for v in values if not math.isnan(v)]
            if values:
                stats = (statistics.fmean(values), min(values), max(values))
                rows.append((phase[1], phase[2], agent, str(len(values)), *(number(v) for v in stats)))
    return table(("phase", "mode", "agent", "episodes", "mean", "min", "max"), rows, right={3, 4, 5, 6}, indent=2)


def episodes_table(episodes: Sequence[Record], agents: Sequence[str]) -> str:
    headers = ("phase", "worker", "episode", "steps", "end reason", *agents)
    rows = [
        (e["phase_name"], str(e["worker"]), str(e["episode"]), str(e["steps"]), text(e["end_reason"]),
         *(number(e[f"return.{agent}"]) for agent in agents))
        for e in episodes
    ]  # fmt: skip
    return table(headers, rows, right={1, 2, 3, *range(5, 5 + len(agents))}, indent=2)


def events_table(events: Sequence[Record]) -> str:
    """One line an event; a detail's first line only (a failure's traceback is long)."""

    def first_line(value: Any) -> str:
        lines = str(value).strip().splitlines()
        return lines[0] if lines else ""

    rows = [
        (when(e["at"]), e["kind"], ", ".join(f"{k}={first_line(v)}" for k, v in e["detail"].items())) for e in events
    ]
    return table(("at (UTC)", "event", "detail"), rows, right=set(), indent=2)


def metrics_table(metrics: Sequence[Record]) -> str:
    """One line a logged value: ``-`` for the worker of a brain's value."""
    headers = ("phase", "agent", "worker", "name", "step", "value", "time (UTC)")
    rows = [
        (m["phase_name"], m["agent"], text(m["worker"]), m["name"], str(m["step"]), f"{m['value']:.6g}",
         m["time"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
        for m in metrics
    ]  # fmt: skip
    return table(headers, rows, right={2, 4, 5})


def show(
    run: Record,
    phases: Sequence[Record],
    episodes: Sequence[Record],
    agents: list[str],
    events: Sequence[Record] = (),
) -> str:
    """The whole of ``arl-run results show``."""
    parts = [run_header(run), "", "phases", phases_table(phases) if phases else "  (none yet)"]
    if episodes and agents:
        parts += ["", "return per episode (sum of the agent's objective), by phase"]
        parts += [returns_summary(episodes, agents)]
        if len(episodes) <= EPISODES_SHOWN:
            parts += ["", "episodes", episodes_table(episodes, agents)]
        else:
            parts += ["", f"{len(episodes)} episodes: `arl-run results export {run['id']} --table episodes "
                          f"-o episodes.csv` writes each one's returns"]  # fmt: skip
    if events:
        parts += ["", "events", events_table(events)]
    return "\n".join(parts)
