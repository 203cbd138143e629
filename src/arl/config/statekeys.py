"""What the schema cannot say about the file's ``state`` key: the signal a save listens
for, whether the snapshot name format names folders that do not clash, and whether the
state folder can be made. Pure functions: each returns why a value cannot be used (a
sentence saying what to do), or None."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from arl.config.report import did_you_mean, shorten
from arl.config.spec import SAVE_SIGNALS
from arl.errors import ArlError
from arl.state.snapshot import NAME_FORMAT, snapshot_name

_ALLOWED = "save on SIGUSR1, SIGUSR2 or SIGHUP"
_ARLS = {
    "SIGINT": "it stops the run (Ctrl-C)",
    "SIGTERM": "it stops the run",
    "SIGKILL": "no process can catch it",
    "SIGSTOP": "no process can catch it",
}

_FIRST = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
_APART = (
    timedelta(0),
    timedelta(seconds=1),
    timedelta(minutes=1),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=32),
    timedelta(days=366),
)
"""Instants a second to a year apart: a format must name each differently, or a run's
snapshots would clash (a snapshot whose name exists is refused)."""


def signal_problem(name: str) -> str | None:
    """Why a save cannot be asked for by the signal ``name``, or None."""
    if name in SAVE_SIGNALS:
        return None
    if name in _ARLS:
        return f"{name} is arl's: {_ARLS[name]}; {_ALLOWED}"
    if name in signal.Signals.__members__:
        return f"{name} is not one a run saves on (a run's processes have their own use for it); {_ALLOWED}"
    spelt = name.strip().upper()
    spelt = spelt if spelt.startswith("SIG") else "SIG" + spelt
    hint = f"; did you mean {spelt!r}?" if spelt in SAVE_SIGNALS else did_you_mean(name, SAVE_SIGNALS)
    return f"unknown signal {shorten(name)}{hint} ({_ALLOWED})"


def name_format_problem(format: str) -> str | None:
    """Why ``format`` (strftime, UTC) cannot name snapshots, or None: it must give a valid
    folder name (:func:`arl.state.snapshot.snapshot_name`'s check), and different names
    for instants a second to a year apart."""
    seen: dict[str, datetime] = {}
    for apart in _APART:
        when = _FIRST + apart
        try:
            name = snapshot_name(format, when)
        except ArlError as exc:
            return f"{exc}; a snapshot's name is a folder's"
        except ValueError as exc:  # what strftime cannot format
            return f"the snapshot name format {shorten(format)} cannot be used: {exc}"
        if name in seen:
            return (
                f"the snapshot name format {shorten(format)} gives the same name {shorten(name)} at "
                f"{seen[name]:%Y-%m-%d %H:%M:%S} and {when:%Y-%m-%d %H:%M:%S}, so a later snapshot could not be "
                f"saved; include the date and the time to the second at least, as the default {NAME_FORMAT!r} does"
            )
        seen[name] = when
    return None


def dir_problem(text: str) -> str | None:
    """Why snapshots cannot be written under the folder ``text`` (as written: relative to
    the working directory), or None. It need not exist yet: the nearest part of it that
    does must be a folder arl-run may write in."""
    path = Path(text)
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "it" if existing == path else shorten(str(existing))
        return f"{where} is not a folder; name a folder for the snapshots (one that exists, or can be made)"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"arl-run may not write in {shorten(str(existing))}; name a folder it may write in"
    return None
