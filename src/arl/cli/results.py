"""``arl-run results``: list the stored runs, show one, list its metrics, export its tables,
plot its returns.

Imported when ``arl-run`` starts, so only click is imported here; SQLAlchemy, pandas,
pyarrow and matplotlib come in with the command that needs them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from arl.cli.common import fail, store_option
from arl.errors import ArlError
from arl.results.common import FORMATS, TABLES


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """The commands' one error boundary: an :class:`ArlError` (no such store or run, a file
    that cannot be written) is a message on stderr and exit code 1, not a traceback."""
    try:
        yield
    except ArlError as exc:
        from arl.store.engine import StoreNotFound  # here: SQLAlchemy is not imported at start
        from arl.store.location import URL_ENV_VAR

        hint = f": give --store URL or set {URL_ENV_VAR}" if isinstance(exc, StoreNotFound) else ""
        fail(f"{exc}{hint}")


@click.group("results")
def results_group() -> None:
    """Look at what runs stored: list them, show one, list its metrics, export its tables,
    plot its returns.

    RUN is a run's uid (its newest run) or its id. The same queries, as pandas
    DataFrames, are in the Python module arl.results.
    """


@results_group.command("list")
@store_option
@click.option("--experiment", metavar="UID", help="Only runs of this experiment_uid.")
@click.option("--status", metavar="STATUS", help="Only runs with this status (finished, failed, interrupted, running).")
@click.option("--uid", metavar="UID", help="Only runs with this uid; * matches anything: --uid 'sweep*'.")
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="Only the newest N runs (of those that match).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
    help="csv and json hold every column: error, seed, host, arl version, actions.",
)  # fmt: skip
def list_runs(
    store: str | None, experiment: str | None, status: str | None, uid: str | None, last: int | None, fmt: str
) -> None:
    """List the runs in the store, oldest first: status, start, duration, what they stored."""
    with _errors():
        from arl.results import queries as q

        with q.reading(store) as reader:
            runs = q.run_records(reader, experiment=experiment, status=status, uid=uid, last=last)
            if not runs and not q.any_runs(reader):
                raise ArlError(f"the store {reader.location} holds no runs yet")
    if fmt != "table":
        _echo_records(runs, q.RUN_COLUMNS, fmt)
    elif runs:
        from arl.results.report import runs_table

        click.echo(runs_table(runs))
    else:
        click.echo("no runs match", err=True)


def _echo_records(records: list[dict[str, Any]], columns: tuple[str, ...], fmt: str) -> None:
    """``records`` as JSON (a list of objects) or CSV (a header of ``columns``)."""
    if fmt == "json":
        import json

        click.echo(json.dumps([{k: _plain(v) for k, v in r.items()} for r in records], indent=2))
        return
    import csv
    import io

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _plain(v) for k, v in r.items()} for r in records)
    click.echo(text.getvalue(), nl=False)


def _plain(value: Any) -> Any:
    from datetime import datetime

    return value.isoformat() if isinstance(value, datetime) else value


@results_group.command()
@click.argument("run")
@store_option
def show(run: str, store: str | None) -> None:
    """Show run RUN: how it went, its phases, and each agent's return per episode."""
    with _errors():
        from arl.results import queries as q
        from arl.results import report

        with q.reading(store) as reader:
            found = q.find_run(reader, run)
            phases = q.phase_records(reader, found["id"])
            episodes = q.episode_table(reader, found["id"], rewards=False)
            events = q.event_records(reader, found["id"])
    click.echo(report.show(found, phases, episodes.records, episodes.agents, events))


@results_group.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@store_option
def compare(runs: tuple[str, ...], fmt: str, store: str | None) -> None:
    """Show runs side by side: each phase's episodes and each agent's mean return."""
    with _errors():
        from arl.results import queries as q

        with q.reading(store) as reader:
            records, columns = q.compare_records(reader, list(runs))
    if fmt != "table":
        _echo_records(records, columns, fmt)
        return
    from arl.terminal import printable

    cells = [[_cell(r.get(c)) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo(printable("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()))
    for row in cells:
        click.echo(printable("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@results_group.command()
@click.argument("run")
@click.option("--phase", metavar="PHASE", help="Only this phase (its name, or its index).")
@click.option("--agent", metavar="NAME", help="Only this agent's values.")
@click.option("--name", metavar="METRIC", help="Only this metric.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@store_option
def metrics(run: str, phase: str | None, agent: str | None, name: str | None, fmt: str, store: str | None) -> None:
    """List what run RUN's brains and muscles logged (log_metric), one value a line:
    phase, agent, worker (- for the brain), name, step, value and when it was logged."""
    with _errors():
        from arl.results import queries as q

        with q.reading(store) as reader:
            run_id = q.find_run(reader, run)["id"]
            key = int(phase) if phase is not None and phase.isdigit() else phase
            records = q.metric_records(reader, run_id, phase=key, agent=agent, name=name)
    if fmt != "table":
        _echo_records(records, q.METRIC_COLUMNS, fmt)
    elif records:
        from arl.results.report import metrics_table

        click.echo(metrics_table(records))
    else:
        filtered = (phase, agent, name) != (None, None, None)
        click.echo("no metrics match" if filtered else "the run logged no metrics", err=True)


@results_group.command()
@click.argument("run")
@click.option("--table", type=click.Choice(TABLES), default="steps", show_default=True, help="What to export.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="[default: from the suffix of PATH]")
@click.option("--output", "-o", "path", required=True, type=click.Path(dir_okay=False), help="The file to write.")
@store_option
def export(run: str, table: str, fmt: str | None, path: str, store: str | None) -> None:
    """Export a table of run RUN to a CSV or Parquet file, one column per sensor,
    setpoint and reward id. Reads in chunks: any size of run fits in memory."""
    with _errors():
        from arl.results.files import export as write
        from arl.results.report import counted

        rows = write(run, path, table=table, format=fmt, store=store)
    click.echo(f"{counted(rows, 'row')} of {table} written to {path}")


@results_group.command()
@click.argument("run")
@click.option("--output", "-o", "path", type=click.Path(dir_okay=False), help="[default: <run uid>-returns.png]")
@store_option
def plot(run: str, path: str | None, store: str | None) -> None:
    """Plot each agent's return per episode of run RUN, across its phases, to a PNG."""
    with _errors():
        from arl.results.plot import plot_returns

        written = plot_returns(run, path, store)
    click.echo(f"returns plotted to {written}")
