"""The check before anything runs: every experiment file completely, in a forked child.

The complete check imports every class the files name, probes the environments (builds
and resets each once, to check the ids agents name) and opens the store (creating it on
first use), then asks it for every brain a ``load: {run: ...}`` names. It runs in a
forked child: importing users' modules would otherwise bring what they import (torch,
say) into ``arl-run`` for the whole run, where only the processes hosting a component
need it. Forking is cheap and safe here, as no thread or socket exists yet; meanwhile
the parent parses the files for itself. When a run follows (a store is given), the
parent first forks the fork server too (:mod:`arl.proc.forkserver`), so that it imports
the rest of arl while the files are checked; it is stopped if nothing may run.

The child runs the user's code, so the parent bounds it. The child says what it is about
to do (import a module, probe an environment, open the store) before it does it; if it
then says nothing for ``timeout`` seconds it is killed, and if it dies the parent says
which step at which place in which file was its last. Ctrl-C belongs to the parent (the
child ignores it): the child is stopped and nothing is created, except that a store the
child has begun to create is finished first, so that no half-made store is left.

The pipe carries msgpack lists: ``["at", where, path, what]`` before each step,
``["found", problems]`` after each run's check (so that what was found is said even if a
later step kills the child), ``["checked"]`` once every run is checked, then (only on
the parent's ``open``) ``["store", error, location]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arl.errors import ArlError, ConfigError, Location, Problem
from arl.names import MAX_NAME

if TYPE_CHECKING:
    from arl.config.overrides import Override


def pack(value: Any) -> bytes:
    """The check's messages are plain lists: msgpack alone, not arl's codec, which would
    import numpy into ``arl-run`` before it forks (its children then import it in parallel)."""
    import msgpack

    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    import msgpack

    return msgpack.unpackb(data, raw=False)


MAX_RUNS = 1000
"""How many runs the files and sweeps of one command may come to, unless told more
(``--max-runs``): a sweep's runs multiply, and a typo should not start a million."""
CHECK_TIMEOUT = 120.0
"""Seconds one step of the check (an import, a probe, opening the store) may take."""
_EXIT_GRACE = 5.0  # seconds a child that has said its last word gets to exit
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

Variants = Sequence[Sequence["Override"]]  # each run's overrides
Runs = list[tuple[str, Any]]  # (file, RunSpec) of every run


class Refused(ArlError):
    """Nothing may run: ``lines`` say why (to print on stderr), ``code`` is the exit code."""

    def __init__(self, lines: list[str], code: int = EXIT_CONFIG) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code


def load(file: str, variant: Sequence[Override], **options: Any) -> Any:
    """One run of ``file``: its overrides applied; a swept run carries its swept values
    (keyed as typed, for people) and has a uid of its own, a hash of those values keyed
    by what they reached in the file (:func:`arl.config.overrides.sweep_uid`,
    :func:`~arl.config.overrides.swept_by_path`): two spellings of one key give one uid,
    and sweeping one value under two is refused before anything is checked. ``options``
    go to :func:`arl.config.load_experiment`."""
    from arl.config import load_experiment
    from arl.config.overrides import sweep_uid, swept_values

    swept = swept_values(variant)
    by_path = _swept_by_path(file, variant) if swept else None
    spec = load_experiment(file, overrides=variant, **options)
    if swept:
        uid = sweep_uid(spec.uid, swept if by_path is None else by_path)
        if len(uid) > MAX_NAME:  # the file's uid is a valid name, and the suffix is only safe characters
            raise ConfigError([Problem(_uid_location(file, variant), "uid", _long_swept_uid(spec.uid))])
        spec = dataclasses.replace(spec, uid=uid, document={**spec.document, "uid": uid}, swept=swept)
    return spec


def _swept_by_path(file: str, variant: Sequence[Override]) -> dict[str, Any] | None:
    """The swept values of ``variant`` keyed by the path each reached in ``file``
    (:func:`arl.config.overrides.swept_by_path`); ConfigError at the later option if two
    sweeps reach one value. None if the file cannot be read or an override does not fit
    it: the check that follows says why."""
    import copy

    from arl.config.overrides import OverrideError, SweptTwice, swept_by_path

    try:
        data = copy.deepcopy(_parsed(file, _stamp(file)))
        return swept_by_path(data, variant)
    except SweptTwice as twice:
        raise ConfigError([Problem(Location(twice.option), "", str(twice))]) from None
    except (OSError, ConfigError, OverrideError):
        return None


def _stamp(file: str) -> tuple[int, int, int]:
    """What tells one version of ``file`` from another, for :func:`_parsed`."""
    import os

    stat = os.stat(file)
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=16)
def _parsed(file: str, stamp: tuple[int, int, int]) -> Any:
    """``file`` parsed, once per version (``stamp``): every run of a sweep reads it,
    and parsing is most of the cost of reading it. Copy it before changing it."""
    from pathlib import Path

    from arl.config.parse import parse
    from arl.config.source import read_source

    del stamp  # the cache key only
    data, _ = parse(read_source(Path(file)), file)
    return data


def _uid_location(file: str, variant: Sequence[Override]) -> Location:
    """Where the run's uid was given: the last ``--set uid=...``, else the line of ``file``
    (read and checked already) that writes it."""
    from pathlib import Path

    from arl.config.parse import parse
    from arl.config.source import read_source

    options = [o.source for o in variant if o.key == "uid"]
    if options:
        return Location(options[-1])
    _, positions = parse(read_source(Path(file)), file)
    line, column = positions[("uid",)].value  # a file with no uid was refused before
    return Location(file, line + 1, column + 1)


def _long_swept_uid(uid: str) -> str:
    from arl.config.overrides import SUFFIX_LENGTH

    return (
        f"a swept run's uid is the file's uid and {SUFFIX_LENGTH} characters more (-<hash of the swept "
        f"values>), at most {MAX_NAME} in all: this uid is {len(uid)} characters; shorten it to "
        f"{MAX_NAME - SUFFIX_LENGTH} or fewer"
    )


def preflight(
    files: Sequence[str],
    url: str | None,
    variants: Variants,
    *,
    probe: bool = False,
    timeout: float = CHECK_TIMEOUT,
    fork_server: bool = True,
) -> tuple[Runs, str | None]:
    """Every (file, run) pair after a complete check, and where the store is; raises
    Refused when nothing may run (problems in the files, a store that will not open,
    a check that hung or died, Ctrl-C). With ``url`` None the store is left alone.

    With ``url`` (a run follows) the fork server the runs' processes will come from
    (:mod:`arl.proc.forkserver`) is started too, so that it imports arl's modules while
    the files are checked; it is stopped if nothing may run. ``fork_server``: it is a fork
    of this process (``arl-run``: everything it imported comes free); False spawns a fresh
    interpreter instead (a library caller's process, whose state its children must not get)."""
    import arl.config  # noqa: F401 - imported once here, inherited by the checking child
    from arl.proc import forkserver

    if url is not None:  # a run follows: its processes' server imports while the files are checked
        forkserver.start(fork=fork_server)
    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe(duplex=True)
    child = ctx.Process(target=_child, args=(theirs, list(files), variants, url, probe), name="arl-check")
    talk = _Talk(ours, child, timeout)
    refused = True  # until the check has passed: then the server is the run's
    try:
        with _sigint_blocked():  # the child must not die of a Ctrl-C before it ignores it
            child.start()
        theirs.close()
        runs = _parse_here(files, variants)
        talk.wait("checked")
        _refuse_problems(talk.found)
        if url is None:
            refused = False
            return runs, None
        talk.opening = True
        ours.send_bytes(b"open")
        store_error, location = talk.wait("store")
        if store_error is not None:
            raise Refused(_store_refused(store_error))
        _refuse_problems(talk.found)
        refused = False
        return runs, location
    except KeyboardInterrupt:
        talk.interrupted()
        raise Refused(["interrupted while checking; nothing was run."], EXIT_INTERRUPTED) from None
    finally:
        talk.end()  # first: the checking child must be gone before the server is waited for
        if refused and url is not None:
            forkserver.stop()


def _parse_here(files: Sequence[str], variants: Variants) -> Runs:
    """Each run's spec, read without importing anything (the child reports problems)."""
    runs = []
    for file in files:
        for variant in variants:
            with contextlib.suppress(ConfigError):
                runs.append((file, load(file, variant, resolve_classes=False)))
    return runs


def _refuse_problems(problems: list[Problem]) -> None:
    if problems:
        count = len(problems)
        summary = f"{count} problem{'s' if count > 1 else ''} found; nothing was run."
        raise Refused([*_lines(problems), summary])


def _lines(problems: list[Problem]) -> list[str]:
    return [f"error: {problem}" for problem in problems]


def _store_refused(error: str) -> list[str]:
    lines = [f"error: {error}"]
    if "arl-run db upgrade" not in error:  # else the store is fine, only older
        lines.append("Give a working SQLAlchemy URL with --store or ARL_STORE_URL.")
    return [*lines, "Nothing was run."]


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@dataclass
class _Step:
    """What the child said it was about to do, and where in which file."""

    where: Location
    path: str
    what: str

    def problem(self, message: str) -> Problem:
        return Problem(self.where, self.path, message)


class _Talk:
    """The parent's end of the pipe to the checking child: waits with a deadline,
    remembers the child's last step, and ends the child."""

    def __init__(self, conn: Any, child: Any, timeout: float) -> None:
        self.conn, self.child, self.timeout = conn, child, timeout
        self.step: _Step | None = None
        self.found: list[Problem] = []  # each once: a mistake in a file shows in every variant of it
        self.opening = False  # the child was told to open the store
        self.hurry = False  # end the child at once, without waiting for it to finish

    def wait(self, kind: str) -> list[Any]:
        """The fields of the child's next ``kind`` message; Refused if it says nothing
        for ``timeout`` seconds or dies first."""
        while True:
            if not self.conn.poll(self.timeout):
                self.hurry = True
                raise Refused(self._timed_out())
            try:
                message = unpack(self.conn.recv_bytes())
            except EOFError:
                self.child.join()
                raise Refused(self._died()) from None
            if message[0] == "at":
                where, path, what = message[1:]
                self.step = _Step(Location(*where), path, what)
            elif message[0] == "found":
                found = (Problem(Location(*where), path, text) for where, path, text in message[1])
                self.found = list(dict.fromkeys([*self.found, *found]))
            elif message[0] == kind:
                return list(message[1:])

    def interrupted(self) -> None:
        """After Ctrl-C: a store being created is finished first (a second Ctrl-C, or
        the timeout, stops that too); anything else is stopped at once."""
        self.hurry = True
        if self.opening and self.child.is_alive():
            with contextlib.suppress(KeyboardInterrupt, Refused):
                self.wait("store")

    def end(self) -> None:
        """When this returns, the child has been reaped and the pipe closed. A child
        that is done exits by itself (it gets a moment); any other is killed."""
        self.conn.close()  # a child waiting for the word to open the store gives up
        if self.child.pid is None:
            return  # never started
        if not self.hurry:
            self.child.join(_EXIT_GRACE)
        if self.child.is_alive():
            self.child.kill()
        self.child.join()

    def _timed_out(self) -> list[str]:
        advice = "nothing was run; if it needs longer, give --check-timeout SECONDS."
        if self.step is None:
            return [
                *_lines(self.found),
                f"error: checking the experiment files took more than {self.timeout:g} s; {advice}",
            ]
        message = f"{self.step.what} took more than {self.timeout:g} s and was stopped"
        return [*_lines(self.found), f"error: {self.step.problem(message)}", f"The check is bounded: {advice}"]

    def _died(self) -> list[str]:
        from arl.governor.options import describe_exit

        ended = f"the checking process {describe_exit(self.child.exitcode)}"
        if self.step is None:
            return [*_lines(self.found), f"error: checking the experiment files failed: {ended}; nothing was run."]
        problem = self.step.problem(f"{self.step.what} ended the check: {ended}")
        return [*_lines(self.found), f"error: {problem}", "Nothing was run."]


# --------------------------------------------------------------------------- the child


def _child(conn: Any, files: list[str], variants: Variants, url: str | None, probe: bool) -> None:
    """In the checking child: every problem of every run; then, on the parent's word,
    the store opened and asked for the brains files load from other runs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    from arl.proc import forkserver

    forkserver.forget()  # the parent's, not this process's: let it end when the parent lets it go
    from arl.config import Prober

    def progress(where: Location, path: str, what: str) -> None:
        conn.send_bytes(pack(["at", [where.file, where.line, where.column], path, what]))

    # No run follows (check, --dry-run): the probe steps each environment too
    # (arl.check_environment); before a run only builds and resets, for its steps may act.
    prober: Prober | bool = Prober(check=url is None) if probe else False
    found = False
    external = []  # the runs that load brains from other runs: checked against the store
    for file in files:
        for variant in variants:
            try:
                spec = load(file, variant, resolve_classes=True, probe=prober, progress=progress)
            except ConfigError as exc:
                conn.send_bytes(pack(["found", _encoded(exc.problems)]))
                found = True
                continue
            if any(a.load is not None and a.load.run is not None for p in spec.phases for a in p.agents):
                external.append((file, variant))
    conn.send_bytes(pack(["checked"]))
    if found or url is None or not _told_to_open(conn):
        return  # a wrong file must not create a store
    conn.send_bytes(pack(_open_and_ask(conn, url, external, progress)))


def _told_to_open(conn: Any) -> bool:
    try:
        return bool(conn.recv_bytes() == b"open")
    except EOFError:  # the parent is gone
        return False


def _open_and_ask(conn: Any, url: str, external: list[tuple[str, Any]], progress: Any) -> list[Any]:
    """``["store", error, location]``: whether the store opens and where it is; before
    it, the problems of loads from runs the store does not have."""
    from arl.store.engine import describe_location, open_store

    location = describe_location(url)
    progress(Location(location), "", "opening the store")
    try:
        open_store(url).dispose()
    except ArlError as exc:
        return ["store", str(exc), None]
    stored = functools.partial(_stored, url, location)
    for file, variant in external:
        try:
            load(file, variant, resolve_classes=True, progress=progress, stored=stored)
        except ConfigError as exc:
            conn.send_bytes(pack(["found", _encoded(exc.problems)]))
    return ["store", None, location]


def _stored(url: str, location: str, load: Any) -> str | None:
    """None if the store has the brain ``load`` (a LoadSpec) names, else why not."""
    from sqlalchemy.exc import SQLAlchemyError

    from arl.store.query import find_checkpoint

    phase = f"phase {load.phase!r}" if load.phase is not None else "any phase"
    try:
        if find_checkpoint(url, load.run, load.phase, load.agent) is not None:
            return None
    except (ArlError, SQLAlchemyError) as exc:
        return f"cannot look up run {load.run!r} in the store {location}: {exc}"
    return (
        f"the store ({location}) has no brain of agent {load.agent!r} saved in {phase} of run {load.run!r}; "
        "is it the store that run wrote to (--store)?"
    )


def _encoded(problems: list[Problem]) -> list[Any]:
    return [[[p.location.file, p.location.line, p.location.column], p.path, p.message] for p in problems]
