"""Running experiments from Python: :func:`run_experiment` is ``arl-run FILE`` as a call.

It takes the path the command does, and the same steps: the store chosen as ``--store``
chooses it, ``$ARL_TIMEOUTS`` checked, the complete check in a forked child
(:func:`arl.preflight.preflight`), then the Executor (:func:`execute`, which ``arl-run``
uses too). What the command prints and exits with becomes a value or an exception:

* nothing may run (a problem in the file, a store that will not open, a check that hung):
  :class:`arl.preflight.Refused`, an :class:`arl.errors.ArlError` whose ``lines`` are
  what ``arl-run`` prints (``error: dummy.yml:13:26: schedule.0...: ...``);
* Ctrl-C during the check: ``KeyboardInterrupt``, nothing having run;
* the run went (finished, failed or was interrupted by Ctrl-C or SIGTERM, which the
  Executor handles while it runs): its :class:`arl.messages.executor.RunOutcome`.

Only this module's functions import the heavy parts (the executor, ZeroMQ, asyncio), so
that ``import arl`` stays light.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from arl.errors import Location, Problem

if TYPE_CHECKING:
    from arl.config.spec import RunSpec
    from arl.messages.executor import RunOutcome
    from arl.preflight import Refused
    from arl.progress import ProgressSink

DEFAULT_CHECKPOINT_DIR = "arl-checkpoints"
"""Where brains are saved unless told otherwise (``--checkpoint-dir``), from the working directory."""
DOCUMENT = "<document>"
"""What messages call an experiment given as a mapping rather than a file."""

Experiment = str | os.PathLike[str] | Mapping[str, Any]
Store = str | os.PathLike[str] | None


def run_experiment(
    experiment: Experiment,
    *,
    store: Store = None,
    checkpoint_dir: str | os.PathLike[str] = DEFAULT_CHECKPOINT_DIR,
    store_steps: bool = True,
    probe: bool = True,
    check_timeout: float | None = None,
    log_level: int | None = None,
) -> RunOutcome:
    """Run one experiment as ``arl-run`` runs a file, and return how it ended.

    ``experiment`` is the path of an experiment file, or the file's content already read
    into a mapping (plain data: text, numbers, booleans, None, lists, mappings with text
    keys); problems in a mapping are reported at their path in it, as ``<document>:
    schedule.0.phase_0...``. A file describes one run (sweeps are ``arl-run`` options), so
    one outcome is returned.

    ``store`` is a SQLAlchemy URL as ``--store`` takes it, a :class:`pathlib.Path` to a
    SQLite file, or None for ``$ARL_STORE_URL``, else ``sqlite:///arl.db``. The other
    keywords are ``arl-run run``'s options: ``--checkpoint-dir``, ``--store-steps``,
    ``--probe`` and ``--check-timeout`` (None: its default); ``log_level`` is the level the
    run's processes log at (None: the ``arl`` logger's effective level). Their records are
    handled by this process's logging.

    The outcome's ``status`` is ``FINISHED``, ``FAILED`` (``error`` says why, as the store
    does) or ``INTERRUPTED``; a failed run is an outcome, not an exception, as a run whose
    component raised is a result worth its row in the store. Raises
    :class:`arl.preflight.Refused` when nothing may run (see the module's docstring).
    Call it from the main thread, outside a running event loop: the Executor takes
    SIGINT and SIGTERM over while the run goes on.
    """
    import logging

    from arl.preflight import CHECK_TIMEOUT

    _check_caller()
    url = _url(store)
    check_timeouts()
    with _modules_found(experiment) as experiment:
        with _experiment_file(experiment) as (file, shown):
            timeout = CHECK_TIMEOUT if check_timeout is None else check_timeout
            specs = check(file, url, probe=probe, timeout=timeout, shown=shown)
        level = logging.getLogger("arl").getEffectiveLevel() if log_level is None else log_level
        (outcome,) = execute(specs, url, checkpoint_dir, level=level, store_steps=store_steps)
    return outcome


def check_timeouts() -> None:
    """Refused (exit code 2) on a ``$ARL_TIMEOUTS`` that cannot be used: checked before
    the check touches the store."""
    from arl.governor.options import timeouts_from
    from arl.preflight import EXIT_CONFIG, Refused

    try:
        timeouts_from(os.environ)
    except ValueError as exc:
        raise Refused([f"error: {exc}", "Nothing was run."], EXIT_CONFIG) from None


def check(file: str, url: str, *, probe: bool, timeout: float, shown: str) -> list[RunSpec]:
    """The run ``file`` describes, after the complete check; Refused, with ``file`` called
    ``shown`` in its lines, if it may not run; KeyboardInterrupt on Ctrl-C."""
    from arl.preflight import EXIT_INTERRUPTED, Refused, preflight

    try:
        # A fresh server, not a fork of the caller's process: its heap, threads' state and
        # atexit handlers are not the run's.
        runs, _ = preflight([file], url, [[]], probe=probe, timeout=timeout, fork_server=False)
    except Refused as refused:
        if refused.code == EXIT_INTERRUPTED:
            raise KeyboardInterrupt from refused
        if shown == file:
            raise
        raise Refused(_relabelled(refused.lines, file, shown), refused.code) from None
    return [spec for _, spec in runs]


def execute(
    specs: list[RunSpec],
    url: str,
    checkpoint_dir: str | os.PathLike[str],
    *,
    level: int,
    parallel: int = 1,
    store_steps: bool = True,
    max_uptime: float | None = None,
    resumes: dict[str, str] | None = None,
    progress: ProgressSink | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    module_paths: tuple[str, ...] = (),
) -> list[RunOutcome]:
    """Run ``specs`` with the Executor, one outcome each, in order: ``arl-run`` runs files
    so too. The Executor handles SIGINT and SIGTERM from when it starts; ``level`` is the
    level the runs' processes log at; ``progress`` is shown the runs' statuses while
    they go (:mod:`arl.progress`; None, as :func:`run_experiment` has it: nothing is asked);
    ``backend`` where their processes go (:mod:`arl.backends`: ``local``, or ``ray`` on the
    cluster at ``ray_address``, whose nodes put ``module_paths`` on their Python path)."""
    import asyncio
    import logging
    from pathlib import Path

    from arl.executor import Executor, ExecutorOptions

    checkpoints = str(Path(checkpoint_dir).resolve())
    options = ExecutorOptions(
        url, checkpoints, parallel=parallel, level=level, store_steps=store_steps, max_uptime=max_uptime,
        resumes=dict(resumes or {}), backend=backend, ray_address=ray_address, module_paths=module_paths,
    )  # fmt: skip

    def on_status(uid: str, state: str) -> None:
        logging.getLogger("arl.executor").info("run %s: %s", uid, state)

    return asyncio.run(Executor(options, on_status=on_status, progress=progress).execute(specs))


def _check_caller() -> None:
    """RuntimeError, before anything is checked, where the Executor could not take the
    signals over (it runs its own event loop and handles SIGINT and SIGTERM)."""
    import asyncio
    import threading

    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("run_experiment must be called from the main thread: it handles SIGINT and SIGTERM")
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # none running: the Executor's own loop can start
        return
    raise RuntimeError(
        "run_experiment cannot run inside a running event loop (a notebook's, say): "
        "run `arl-run FILE` as a subprocess there"
    )


def _url(store: Store) -> str:
    """The store's URL, as ``--store`` and ``arl.results`` read ``store``."""
    from arl.store.location import store_url

    if isinstance(store, os.PathLike):
        return f"sqlite:///{os.path.abspath(os.fspath(store))}"
    return store_url(store)


@contextlib.contextmanager
def _modules_found(experiment: Experiment) -> Iterator[Experiment]:
    """The folders a run's own modules are found in on the path for the block
    (:mod:`arl.config.modulepaths`): a file's folder and its ``paths:``, a mapping's
    ``paths:`` from the working directory. Yields the experiment, a mapping with those
    folders made absolute (it is checked from a file elsewhere)."""
    from arl.config import modulepaths

    if not isinstance(experiment, Mapping):
        with modulepaths.using(modulepaths.of_file(os.fspath(experiment))):
            yield experiment
        return
    listed = experiment.get(modulepaths.KEY)
    if not isinstance(listed, list | tuple):
        yield experiment
        return
    cwd = os.getcwd()
    absolute = [modulepaths.resolve(e, cwd) if isinstance(e, str) and e else e for e in listed]
    with modulepaths.using(e for e in absolute if isinstance(e, str) and e):
        yield {**experiment, modulepaths.KEY: absolute}


@contextlib.contextmanager
def _experiment_file(experiment: Experiment) -> Iterator[tuple[str, str]]:
    """A file holding ``experiment``, and what messages call it: a path is itself; a
    mapping is written as YAML to a private file removed afterwards, and called
    :data:`DOCUMENT` (the check runs on files, in a child)."""
    if not isinstance(experiment, Mapping):
        path = os.fspath(experiment)
        yield path, path
        return
    import tempfile

    text = _yaml(_plain(experiment, ()))
    with tempfile.TemporaryDirectory(prefix="arl-doc-") as folder:
        path = os.path.join(folder, "experiment.yml")
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        yield path, DOCUMENT


def _relabelled(lines: list[str], file: str, shown: str) -> list[str]:
    """``lines`` with ``file`` and the line and column after it (in YAML the caller never
    saw) replaced by ``shown``; the path into the document that follows stays."""
    import re

    where = re.compile(re.escape(file) + r"(:\d+){0,2}")
    return [where.sub(lambda _: shown, line) for line in lines]


def _plain(value: Any, path: tuple[str | int, ...]) -> Any:
    """``value`` as the plain data a parsed file holds (tuples become lists); Refused
    at the path of the first value that is not, or of nesting too deep to be checked."""
    from arl.config.parse import MAX_DEPTH

    if len(path) > MAX_DEPTH:
        raise _problem(path, f"mappings and lists nest more than {MAX_DEPTH} deep here")
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise _problem(path, f"keys must be text, not {type(key).__name__} ({key!r})")
        return {key: _plain(item, (*path, key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, (*path, i)) for i, item in enumerate(value)]
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _problem(path, f"the text is not valid Unicode ({exc.reason})") from None
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    raise _problem(
        path, f"a {type(value).__name__} is not plain data: give text, numbers, booleans, None, lists or mappings"
    )


def _problem(path: tuple[str | int, ...], message: str) -> Refused:
    """Refused, as :func:`arl.preflight.preflight` refuses a problem in a file."""
    from arl.config.report import render
    from arl.preflight import Refused

    problem = Problem(Location(DOCUMENT), render(path), message)
    return Refused([f"error: {problem}", "1 problem found; nothing was run."])


def _yaml(data: dict[str, Any]) -> str:
    """``data`` as YAML that reads back the same (key order kept, ``.inf`` a float)."""
    import io

    from ruamel.yaml import YAML

    text = io.StringIO()
    YAML(typ="rt").dump(data, text)
    return text.getvalue()
