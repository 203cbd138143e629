"""``arl-run ctl``: control a live run through its control API (:mod:`arl.controlapi`).

The run is found through the store: the one RUNNING, or the newest with the uid given.
At its start a run records an event of kind ``control`` saying where its API answers and
where its token lies; ``ctl`` reads both and calls the API.

Imported when ``arl-run`` starts, so only click here; the store's modules come in with
the command.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from arl.cli.common import fail, store_option
from arl.controlapi import COMMANDS, CONTROL_EVENT, TOKEN_FILE
from arl.errors import ArlError
from arl.status import RunStatus
from arl.terminal import printable, printable_lines

if TYPE_CHECKING:
    from arl.results.queries import Reader, Record

RESUMABLE = frozenset({RunStatus.INTERRUPTED, RunStatus.FAILED})


@dataclass(frozen=True)
class Target:
    """A live run's control API: the run's uid, the API's URL and its token."""

    uid: str
    url: str
    token: str


@click.command("ctl")
@click.argument("word", type=click.Choice(["status", *COMMANDS]), metavar="status|" + "|".join(COMMANDS))
@click.option("--run", "run", metavar="UID", help="The run to control (its uid, newest first, or its id).")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
def ctl(word: str, run: str | None, store: str | None, as_json: bool) -> None:
    """Control a live run: show its status, pause it, resume it, save a snapshot, or stop
    it (a final snapshot, then it ends INTERRUPTED, resumable).

    \b
    Without --run: the run that is RUNNING in the store (there must be one only).
    Exit codes: 0 done, 1 the run cannot be controlled or the API refused, 2 usage.
    """
    try:
        target = find_target(store, run)
        answer = ask(target, word)
    except ArlError as exc:
        from arl.store.engine import StoreNotFound  # here: SQLAlchemy is not imported at start
        from arl.store.location import URL_ENV_VAR

        hint = f": give --store URL or set {URL_ENV_VAR}" if isinstance(exc, StoreNotFound) else ""
        fail(printable(f"{exc}{hint}"))
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    elif word == "status":
        click.echo(format_status(answer))
    else:
        click.echo(format_result(word, answer))


def ask(target: Target, word: str) -> dict[str, Any]:
    """Call the API: ``status`` is a GET, a command a POST."""
    from arl.controlapi.client import call

    run = "/runs/" + urllib.parse.quote(target.uid, safe="")
    if word == "status":
        return call(target.url, target.token, "GET", run + "/status")
    return call(target.url, target.token, "POST", f"{run}/{word}")


# -- finding the run -----------------------------------------------------------------------


def find_target(store: str | None, run: str | None) -> Target:
    """The API of run ``run`` (else of the one RUNNING) in ``store``; :class:`ArlError` when
    there is none to control, saying why."""
    from arl.results import queries as q

    with q.reading(store) as reader:
        record = q.find_run(reader, run) if run is not None else _the_running(reader)
        _check_controllable(record)
        detail = _control_detail(reader, record)
    return Target(record["uid"], detail["url"], _read_token(Path(detail["token_file"])))


def _the_running(reader: Reader) -> Record:
    from arl.results import queries as q

    running = q.run_records(reader, status=RunStatus.RUNNING)
    if len(running) == 1:
        return running[0]
    if running:
        named = ", ".join(f"{r['uid']!r} (id {r['id']})" for r in running)
        raise ArlError(f"{len(running)} runs are running in {reader.location}: {named}; pass --run UID (or id)")
    newest = q.run_records(reader, last=1)
    if not newest:
        raise ArlError(f"no run is running: the store {reader.location} holds no runs")
    raise ArlError(f"no run is running in {reader.location}; the newest, {_named(newest[0])}, {_how(newest[0])}")


def _check_controllable(record: Record) -> None:
    if record["status"] != RunStatus.RUNNING:
        raise ArlError(f"{_named(record)} {_how(record)}")
    here = socket.gethostname()
    if record["host"] != here:
        raise ArlError(
            f"{_named(record)} runs on host {record['host']!r}, not {here!r}: its control API answers there "
            f"only; run `arl-run ctl` on {record['host']}"
        )


def _named(record: Record) -> str:
    return f"run {record['uid']!r} (id {record['id']})"


def _how(record: Record) -> str:
    """What a run that is not RUNNING is, for a message saying it cannot be controlled, and
    how to go on with it."""
    from arl.results.report import when

    status = RunStatus(record["status"])
    if not status.ended:
        return f"is {status}, not yet started: there is nothing to control"
    why = f", {record['end_reason']}" if record.get("end_reason") else ""
    how = f"has ended ({status} at {when(record['ended_at'])} UTC{why}): there is nothing to control"
    if status in RESUMABLE:
        how += "; `arl-run run FILE --resume` continues it from its latest snapshot"
    return how


def _control_detail(reader: Reader, record: Record) -> dict[str, str]:
    """Where the run's API answers: the detail of its newest ``control`` event (a resumed
    run records a new one)."""
    from sqlalchemy import select

    from arl.store.schema import EventRow

    query = (
        select(EventRow.detail)
        .where(EventRow.run_id == record["id"], EventRow.kind == CONTROL_EVENT)
        .order_by(EventRow.id.desc())
        .limit(1)
    )
    detail = reader.conn.execute(query).scalar()
    run = _named(record)
    if detail is None:
        raise ArlError(f"{run} was started without a control API (it recorded no {CONTROL_EVENT!r} event)")
    if not (
        isinstance(detail, dict) and isinstance(detail.get("url"), str) and isinstance(detail.get("token_file"), str)
    ):
        raise ArlError(f"{run} recorded a {CONTROL_EVENT!r} event without a url and token_file: {detail!r}")
    return detail


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ArlError(
            f"cannot read the run's token file {path}: {exc.strerror or exc}; run `arl-run ctl` as the user "
            f"that started the run, on its machine"
        ) from None
    if not token:
        raise ArlError(f"the run's token file {path} is empty: it is not a {TOKEN_FILE} that arl-run wrote")
    return token


# -- what it prints -----------------------------------------------------------------------

STATUS_ORDER = ("run", "state", "paused", "phase", "steps_per_s", "last_snapshot", "workers")


def format_status(status: dict[str, Any]) -> str:
    """The API's status of a run as lines: its state, phase, speed, last snapshot, then one
    line per worker and any other field as ``name: value``."""
    paused = " (paused)" if status.get("paused") else ""
    lines = [f"run {status.get('run', '?')}: {status.get('state', '?')}{paused}"]
    if "phase" in status:
        lines.append(f"phase: {_value(status['phase'])}")
    if "steps_per_s" in status:
        lines.append(f"steps/s: {_value(status['steps_per_s'])}")
    if "last_snapshot" in status:
        lines.append(f"last snapshot: {_value(status['last_snapshot'])}")
    lines += [_worker(worker) for worker in status.get("workers") or []]
    lines += [f"{key}: {_value(value)}" for key, value in status.items() if key not in STATUS_ORDER]
    return printable_lines("\n".join(lines))


def _worker(worker: Any) -> str:
    if not isinstance(worker, dict):
        return f"worker: {_value(worker)}"
    name = f"worker {worker.get('worker', '?')}"
    if "reason" in worker:  # it has ended the phase
        counts = f"{worker.get('episodes', '?')} episodes, {worker.get('steps', '?')} steps"
        return f"{name}: done ({worker['reason']}), {counts}"
    if "copies" in worker:
        return f"{name}: " + "; ".join(f"episode {c.get('episode')}, step {c.get('step')}" for c in worker["copies"])
    return f"{name}: episode {worker.get('episode', '?')}, step {worker.get('step', '?')}"


def format_result(word: str, answer: dict[str, Any]) -> str:
    """What a command did: ``<word>: done for run <uid>``, then its result's fields."""
    result = answer.get("result")
    lines = [f"{word}: done for run {answer.get('run', '?')}"]
    if isinstance(result, dict):
        lines += [f"{key}: {_value(value)}" for key, value in result.items()]
    elif result is not None:
        lines.append(_value(result))
    return printable_lines("\n".join(lines))


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)
