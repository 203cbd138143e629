"""``arl-run run``, ``check`` and ``schema``: the commands that read experiment files.

``run`` goes the way :func:`arl.run_experiment` goes (:mod:`arl.runner`), for many files
and their sweeps, and prints what the library returns or raises; its exit codes are
those of :mod:`arl.cli.common`. Imported when ``arl-run`` starts: the checks, the
executor and asyncio are imported by the commands that need them.
"""

from __future__ import annotations

import contextlib
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from arl.backends import BACKENDS
from arl.cli.common import EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, say, store_option
from arl.runner import DEFAULT_CHECKPOINT_DIR

Variants = list[list[Any]]  # each run's overrides (arl.config.overrides.Override)


def _setup_console_logging(verbose: int) -> int:
    import logging

    from arl.proc.logs import CONSOLE_FORMAT, ProcessLabelFilter
    from arl.terminal import PrintableFormatter

    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter(CONSOLE_FORMAT, "%H:%M:%S"))
    handler.addFilter(ProcessLabelFilter("executor"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return level


def _variants(files: tuple[str, ...], sets: tuple[str, ...], sweeps: tuple[str, ...], max_runs: int) -> Variants:
    """The overrides of every run a file expands to; exit 2 on an option that cannot be
    read, or on more runs than ``max_runs`` (counted before any is made)."""
    from arl.config.overrides import OverrideError, combinations, count, parse_set, parse_sweeps

    try:
        parsed_sets, parsed_sweeps = [parse_set(t) for t in sets], parse_sweeps(sweeps)
    except OverrideError as exc:
        say(f"error: {exc}")
        sys.exit(EXIT_CONFIG)
    runs = len(files) * count(parsed_sweeps)
    if runs > max_runs:
        say(
            f"error: the files and sweeps make {runs:,} runs, more than --max-runs allows ({max_runs:,}); "
            f"sweep fewer values, or give --max-runs {runs} to run them all. Nothing was run."
        )
        sys.exit(EXIT_CONFIG)
    return combinations(parsed_sets, parsed_sweeps)


def _preflight(
    files: tuple[str, ...], url: str | None, variants: Variants, *, probe: bool, timeout: float
) -> tuple[list[tuple[str, Any]], str | None]:
    """Every (file, run) pair after a complete check (``arl.preflight``), and where the
    store is; or exit (2; 130 on Ctrl-C) having said why nothing may run."""
    from arl.preflight import Refused, preflight

    try:
        return preflight(files, url, variants, probe=probe, timeout=timeout)
    except Refused as refused:
        _refused(refused)


def _refused(refused: Any) -> NoReturn:
    """Print why nothing may run (an :class:`arl.preflight.Refused`) and exit with its code."""
    for line in refused.lines:
        say(line)
    sys.exit(refused.code)


def _describe(file: str, spec: Any) -> None:
    """Print what a run will do: its uid, seed and phases."""
    from arl.terminal import printable

    def out(text: str) -> None:
        click.echo(printable(text))

    group = f", experiment {spec.experiment_uid}" if spec.experiment_uid else ""
    out(f"run {spec.uid}{group}, seed {spec.seed}  ({file})")
    if spec.swept:
        from arl.results.swept import describe

        out(f"  swept {describe(spec.swept)}")
    for phase in spec.phases:
        limit = f", at most {phase.max_steps} steps an episode" if phase.max_steps else ""
        out(
            f"  phase {phase.index} {phase.name}: {phase.mode}, {phase.episodes} episode(s) x {phase.workers} "
            f"worker(s), {phase.simulation.name}{limit}"
        )
        for env in phase.environments:
            out(f"    environment {env.uid}: {env.entry.entry_point} {dict(env.entry.params) or ''}".rstrip())
        for agent in phase.agents:
            load = ""
            if agent.load is not None:
                source = f"run {agent.load.run} " if agent.load.run else ""
                load = f", loads {agent.load.agent} from {source}{agent.load.phase or 'its last phase'}"
            out(f"    agent {agent.name}: {len(agent.sensors)} sensors, {len(agent.actuators)} actuators{load}")


@contextlib.contextmanager
def _checking() -> Iterator[None]:
    """Ctrl-C before the runs start: say so, exit 130, and leave nothing behind (the
    checking child is stopped by arl.preflight itself)."""
    try:
        yield
    except KeyboardInterrupt:
        say("interrupted while checking; nothing was run.")
        sys.exit(EXIT_INTERRUPTED)


def _find_modules_beside(files: tuple[str, ...]) -> None:
    """Each experiment file's folder and the folders its ``paths:`` names go on the Python
    path, last (an installed module of the same name wins), so that ``module:Class`` finds
    a module there, in this process and in every process of the runs
    (:mod:`arl.config.modulepaths`)."""
    from arl.config import modulepaths

    modulepaths.use(folder for file in files for folder in modulepaths.of_file(file))


def _file_options(command: Any) -> Any:
    """``--set``, ``--sweep``, ``--max-runs`` and ``--check-timeout``, shared by the
    commands that read experiment files."""
    from arl.preflight import CHECK_TIMEOUT, MAX_RUNS

    command = click.option(
        "--check-timeout", default=CHECK_TIMEOUT, show_default=True, metavar="SECONDS",
        type=click.FloatRange(min=0, min_open=True),
        help="The longest one step of the check (importing a module, probing an environment, opening the "
        "store) may take before it is stopped.",
    )(command)  # fmt: skip
    command = click.option(
        "--max-runs", default=MAX_RUNS, show_default=True, type=click.IntRange(min=1),
        help="Refuse files and sweeps that make more runs than this.",
    )(command)  # fmt: skip
    command = click.option(
        "--sweep", "sweeps", multiple=True, metavar="KEY=A,B,...",
        help="Run once per value (several sweeps multiply); each run's uid is the file's and a short hash of "
        "its values, which are stored with it.",
    )(command)  # fmt: skip
    return click.option(
        "--set", "sets", multiple=True, metavar="KEY=VALUE",
        help="Override a value of the file; KEY is a dotted path (seed, schedule.phase_0.phase_config.episodes), "
        "VALUE is read as YAML.",
    )(command)  # fmt: skip


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--probe", is_flag=True,
    help="Also build and reset every environment once, and check the sensor and actuator ids agents name "
    "against what it provides (run does this too); then step each a few times with sampled setpoints and "
    "check what it returns (arl.check_environment; run does not).",
)  # fmt: skip
@_file_options
def check(
    files: tuple[str, ...],
    probe: bool,
    sets: tuple[str, ...],
    sweeps: tuple[str, ...],
    max_runs: int,
    check_timeout: float,
) -> None:
    """Check experiment FILES completely and print the runs they describe.

    Every class named is imported and checked against what it must be; every problem
    is reported with its file, line and column (exit code 2). Nothing runs and the
    store is not touched. With --probe, environments are built, reset and stepped a
    few times too (arl.check_environment).
    """
    with _checking():
        _setup_console_logging(0)
        _find_modules_beside(files)
        variants = _variants(files, sets, sweeps, max_runs)
        _check_and_describe(files, variants, probe=probe, timeout=check_timeout)


def _check_and_describe(files: tuple[str, ...], variants: Variants, *, probe: bool, timeout: float) -> None:
    """``check`` and ``run --dry-run``: check completely (exit 2 on a problem), leave the
    store alone, and print the runs the files describe."""
    runs, _ = _preflight(files, None, variants, probe=probe, timeout=timeout)
    for file, spec in runs:
        _describe(file, spec)
    click.echo(f"{len(files)} file{'s' if len(files) > 1 else ''} checked, {len(runs)} run(s): no problems.")


@click.command()
def schema() -> None:
    """Print a JSON Schema of the experiment file, for editors to validate and complete."""
    import json

    from arl.config.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the files and print the runs they describe; run nothing.")
@click.option(
    "--parallel",
    "-j",
    default=None,
    type=click.IntRange(min=1),
    help="How many runs to execute side by side [default: 1; with --backend ray, as many as the cluster has room for].",
)
@click.option(
    "--backend", type=click.Choice(BACKENDS), default="local", show_default=True,
    help="Where the runs' processes go: this machine, or the nodes of a Ray cluster, each run on one node "
    "(docs/cluster.md).",
)  # fmt: skip
@click.option(
    "--ray-address", default=None, metavar="ADDR",
    help="With --backend ray: the cluster's address (`ray start --head` prints it) [default: $RAY_ADDRESS, "
    "else a Ray started on this machine for the runs].",
)  # fmt: skip
@store_option
@click.option(
    "--checkpoint-dir",
    default=DEFAULT_CHECKPOINT_DIR,
    show_default=True,
    callback=lambda ctx, param, value: _folder(value),
    metavar="DIR|file://DIR",
    help="Where brains are saved at the end of each train phase; with --backend ray a folder every node "
    "mounts at the same path.",
)
@click.option(
    "--store-steps/--no-store-steps",
    default=True,
    help="Store every environment step and agent action (the default); with --no-store-steps only runs, "
    "phases, episodes and saved brains are stored.",
)
@click.option(
    "--probe/--no-probe", default=True,
    help="Build and reset every environment once in the check, and check the sensor and actuator ids agents "
    "name against what it provides (the default); --no-probe skips that, for environments slow to build.",
)  # fmt: skip
@click.option(
    "--max-uptime", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
    help="At this age each run takes a snapshot and ends INTERRUPTED (end reason max-uptime), to be "
    "continued with --resume; over the file's max_uptime.",
)  # fmt: skip
@click.option(
    "--resume", is_flag=True,
    help="Continue each run of the files from its latest complete snapshot (the file's state dir); "
    "runs the store has FINISHED are skipped, runs with no snapshot start anew.",
)  # fmt: skip
@click.option(
    "--from-state", type=click.Path(file_okay=False, exists=True), default=None, metavar="PATH",
    help="Continue the run this snapshot is of from it (the files' other runs are not run).",
)  # fmt: skip
@click.option(
    "--verbose", "-v", count=True, help="Log more: -v what the runs do (state changes, setups), -vv for debugging."
)
@click.option(
    "--quiet", "-q", is_flag=True,
    help="Print only the summary at the end: no live table (on a terminal), no progress lines (elsewhere).",
)  # fmt: skip
@_file_options
def run(
    files: tuple[str, ...],
    dry_run: bool,
    parallel: int | None,
    backend: str,
    ray_address: str | None,
    store: str | None,
    checkpoint_dir: str,
    store_steps: bool,
    probe: bool,
    max_uptime: float | None,
    resume: bool,
    from_state: str | None,
    verbose: int,
    quiet: bool,
    sets: tuple[str, ...],
    sweeps: tuple[str, ...],
    max_runs: int,
    check_timeout: float,
) -> None:
    """Run the experiment FILES and record every step in the store.

    The files are checked completely before anything starts: a mistake is reported
    with its file, line and column, and nothing runs (exit code 2). While the runs go,
    a terminal shows a live table of them (episodes and steps of those planned,
    steps/s, returns, time left); elsewhere (a pipe, CI) a line as each phase starts
    and ends and each tenth of its episodes. Exit codes: 0 all runs finished, 1 a run
    failed, 130 interrupted (Ctrl-C).
    """
    if ray_address is not None and backend != "ray":
        raise click.BadParameter("a Ray cluster's address is for --backend ray", param_hint="--ray-address")
    with _checking():
        level = _setup_console_logging(verbose)
        _find_modules_beside(files)
        from arl.store.location import store_url

        url = store_url(store)
        _check_timeouts()
        variants = _variants(files, sets, sweeps, max_runs)
        if from_state is not None:
            _check_snapshot(from_state)  # before the files' check: a wrong path is said at once
        if dry_run:
            _check_and_describe(files, variants, probe=probe, timeout=check_timeout)
            return
        runs, location = _preflight(files, url, variants, probe=probe, timeout=check_timeout)
    specs = [spec for _, spec in runs]
    resumes: dict[str, str] = {}
    if resume or from_state:
        specs, resumes = _resumable(specs, url, from_state)
    started = time.perf_counter()
    try:
        where = Where(backend, ray_address, parallel or (len(specs) if backend == "ray" else 1))
        outcomes = _execute(specs, url, checkpoint_dir, where, level, store_steps, max_uptime, resumes, quiet)
    except KeyboardInterrupt:  # before the executor took the signals over: nothing had started
        click.echo("interrupted before the runs started; nothing was run.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    elapsed = time.perf_counter() - started
    _summarise(outcomes, location, elapsed)
    statuses = {o.status for o in outcomes}
    if "FAILED" in statuses:
        sys.exit(EXIT_FAILED)
    if "INTERRUPTED" in statuses:
        sys.exit(EXIT_INTERRUPTED)


@dataclass(frozen=True)
class Where:
    """Where the runs go: ``--backend``, ``--ray-address``, and how many at once."""

    backend: str
    ray_address: str | None
    parallel: int


def _folder(value: str) -> str:
    """A folder option's path: a ``file://`` URI's, or the text as it is."""
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme == "file":
        # file://shared/ckpt would name the host `shared` and the folder /ckpt: said, not guessed.
        if parsed.netloc not in ("", "localhost"):
            raise click.BadParameter(
                f"{value}: a file:// URI names the host {parsed.netloc!r}; give file:///PATH (three slashes) "
                "for a folder, or the path itself"
            )
        if not parsed.path:
            raise click.BadParameter(f"{value}: names no folder; give file:///PATH, or the path itself")
        return urllib.parse.unquote(parsed.path)
    if len(parsed.scheme) > 1 and "://" in value:
        raise click.BadParameter(
            f"{value}: of URIs only file:// ones are taken for now: mount the storage on every node and give "
            "its path (or file:// and its path)"
        )
    return value


def _check_timeouts() -> None:
    """Exit 2 on a ``$ARL_TIMEOUTS`` that cannot be used, before the check touches the store."""
    from arl.preflight import Refused
    from arl.runner import check_timeouts

    try:
        check_timeouts()
    except Refused as refused:
        for line in refused.lines:
            click.echo(line, err=True)
        sys.exit(refused.code)


def _execute(
    specs: list[Any],
    url: str,
    checkpoint_dir: str,
    where: Where,
    level: int,
    store_steps: bool,
    max_uptime: float | None = None,
    resumes: dict[str, str] | None = None,
    quiet: bool = False,
) -> list[Any]:
    """Run ``specs`` with the Executor (:func:`arl.runner.execute`); it handles SIGINT and
    SIGTERM from when it starts. Their progress is shown as :func:`arl.progress.mode_for`
    chooses (a live table on a terminal, plain lines elsewhere, nothing with ``quiet``)."""
    from arl import progress
    from arl.config import modulepaths
    from arl.runner import execute

    runs = [(spec.uid, progress.plans(spec)) for spec in specs]
    mode = progress.mode_for(quiet, sys.stdout)
    with progress.shown(mode, runs, sys.stdout, time.monotonic) as sink:
        return execute(
            specs, url, checkpoint_dir, parallel=where.parallel, level=level, store_steps=store_steps,
            max_uptime=max_uptime, resumes=resumes, progress=sink, backend=where.backend,
            ray_address=where.ray_address, module_paths=modulepaths.wanted(),
        )  # fmt: skip


def _check_snapshot(path: str) -> None:
    """Exit 2 unless ``path`` is a complete, unaltered snapshot."""
    from arl.errors import ArlError
    from arl.state import snapshot

    try:
        snapshot.load(path)
    except ArlError as exc:
        say(f"error: --from-state {path}: {exc}")
        sys.exit(EXIT_CONFIG)


def _resumable(specs: list[Any], url: str, from_state: str | None) -> tuple[list[Any], dict[str, str]]:
    """The runs --resume / --from-state run, and the snapshot each goes on from; says
    what it skips. Exit 2 for a snapshot it cannot go on from, 0 when nothing is left."""
    from arl.errors import ArlError
    from arl.resume import plan

    try:
        chosen = plan(specs, url, from_state)
    except ArlError as exc:
        say(f"error: {exc}")
        sys.exit(EXIT_CONFIG)
    for note in chosen.notes:
        click.echo(note)
    if not chosen.specs:
        click.echo("nothing to run: every run has finished")
        sys.exit(0)
    return chosen.specs, chosen.resume


def _summarise(outcomes: list[Any], location: str | None, elapsed: float) -> None:
    """Print how each run ended, and where its results are. Uids and errors come from
    users (names, sweep values, the messages of their exceptions): escaped."""
    from arl.terminal import printable

    for outcome in outcomes:
        run_id = f" (run id {outcome.run_id})" if outcome.run_id is not None else ""
        ended_by = (
            f", ended by {outcome.reason}" if outcome.reason not in (None, "completed", "failed", "interrupted") else ""
        )
        click.echo(printable(f"run {outcome.run_uid}{run_id}: {outcome.status}{ended_by}"))
        click.echo(
            f"  phases {outcome.phases}, episodes {outcome.episodes}, steps {outcome.steps}, actions {outcome.actions}"
        )
        if outcome.error:
            first_line = outcome.error.strip().splitlines()[0]
            click.echo(printable(f"  error: {first_line}"))
    click.echo(printable(f"results: {location}  ({elapsed:.1f} s)"))
