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
    help="csv and json hold every column: error, seed, swept values, host, arl version, actions.",
)  # fmt: skip
def list_runs(
    store: str | None, experiment: str | None, status: str | None, uid: str | None, last: int | None, fmt: str
) -> None:
    """List the runs in the store, oldest first: status, start, duration, what they stored,
    and the values a --sweep made them with."""
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
    import json

    def cell(value: Any) -> Any:  # a dict or list (swept values) as JSON text, not Python's repr
        return json.dumps(value) if isinstance(value, dict | list) else _plain(value)

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: cell(v) for k, v in r.items()} for r in records)
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
    """Show runs side by side: the values a sweep made each with, each phase's episodes
    and each agent's mean return.

    In the table a swept key is shortened to its last part(s) (episodes for
    schedule.train.phase_config.episodes); csv and json name it in full."""
    with _errors():
        from arl.results import queries as q

        with q.reading(store) as reader:
            records, columns = q.compare_records(reader, list(runs))
    if fmt != "table":
        _echo_records(records, columns, fmt)
        return
    from arl.results.report import compare_table
    from arl.terminal import printable_lines

    click.echo(printable_lines(compare_table(records, columns)))


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


_TRACKING_FORMATS = ("tensorboard", "mlflow")
EXIT_MISSING_EXTRA = 2  # as for a usage error: the command cannot run here as it is


@results_group.command()
@click.argument("run")
@click.option("--table", type=click.Choice(TABLES), help="What to write to a file. [default: steps]")
@click.option(
    "--format", "fmt", type=click.Choice([*FORMATS, *_TRACKING_FORMATS]),
    help="[default: from the suffix of PATH]",
)  # fmt: skip
@click.option(
    "--output", "-o", "path", required=True, type=click.Path(),
    help="The file to write (csv, parquet), or the folder (tensorboard, mlflow).",
)  # fmt: skip
@store_option
def export(run: str, table: str | None, fmt: str | None, path: str, store: str | None) -> None:
    """Export run RUN: a table to a CSV or Parquet file, one column per sensor,
    setpoint and reward id (read in chunks: any size of run fits in memory); or its
    returns and metrics as TensorBoard event files (--format tensorboard: PATH/<run uid>/,
    or PATH/<run uid>-run<id>/ when another run of that uid is exported there) or to a
    local MLflow store (--format mlflow: PATH/mlflow.db), with the resolved file as MLflow
    params. Those two need pip install 'arl-core[tracking]'.

    Options that do not fit (a folder for a file, a file for a folder, no format to tell)
    are usage errors: exit code 2."""
    import os

    if fmt in _TRACKING_FORMATS:
        if table is not None:
            raise click.UsageError(f"--table is for csv and parquet files; --format {fmt} exports returns and metrics")
        if os.path.exists(path) and not os.path.isdir(path):
            raise click.BadParameter(
                f"{path!r} is a file: --format {fmt} writes into a folder; give a folder",
                param_hint="'--output' / '-o'",
            )
        _export_tracking(run, fmt, path, store)
        return
    if os.path.isdir(path):
        raise click.BadParameter(
            f"{path!r} is a folder: give a file, or --format tensorboard|mlflow to write into a folder",
            param_hint="'--output' / '-o'",
        )
    if fmt is None and os.path.splitext(path)[1].lower() not in (".csv", ".parquet", ".pq"):
        files, folders = " or ".join(FORMATS), " or ".join(_TRACKING_FORMATS)
        raise click.UsageError(
            f"cannot tell the format of {path} from its suffix: give --format {files} (a file), {folders} (a folder)"
        )
    with _errors():
        from arl.results.files import export as write
        from arl.results.report import counted

        rows = write(run, path, table=table or "steps", format=fmt, store=store)
    click.echo(f"{counted(rows, 'row')} of {table or 'steps'} written to {path}")


def _export_tracking(run: str, fmt: str, path: str, store: str | None) -> None:
    """``export --format tensorboard|mlflow``: what was written, and how to look at it."""
    with _errors():
        from shlex import quote

        from arl.results import tracking
        from arl.results.report import counted

        try:
            if fmt == "tensorboard":
                done = tracking.to_tensorboard(run, path, store=store)
                said = [
                    f"{counted(done.returns, 'return')} and {counted(done.metrics, 'metric value')} "
                    f"of run {done.uid} written to {done.path}",
                    f"look at them: tensorboard --logdir {quote(path)}",
                ]
            else:
                logged = tracking.to_mlflow(run, path, store=store)
                again = f"; {counted(logged.replaced, 'earlier export')} of it deleted" if logged.replaced else ""
                said = [
                    f"run {logged.uid} logged to MLflow experiment {logged.experiment!r}, run {logged.run_id}: "
                    f"{counted(logged.params, 'param')}, {counted(logged.returns, 'return')}, "
                    f"{counted(logged.metrics, 'metric value')}, artifacts {', '.join(logged.artifacts)}{again}",
                    f"look at it: mlflow ui --backend-store-uri {quote(logged.tracking_uri)}"
                    "  (the UI comes with pip install mlflow)",
                ]
        except tracking.MissingExtra as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(EXIT_MISSING_EXTRA) from exc
    click.echo("\n".join(said))


@results_group.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option(
    "--output", "-o", "path", type=click.Path(dir_okay=False),
    help="[default: <run uid>-returns.png; for several runs, returns-compared.png]",
)  # fmt: skip
@store_option
def plot(runs: tuple[str, ...], path: str | None, store: str | None) -> None:
    """Plot each agent's return per episode, across the phases, to a PNG: of one run, or
    of several runs in one figure (a panel per agent, a line per run, labelled by its
    uid and swept values)."""
    with _errors():
        from arl.results.plot import plot_returns, plot_runs

        written = plot_returns(runs[0], path, store) if len(runs) == 1 else plot_runs(list(runs), path, store)
    click.echo(f"returns plotted to {written}")
