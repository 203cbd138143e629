"""``arl-run``: the command line. ``arl-run FILE`` is short for ``arl-run run FILE``."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

import arl
from arl.errors import ConfigError

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


class DefaultToRun(click.Group):
    """A group where an unknown first word that is not an option means ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultToRun, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(arl.__version__, prog_name="arl-run")
def main() -> None:
    """Run multi-agent reinforcement-learning experiments, every step stored.

    \b
    arl-run experiments/dummy.yml          run an experiment file
    arl-run run a.yml b.yml --parallel 2   run several side by side
    """


def _setup_console_logging(verbose: int) -> int:
    from arl.proc.logs import CONSOLE_FORMAT, ProcessLabelFilter

    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, "%H:%M:%S"))
    handler.addFilter(ProcessLabelFilter("executor"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return level


def _load(files: tuple[str, ...]) -> list[Any]:
    from arl.config import load_experiment

    specs, problems = [], []
    for file in files:
        try:
            specs.append(load_experiment(file))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        count = len(problems)
        click.echo(f"{count} problem{'s' if count > 1 else ''} found; nothing was run.", err=True)
        sys.exit(EXIT_CONFIG)
    return specs


def _check_store(url: str) -> None:
    """Open (and on first use create) the store now, so a bad URL stops us before any run."""
    from arl.errors import ArlError
    from arl.store.engine import open_store

    try:
        open_store(url).dispose()
    except ArlError as exc:
        click.echo(f"error: {exc}", err=True)
        click.echo("Give a working SQLAlchemy URL with --store or ARL_STORE_URL; nothing was run.", err=True)
        sys.exit(EXIT_CONFIG)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--parallel",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many runs to execute side by side.",
)
@click.option(
    "--store",
    "store",
    metavar="URL",
    default=None,
    help="SQLAlchemy URL of the store [default: $ARL_STORE_URL, else sqlite:///arl.db].",
)
@click.option(
    "--checkpoint-dir",
    default="arl-checkpoints",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where brains are saved at the end of each train phase.",
)
@click.option("--verbose", "-v", count=True, help="Log more: -v for progress, -vv for debugging.")
def run(files: tuple[str, ...], parallel: int, store: str | None, checkpoint_dir: str, verbose: int) -> None:
    """Run the experiment FILES and record every step in the store.

    The files are checked completely before anything starts: a mistake is reported
    with its file, line and column, and nothing runs (exit code 2). Exit codes: 0 all
    runs finished, 1 a run failed, 130 interrupted (Ctrl-C).
    """
    level = _setup_console_logging(verbose)
    specs = _load(files)
    from arl.executor import Executor, ExecutorOptions
    from arl.store.engine import describe_location, store_url

    url = store_url(store)
    _check_store(url)
    options = ExecutorOptions(url, str(Path(checkpoint_dir).resolve()), parallel, level)

    def on_status(uid: str, state: str) -> None:
        logging.getLogger("arl.executor").info("run %s: %s", uid, state)

    started = time.perf_counter()
    outcomes = asyncio.run(Executor(options, on_status=on_status).execute(specs))
    elapsed = time.perf_counter() - started
    for outcome in outcomes:
        run_id = f" (run id {outcome.run_id})" if outcome.run_id is not None else ""
        click.echo(f"run {outcome.run_uid}{run_id}: {outcome.status}")
        click.echo(f"  phases {outcome.phases}, episodes {outcome.episodes}, steps {outcome.steps}")
        if outcome.error:
            first_line = outcome.error.strip().splitlines()[0]
            click.echo(f"  error: {first_line}")
    click.echo(f"results: {describe_location(url)}  ({elapsed:.1f} s)")
    statuses = {o.status for o in outcomes}
    if "FAILED" in statuses:
        sys.exit(EXIT_FAILED)
    if "INTERRUPTED" in statuses:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
