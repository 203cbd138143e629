"""``arl-run``: the command line. ``arl-run FILE`` is short for ``arl-run run FILE``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import click

import arl
from arl.codec import pack, unpack
from arl.errors import ConfigError, Location, Problem

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


class DefaultToRun(click.Group):
    """A group where an unknown first word that is not an option means ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        words = [a for a in args if not a.startswith("-")]
        if words and words[0] not in self.commands and not {"--help", "-h", "--version"} & set(args):
            args = ["run", *args]  # arl-run [run options] FILE... (also: arl-run -v a.yml)
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


def _preflight(files: tuple[str, ...], url: str | None) -> tuple[list[Any], str | None]:
    """Every file's runs, after a complete check; or exit 2 having printed every problem.

    The complete check imports every class the files name and opens (creating on first
    use) the store. It runs in a forked child: importing users' modules would otherwise
    bring what they import (torch, say) into this process for the whole run, where only
    the processes hosting a component need it. Forking is cheap and safe here, as no
    thread or socket exists yet; meanwhile this process parses the files for itself.
    With ``url`` None the store is left alone.
    """
    from arl.config import load_experiment

    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    checker = ctx.Process(target=_check, args=(files, url, sender), name="arl-check")
    checker.start()
    sender.close()
    specs = []
    for file in files:
        with contextlib.suppress(ConfigError):  # the checker reports every problem
            specs.append(load_experiment(file, resolve_classes=False))
    try:
        found, store_error, location = unpack(receiver.recv_bytes())
    except KeyboardInterrupt:
        checker.join()
        click.echo("interrupted while checking; nothing was run.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except EOFError:
        checker.join()
        raise click.ClickException(f"checking the experiment files failed (exit code {checker.exitcode})") from None
    checker.join()
    problems = [Problem(Location(*where), path, message) for where, path, message in found]
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        count = len(problems)
        click.echo(f"{count} problem{'s' if count > 1 else ''} found; nothing was run.", err=True)
        sys.exit(EXIT_CONFIG)
    if store_error is not None:
        click.echo(f"error: {store_error}", err=True)
        click.echo("Give a working SQLAlchemy URL with --store or ARL_STORE_URL; nothing was run.", err=True)
        sys.exit(EXIT_CONFIG)
    return specs, location


def _check(files: tuple[str, ...], url: str | None, sender: Any) -> None:
    """In the checking child: every problem of every file, then whether the store opens."""
    from arl.config import load_experiment
    from arl.errors import ArlError

    found = []
    for file in files:
        try:
            load_experiment(file)
        except ConfigError as exc:
            found += [[[p.location.file, p.location.line, p.location.column], p.path, p.message] for p in exc.problems]
    store_error = location = None
    if not found and url is not None:  # a wrong file must not create a store
        from arl.store.engine import describe_location, open_store

        try:
            open_store(url).dispose()
            location = describe_location(url)
        except ArlError as exc:
            store_error = str(exc)
    sender.send_bytes(pack([found, store_error, location]))
    sender.close()


def _describe(file: str, spec: Any) -> None:
    """Print what a run will do: its uid, seed and phases."""
    group = f", experiment {spec.experiment_uid}" if spec.experiment_uid else ""
    click.echo(f"run {spec.uid}{group}, seed {spec.seed}  ({file})")
    for phase in spec.phases:
        limit = f", at most {phase.max_steps} steps an episode" if phase.max_steps else ""
        click.echo(
            f"  phase {phase.index} {phase.name}: {phase.mode}, {phase.episodes} episode(s) x {phase.workers} "
            f"worker(s), {phase.simulation.controller}{limit}"
        )
        for env in phase.environments:
            click.echo(f"    environment {env.uid}: {env.entry.entry_point} {dict(env.entry.params) or ''}".rstrip())
        for agent in phase.agents:
            load = ""
            if agent.load is not None:
                source = f"run {agent.load.run} " if agent.load.run else ""
                load = f", loads {agent.load.agent} from {source}{agent.load.phase or 'its last phase'}"
            click.echo(f"    agent {agent.name}: {len(agent.sensors)} sensors, {len(agent.actuators)} actuators{load}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check(files: tuple[str, ...]) -> None:
    """Check experiment FILES completely and print the runs they describe.

    Every class named is imported and checked against what it must be; every problem
    is reported with its file, line and column (exit code 2). Nothing runs and the
    store is not touched.
    """
    _setup_console_logging(0)
    specs, _ = _preflight(files, None)
    for file, spec in zip(files, specs, strict=True):
        _describe(file, spec)
    click.echo(f"{len(files)} file{'s' if len(files) > 1 else ''} checked: no problems.")


@main.command()
def schema() -> None:
    """Print a JSON Schema of the experiment file, for editors to validate and complete."""
    from arl.config.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the files and print the runs they describe; run nothing.")
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
def run(
    files: tuple[str, ...], dry_run: bool, parallel: int, store: str | None, checkpoint_dir: str, verbose: int
) -> None:
    """Run the experiment FILES and record every step in the store.

    The files are checked completely before anything starts: a mistake is reported
    with its file, line and column, and nothing runs (exit code 2). Exit codes: 0 all
    runs finished, 1 a run failed, 130 interrupted (Ctrl-C).
    """
    level = _setup_console_logging(verbose)
    from arl.store.location import store_url

    url = store_url(store)
    if dry_run:
        specs, _ = _preflight(files, None)
        for file, spec in zip(files, specs, strict=True):
            _describe(file, spec)
        return
    specs, location = _preflight(files, url)
    from arl.executor import Executor, ExecutorOptions

    options = ExecutorOptions(url, str(Path(checkpoint_dir).resolve()), parallel, level)

    def on_status(uid: str, state: str) -> None:
        logging.getLogger("arl.executor").info("run %s: %s", uid, state)

    started = time.perf_counter()
    outcomes = asyncio.run(Executor(options, on_status=on_status).execute(specs))
    elapsed = time.perf_counter() - started
    for outcome in outcomes:
        run_id = f" (run id {outcome.run_id})" if outcome.run_id is not None else ""
        click.echo(f"run {outcome.run_uid}{run_id}: {outcome.status}")
        click.echo(
            f"  phases {outcome.phases}, episodes {outcome.episodes}, steps {outcome.steps}, actions {outcome.actions}"
        )
        if outcome.error:
            first_line = outcome.error.strip().splitlines()[0]
            click.echo(f"  error: {first_line}")
    click.echo(f"results: {location}  ({elapsed:.1f} s)")
    statuses = {o.status for o in outcomes}
    if "FAILED" in statuses:
        sys.exit(EXIT_FAILED)
    if "INTERRUPTED" in statuses:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
