"""Which runs of a file ``arl-run run --resume`` (or ``--from-state PATH``) continues,
from which snapshot, and which it skips or starts anew.

For each run of the file: its newest complete snapshot in ``<state dir>/<run uid>/``
(verified: :func:`arl.state.snapshot.latest`). A run the store has FINISHED is skipped
(a sweep's finished runs are not run again); an unfinished one with a snapshot goes on
from it; one with no snapshot starts anew (never started, or stopped before its first
snapshot). ``--from-state`` names one snapshot: its run goes on from it, and the file's
other runs are not run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from arl.config.spec import DEFAULT_STATE_DIR, RunSpec
from arl.errors import ArlError
from arl.state import snapshot

FINISHED = "FINISHED"


@dataclass
class Plan:
    """What to run: the specs, the snapshot each resumed one goes on from (by uid), and
    what the user is told of the others."""

    specs: list[RunSpec] = field(default_factory=list)
    resume: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def state_dir(spec: RunSpec) -> Path:
    return Path(spec.state.dir if spec.state is not None else DEFAULT_STATE_DIR)


def _status(url: str, run_id: int | None, uid: str) -> str | None:
    """The store's status of run ``run_id`` (else of the newest run ``uid``); None if it has
    none. Raises :class:`ArlError` when the store's run ``run_id`` is another run than
    ``uid`` (a snapshot resumed against another store than its run's)."""
    from sqlalchemy import select

    from arl.store.engine import connect_engine, sqlite_path
    from arl.store.schema import RunRow

    path = sqlite_path(url)
    if path is not None and not Path(path).exists():
        if run_id is not None:
            raise ArlError(f"the store {url} does not exist: a snapshot of run {uid!r} goes on in its run's store")
        return None
    engine = connect_engine(url, create=False)
    try:
        with engine.connect() as conn:
            query = select(RunRow.uid, RunRow.status).where(
                RunRow.id == run_id if run_id is not None else RunRow.uid == uid
            )
            rows = list(conn.execute(query.order_by(RunRow.id.desc()).limit(1)))
    finally:
        engine.dispose()
    if run_id is not None and (not rows or rows[0][0] != uid):
        which = f"its run {run_id} is {rows[0][0]!r}" if rows else f"it has no run {run_id}"
        raise ArlError(f"the store {url} is not the one run {uid!r} was stored in ({which}): give the run's --store")
    return str(rows[0][1]) if rows else None


def plan(specs: list[RunSpec], url: str, from_state: str | None) -> Plan:
    """Raises :class:`ArlError` for a ``--from-state`` snapshot that does not load or is of
    none of the file's runs."""
    if from_state is not None:
        manifest = snapshot.load(from_state)
        uid = manifest.fields.get("run_uid")
        chosen = [spec for spec in specs if spec.uid == uid]
        if not chosen:
            raise ArlError(
                f"snapshot {from_state} is of run {uid!r}, which the file does not have "
                f"(its runs: {', '.join(repr(s.uid) for s in specs)})"
            )
        if _status(url, manifest.fields.get("run_id"), str(uid)) == FINISHED:
            raise ArlError(f"run {uid!r} has FINISHED: there is nothing to go on with")
        return Plan(chosen, {chosen[0].uid: str(manifest.path)})
    result = Plan()
    for spec in specs:
        newest = snapshot.latest(state_dir(spec), spec.uid)
        fields = snapshot.load(newest).fields if newest is not None else {}
        status = _status(url, fields.get("run_id"), spec.uid)
        if status == FINISHED:
            result.notes.append(f"run {spec.uid}: FINISHED already; skipped")
            continue
        result.specs.append(spec)
        if newest is not None:
            result.resume[spec.uid] = str(newest)
            result.notes.append(f"run {spec.uid}: goes on from snapshot {newest}")
        elif status is not None:
            result.notes.append(f"run {spec.uid}: {status} with no snapshot in {state_dir(spec)}; starts anew")
    return result
