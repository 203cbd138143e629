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
from arl.results.commands import results_group
from arl.store.commands import db as db_group

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


Variants = list[list[Any]]  # each run's overrides (arl.config.overrides.Override)


def _variants(sets: tuple[str, ...], sweeps: tuple[str, ...]) -> Variants:
    """The overrides of every run a file expands to; exit 2 on an option that cannot be read."""
    from arl.config.overrides import OverrideError, combinations, parse_set, parse_sweep

    try:
        return combinations([parse_set(t) for t in sets], [parse_sweep(t) for t in sweeps])
    except OverrideError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


def _load(file: str, variant: list[Any], *, resolve_classes: bool, probe: bool = False) -> Any:
    """One run of ``file``: its overrides applied, and a swept run's uid naming its values."""
    import dataclasses

    from arl.config import load_experiment
    from arl.config.overrides import sweep_suffix

    spec = load_experiment(file, resolve_classes=resolve_classes, overrides=variant, probe=probe)
    suffix = sweep_suffix(variant)
    if suffix:
        uid = spec.uid + suffix
        spec = dataclasses.replace(spec, uid=uid, document={**spec.document, "uid": uid})
    return spec


def _preflight(
    files: tuple[str, ...], url: str | None, variants: Variants, *, probe: bool = False
) -> tuple[list[tuple[str, Any]], str | None]:
    """Every (file, run) pair, after a complete check; or exit 2 having printed every problem.

    The complete check imports every class the files name and opens (creating on first
    use) the store. It runs in a forked child: importing users' modules would otherwise
    bring what they import (torch, say) into this process for the whole run, where only
    the processes hosting a component need it. Forking is cheap and safe here, as no
    thread or socket exists yet; meanwhile this process parses the files for itself.
    With ``url`` None the store is left alone. ``probe`` builds and resets every
    environment too (in the child), to check the ids agents name against it.
    """
    import arl.config  # noqa: F401 - imported once here, inherited by the checking child

    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    checker = ctx.Process(target=_check, args=(files, url, variants, sender, probe), name="arl-check")
    checker.start()
    sender.close()
    runs = []
    for file in files:
        for variant in variants:
            with contextlib.suppress(ConfigError):  # the checker reports every problem
                runs.append((file, _load(file, variant, resolve_classes=False)))
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
    # A mistake in the file shows in every variant of it: say it once.
    problems = list(dict.fromkeys(Problem(Location(*where), path, message) for where, path, message in found))
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        count = len(problems)
        click.echo(f"{count} problem{'s' if count > 1 else ''} found; nothing was run.", err=True)
        sys.exit(EXIT_CONFIG)
    if store_error is not None:
        click.echo(f"error: {store_error}", err=True)
        if "arl-run db upgrade" not in store_error:  # else the store is fine, only older
            click.echo("Give a working SQLAlchemy URL with --store or ARL_STORE_URL.", err=True)
        click.echo("Nothing was run.", err=True)
        sys.exit(EXIT_CONFIG)
    return runs, location


def _check(files: tuple[str, ...], url: str | None, variants: Variants, sender: Any, probe: bool) -> None:
    """In the checking child: every problem of every run, then whether the store opens."""
    from arl.errors import ArlError

    found = []
    for file in files:
        for variant in variants:
            try:
                _load(file, variant, resolve_classes=True, probe=probe)
            except ConfigError as exc:
                found += [[[p.location.file, p.location.line, p.location.column], p.path, p.message]
                          for p in exc.problems]  # fmt: skip
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
            f"worker(s), {phase.simulation.name}{limit}"
        )
        for env in phase.environments:
            click.echo(f"    environment {env.uid}: {env.entry.entry_point} {dict(env.entry.params) or ''}".rstrip())
        for agent in phase.agents:
            load = ""
            if agent.load is not None:
                source = f"run {agent.load.run} " if agent.load.run else ""
                load = f", loads {agent.load.agent} from {source}{agent.load.phase or 'its last phase'}"
            click.echo(f"    agent {agent.name}: {len(agent.sensors)} sensors, {len(agent.actuators)} actuators{load}")


def _override_options(command: Any) -> Any:
    """``--set`` and ``--sweep``, shared by the commands that read experiment files."""
    command = click.option(
        "--sweep", "sweeps", multiple=True, metavar="KEY=A,B,...",
        help="Run once per value (several sweeps multiply); each run's uid names its values.",
    )(command)  # fmt: skip
    return click.option(
        "--set", "sets", multiple=True, metavar="KEY=VALUE",
        help="Override a value of the file; KEY is a dotted path (seed, schedule.phase_0.phase_config.episodes), "
        "VALUE is read as YAML.",
    )(command)  # fmt: skip


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--probe", is_flag=True,
    help="Also build and reset every environment once, and check the sensor and actuator ids agents name "
    "against what it provides.",
)  # fmt: skip
@_override_options
def check(files: tuple[str, ...], probe: bool, sets: tuple[str, ...], sweeps: tuple[str, ...]) -> None:
    """Check experiment FILES completely and print the runs they describe.

    Every class named is imported and checked against what it must be; every problem
    is reported with its file, line and column (exit code 2). Nothing runs and the
    store is not touched. With --probe, environments are built and reset once too.
    """
    _setup_console_logging(0)
    _check_and_describe(files, _variants(sets, sweeps), probe=probe)


def _check_and_describe(files: tuple[str, ...], variants: Variants, *, probe: bool = False) -> None:
    """``check`` and ``run --dry-run``: check completely (exit 2 on a problem), leave the
    store alone, and print the runs the files describe."""
    runs, _ = _preflight(files, None, variants, probe=probe)
    for file, spec in runs:
        _describe(file, spec)
    click.echo(f"{len(files)} file{'s' if len(files) > 1 else ''} checked, {len(runs)} run(s): no problems.")


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
@click.option(
    "--store-steps/--no-store-steps",
    default=True,
    help="Store every environment step and agent action (the default); with --no-store-steps only runs, "
    "phases, episodes and saved brains are stored.",
)
@click.option("--verbose", "-v", count=True, help="Log more: -v for progress, -vv for debugging.")
@_override_options
def run(
    files: tuple[str, ...],
    dry_run: bool,
    parallel: int,
    store: str | None,
    checkpoint_dir: str,
    store_steps: bool,
    verbose: int,
    sets: tuple[str, ...],
    sweeps: tuple[str, ...],
) -> None:
    """Run the experiment FILES and record every step in the store.

    The files are checked completely before anything starts: a mistake is reported
    with its file, line and column, and nothing runs (exit code 2). Exit codes: 0 all
    runs finished, 1 a run failed, 130 interrupted (Ctrl-C).
    """
    level = _setup_console_logging(verbose)
    from arl.store.location import store_url

    url = store_url(store)
    variants = _variants(sets, sweeps)
    if dry_run:
        _check_and_describe(files, variants)
        return
    runs, location = _preflight(files, url, variants)
    specs = [spec for _, spec in runs]
    from arl.executor import Executor, ExecutorOptions

    options = ExecutorOptions(url, str(Path(checkpoint_dir).resolve()), parallel, level, store_steps)

    def on_status(uid: str, state: str) -> None:
        logging.getLogger("arl.executor").info("run %s: %s", uid, state)

    started = time.perf_counter()
    outcomes = asyncio.run(Executor(options, on_status=on_status).execute(specs))
    elapsed = time.perf_counter() - started
    for outcome in outcomes:
        run_id = f" (run id {outcome.run_id})" if outcome.run_id is not None else ""
        ended_by = (
            f", ended by {outcome.reason}" if outcome.reason not in (None, "completed", "failed", "interrupted") else ""
        )
        click.echo(f"run {outcome.run_uid}{run_id}: {outcome.status}{ended_by}")
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


main.add_command(results_group)
main.add_command(db_group)


if __name__ == "__main__":
    main()
