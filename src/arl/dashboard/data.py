"""What the dashboard shows, read from a store (:class:`StoreView`): its runs, and one
run's phases, returns per agent over its episodes, metrics, events and errors, as values
ready for JSON.

The page asks again every second while runs write, so a run's big tables are not read
again each time: the episodes and steps counted and each episode's return (both by
:mod:`arl.dashboard.follow`), and each metric's summary, are kept between requests, and
only rows with a larger id than those already read are read (one run's rows are inserted
by its one writer, in id order, so they arrive in id order on SQLite and PostgreSQL
alike). An ended run's rows no longer change: once read after it ended, its page is kept
whole, and it costs a query of its row a request. A run resumed from a snapshot (rows
rewound, :mod:`arl.store.marks`) has a new writer's pid and is read anew.

One request reads at a time (what is kept is shared). A request that cannot have its turn
within :data:`LOCK_WAIT` seconds, behind one that hangs (a PostgreSQL server that does not
answer is given :data:`CONNECT_TIMEOUT` seconds), raises :class:`StoreBusy` rather than
queueing for ever.

Reading never writes. A run whose process died (killed) shows INTERRUPTED with the
reason ``process died``, as ``arl-run results list`` would record it, but the store is
left as it is. Each request reads in a few short statements: on SQLite (WAL) each is
its own read, which never blocks the run's writer; on PostgreSQL one short transaction.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from arl.dashboard.follow import IN_CHUNK, RunCounts, RunReturns, chunks, count_first
from arl.dashboard.series import RateMeter
from arl.errors import ArlError
from arl.store.engine import StoreNotFound, describe_location, open_store, refuse_unkept, short_error, sqlite_path
from arl.store.query import last_sign_of_life, process_alive
from arl.store.schema import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    EventRow,
    MetricRow,
    PhaseRow,
    RunRow,
)

Record = dict[str, Any]
RunKey = tuple[Any, ...]
"""What tells one writing of a run from another: its id, start, and writer's pid and
start (a resumed run keeps its id and gets a new writer)."""

READ_PATIENCE = 5.0
"""Seconds a read waits for a SQLite lock (WAL readers rarely meet one)."""
CONNECT_TIMEOUT = 5
"""Seconds a connection to a PostgreSQL server may take (psycopg's own default is 130):
one that is down or unreachable is said on the page, and tried again, soon."""
LOCK_WAIT = 3.0
"""Seconds a request waits for its turn to read before it is answered "busy": below the
page's own timeout (10 s), so that the page says so rather than that nothing answers."""
CLOSE_WAIT = 1.0
"""Seconds :meth:`StoreView.close` waits for a read in progress before giving up."""
ID_MAX = 2**63 - 1
"""The largest id a store's row can have (64-bit); a larger one names no run."""
RUNS_SHOWN = 500
"""The newest runs listed; the page says how many more the store holds."""
EVENTS_SHOWN = 200
"""A run's newest events shown."""
ERROR_CHARS = 300
"""Of a run's error, the list shows the first line, cut to this many characters."""
RUNS_KEPT = 16
"""Runs whose pages (returns, metrics) are kept between requests: the ones last looked at."""

_TERMINAL = {str(s) for s in TERMINAL_STATUSES}
_UNFINISHED = {str(s) for s in UNFINISHED_STATUSES}
_RUN_COLUMNS = (
    RunRow.id, RunRow.uid, RunRow.experiment_uid, RunRow.status, RunRow.seed, RunRow.host, RunRow.pid,
    RunRow.pid_started_at, RunRow.arl_version, RunRow.started_at, RunRow.ended_at, RunRow.end_reason, RunRow.error,
)  # fmt: skip


@dataclass
class _Tally:
    """A run's counts so far: environment steps and episodes per phase (by index)."""

    key: RunKey
    counts: RunCounts = field(default_factory=RunCounts)
    settled: bool = False  # counted after the run had ended: nothing more will come
    last_alive: datetime | None = None  # of a run found dead: when it last stored anything


@dataclass
class _Page:
    """What a run's page keeps between requests: its returns, its metrics summed up so
    far (by phase index, agent, worker and name), and once the run has ended, the whole
    page but the run's own row."""

    key: RunKey
    returns: RunReturns = field(default_factory=RunReturns)
    metrics: dict[tuple[int, str, int | None, str], Record] = field(default_factory=dict)
    last_metric: int = 0  # the largest metric id summed up
    settled: Record | None = None


class StoreBusy(ArlError):
    """A request waited :data:`LOCK_WAIT` seconds for its turn to read, in vain."""


class StoreView:
    """The dashboard's read-only view of the store at ``url`` (a SQLAlchemy URL).

    The store may not exist yet: each request tries again, and says so until it does
    (:meth:`store`). Safe to call from several threads: one request is read at a time,
    and one that waits ``wait`` seconds for its turn raises :class:`StoreBusy`. A
    connection to PostgreSQL may take ``connect_timeout`` seconds (2 at least). ``clock``
    gives monotonic seconds for the steps per second. :meth:`close` disposes the engine.
    Raises :class:`ArlError` at once for a URL that names no store that could ever be read
    (empty, in-memory SQLite, not a URL, no such database driver).
    """

    def __init__(
        self,
        url: str,
        *,
        patience: float = READ_PATIENCE,
        wait: float = LOCK_WAIT,
        connect_timeout: int = CONNECT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        refuse_unkept(url)
        _check_url(url)
        self.url = url
        self.location = describe_location(url)
        self.patience = patience
        self.wait = wait
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.host = socket.gethostname()
        self._engine: Engine | None = None
        self._file: tuple[int, int] | None = None  # the SQLite file the engine reads: device, inode
        self._lock = threading.Lock()
        self._tallies: dict[int, _Tally] = {}
        self._rates = RateMeter()
        self._pages: OrderedDict[int, _Page] = OrderedDict()

    def close(self) -> None:
        """Dispose the engine; after :data:`CLOSE_WAIT` seconds of a read in progress (a
        connection that hangs) leave it to the process's end instead."""
        if not self._lock.acquire(timeout=CLOSE_WAIT):
            return
        try:
            self._dispose()
        finally:
            self._lock.release()

    # -- the answers ----------------------------------------------------------------------

    def runs(self, limit: int = RUNS_SHOWN) -> Record:
        """``{"store": ..., "runs": [...], "total": n}``: the newest ``limit`` runs, newest
        first, each with its status, counts and steps per second."""

        def read(conn: Connection) -> Record:
            total = conn.execute(select(func.count()).select_from(RunRow)).scalar_one()
            rows = conn.execute(select(*_RUN_COLUMNS).order_by(RunRow.id.desc()).limit(limit)).all()
            self._count(conn, rows)
            # Kept: the runs listed, and those whose page was looked at last (maybe older).
            kept = {row.id for row in rows} | self._pages.keys()
            self._tallies = {run_id: tally for run_id, tally in self._tallies.items() if run_id in kept}
            self._rates.keep(tally.key for tally in self._tallies.values())
            return {"runs": [self._summary(row, brief=True) for row in rows], "total": total}

        return self._answer(read, {"runs": [], "total": 0})

    def run(self, run_id: int) -> Record:
        """``{"store": ..., "run": ...}`` with the run's phases, returns chart, metrics,
        events and errors; ``run`` is None when the store has no run ``run_id``."""

        def read(conn: Connection) -> Record:
            if run_id > ID_MAX:  # no store's id (SQLite would not take it as a parameter)
                return {"run": None}
            row = conn.execute(select(*_RUN_COLUMNS).where(RunRow.id == run_id)).first()
            if row is None:
                return {"run": None}
            self._count(conn, [row])
            run = self._summary(row, brief=False)
            page = _kept(self._pages, run_id, self._tallies[run_id].key)
            if page.settled is not None:
                return {"run": run, **page.settled}
            parts = self._page(conn, row, run, page)
            if row.status in _TERMINAL:  # read after it ended (its row came first): final
                page.settled = parts
            return {"run": run, **parts}

        return self._answer(read, {"run": None})

    def store(self) -> Record:
        """Where the store is and whether it can be read: ``{"location", "found", "error"}``."""
        store: Record = self._answer(lambda conn: {}, {})["store"]
        return store

    # -- the store ------------------------------------------------------------------------

    def _answer(self, read: Callable[[Connection], Record], empty: Record) -> Record:
        """``read``'s answer with ``"store": {...}``; ``empty`` with it when the store is
        not there (yet) or cannot be read, saying why. Raises :class:`StoreBusy`."""
        if not self._lock.acquire(timeout=self.wait):
            raise StoreBusy(
                f"the dashboard is busy: another request has been reading the store {self.location} "
                f"for over {self.wait:g} s; the page asks again"
            )
        try:
            engine = self._open()
            with engine.connect() as conn:
                answer = read(conn)
        except StoreNotFound:
            return {**empty, "store": self._said(found=False)}
        except ArlError as exc:
            return {**empty, "store": self._said(error=str(exc))}
        except SQLAlchemyError as exc:
            return {**empty, "store": self._said(error=f"reading the store failed: {short_error(exc)}")}
        finally:
            self._lock.release()
        return {**answer, "store": self._said()}

    def _said(self, *, found: bool = True, error: str | None = None) -> Record:
        return {"location": self.location, "found": found, "error": error}

    def _open(self) -> Engine:
        """The engine, opened on first use. For SQLite, while it is the file at the path:
        one deleted, or replaced by another (a new inode), is opened anew, and what was
        kept of the old one forgotten; the pool's connections hold the old file open, so
        its inode cannot be reused by the new one meanwhile."""
        path = sqlite_path(self.url)
        file = None
        if path is not None:
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                self._dispose()
                raise StoreNotFound(path) from None
            file = (stat.st_dev, stat.st_ino)
            if file != self._file:
                self._dispose()
        if self._engine is None:
            self._engine = open_store(
                _with_timeout(self.url, self.connect_timeout), create=False, patience=self.patience
            )
            self._file = file
        return self._engine

    def _dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self._file = None
        self._tallies.clear()
        self._pages.clear()

    # -- runs -----------------------------------------------------------------------------

    def _count(self, conn: Connection, rows: Sequence[Any]) -> None:
        """Bring the counts of ``rows``' runs up to date (:class:`_Tally`). A run read as
        ended before its counts were is settled: nothing of it is counted again."""
        unsettled = []
        for row in rows:
            key = (row.id, row.started_at, row.pid, row.pid_started_at)
            tally = self._tallies.get(row.id)
            if tally is None or tally.key != key:
                tally = self._tallies[row.id] = _Tally(key)
            if not tally.settled:
                unsettled.append((row, tally))
        count_first(conn, [(row.id, tally.counts) for row, tally in unsettled if not tally.counts.counted])
        for row, tally in unsettled:
            if tally.counts.counted:
                tally.counts.update(conn, row.id)
            tally.settled = row.status in _TERMINAL

    def _summary(self, row: Any, *, brief: bool) -> Record:
        """A run as the page shows it: its row, counts, steps per second, and its status
        as it truly is (a run of this host whose process is gone is INTERRUPTED)."""
        tally = self._tallies[row.id]
        counts = tally.counts
        steps = sum(counts.steps.values())
        run: Record = {
            "id": row.id, "uid": row.uid, "experiment_uid": row.experiment_uid, "status": row.status,
            "host": row.host, "started_at": row.started_at, "ended_at": row.ended_at, "end_reason": row.end_reason,
            "error": row.error, "died": False, "phases": len(counts.episodes),
            "episodes": sum(counts.episodes.values()), "steps": steps, "steps_per_s": None,
        }  # fmt: skip
        if row.status in _UNFINISHED and self._died(row):
            if tally.last_alive is None:
                tally.last_alive = last_sign_of_life(self._engine_now(), row.id) or row.started_at
            run.update(
                status="INTERRUPTED", died=True, ended_at=tally.last_alive, end_reason="process died",
                error=f"its process (pid {row.pid} on {row.host}) died without ending the run; the store still says "
                f"{row.status} (`arl-run results list` records it as INTERRUPTED)",
            )  # fmt: skip
        elif row.status not in _TERMINAL:
            run["steps_per_s"] = self._rates.rate(tally.key, self.clock(), steps)
        run["duration_s"] = _duration(run["started_at"], run["ended_at"])
        if brief:
            run["error"] = _first_line(run["error"])
        else:  # the seed as text: JSON numbers above 2**53 lose digits in the page's JavaScript
            run.update(seed=str(row.seed), pid=row.pid, arl_version=row.arl_version)
        return run

    def _died(self, row: Any) -> bool:
        """Whether the run's writer, a process of this host, is gone; a run of another host,
        or one that recorded no pid, cannot be judged from here."""
        return row.host == self.host and row.pid is not None and not process_alive(row.pid, row.pid_started_at)

    def _engine_now(self) -> Engine:
        assert self._engine is not None, "asked only while a request reads"
        return self._engine

    # -- one run --------------------------------------------------------------------------

    def _page(self, conn: Connection, row: Any, run: Record, page: _Page) -> Record:
        """The run's page but its row (``run``): phases, returns, metrics, events, errors."""
        phases = self._phases(conn, row)
        names = {phase["phase"]: phase["name"] for phase in phases}
        events, total = _events(conn, row.id)
        chart = page.returns.chart(conn, row.id, names)
        if run["status"] in _TERMINAL:
            chart = {**chart, "open": 0}  # an episode its dead process left open is not "still running"
        return {
            "phases": phases,
            "returns": chart,
            "metrics": self._metric_summary(conn, row.id, page, names),
            "events": events,
            "events_total": total,
            "errors": _errors(run, events),
        }

    def _phases(self, conn: Connection, row: Any) -> list[Record]:
        tally = self._tallies[row.id]
        p = PhaseRow
        query = (
            select(p.index, p.name, p.mode, p.started_at, p.ended_at, p.end_reason)
            .where(p.run_id == row.id)
            .order_by(p.index)
        )
        phases = []
        for index, name, mode, started, ended, reason in conn.execute(query):
            if ended is None and tally.last_alive is not None:  # its process died: it ended then
                ended, reason = tally.last_alive, "process died"
            phases.append({
                "phase": index, "name": name, "mode": mode, "started_at": started,
                "ended_at": ended, "duration_s": _duration(started, ended), "end_reason": reason,
                "episodes": tally.counts.episodes.get(index, 0), "steps": tally.counts.steps.get(index, 0),
            })  # fmt: skip
        return phases

    def _metric_summary(self, conn: Connection, run_id: int, page: _Page, names: dict[int, str]) -> list[Record]:
        """What the run's brains and muscles logged: per phase, agent, worker (None: the
        brain) and name, how many values, the smallest, the largest and the last."""
        m = MetricRow
        group = (PhaseRow.index, m.agent, m.worker, m.name)
        query = (
            select(*group, func.count(), func.min(m.value), func.max(m.value), func.max(m.id))
            .join(PhaseRow, m.phase_id == PhaseRow.id)
            .where(m.run_id == run_id, m.id > page.last_metric)
            .group_by(*group)
        )
        found = conn.execute(query).all()
        newest = _metric_values(conn, [row[-1] for row in found])
        for phase, agent, worker, name, count, low, high, last_id in found:
            value, step, at = newest[last_id]
            summary = page.metrics.setdefault((phase, agent, worker, name), {"count": 0, "min": None, "max": None})
            summary.update(
                count=summary["count"] + count, min=_least(summary["min"], low), max=_most(summary["max"], high),
                last=value, last_step=step, last_at=at,
            )  # fmt: skip
            page.last_metric = max(page.last_metric, last_id)
        ordered = sorted(page.metrics.items(), key=lambda item: _metric_order(*item[0]))
        return [
            {"phase": p, "phase_name": names.get(p, str(p)), "agent": a, "worker": w, "name": n, **summary}
            for (p, a, w, n), summary in ordered
        ]


def _check_url(url: str) -> None:
    """Raise :class:`ArlError` for a URL that no later try could open: one that does not
    parse, or names a database SQLAlchemy has no dialect or driver for."""
    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ArlError(f"the store URL {describe_location(url)} cannot be used: {short_error(exc)}") from exc


def _with_timeout(url: str, seconds: int) -> str:
    """``url`` with ``connect_timeout`` ``seconds`` for a PostgreSQL server reached through
    libpq (psycopg, psycopg2), unless it gives one: theirs is 130 s, or for ever, which a
    server not up yet, or a host that drops packets, would take."""
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "postgresql"
        or parsed.get_driver_name() not in ("psycopg", "psycopg2")
        or "connect_timeout" in parsed.query
    ):
        return url
    timed: URL = parsed.update_query_dict({"connect_timeout": str(seconds)})
    return timed.render_as_string(hide_password=False)


# -- queries ------------------------------------------------------------------------------


def _metric_values(conn: Connection, ids: list[int]) -> dict[int, tuple[float, int, datetime]]:
    """Value, step and time of the metric rows ``ids``."""
    m = MetricRow
    found = {}
    for chunk in chunks(ids, IN_CHUNK):
        for metric_id, value, step, at in conn.execute(select(m.id, m.value, m.step, m.time).where(m.id.in_(chunk))):
            found[metric_id] = (value, step, at)
    return found


def _events(conn: Connection, run_id: int) -> tuple[list[Record], int]:
    """The run's newest :data:`EVENTS_SHOWN` events, newest first, and how many it has."""
    e = EventRow
    total = conn.execute(select(func.count()).select_from(e).where(e.run_id == run_id)).scalar_one()
    query = select(e.at, e.kind, e.detail).where(e.run_id == run_id).order_by(e.id.desc()).limit(EVENTS_SHOWN)
    return [{"at": at, "kind": kind, "detail": detail} for at, kind, detail in conn.execute(query)], total


def _errors(run: Record, events: list[Record]) -> list[Record]:
    """What went wrong: the run's error, then each event (newest first) that carries an
    error of its own (a worker that died and was restarted, ...)."""
    errors = []
    if run["error"]:
        errors.append({"source": "run", "at": run["ended_at"], "text": run["error"]})
    for event in events:
        detail = event["detail"]
        text = detail.get("error") if isinstance(detail, dict) else None
        if text and text != run["error"]:
            errors.append({"source": event["kind"], "at": event["at"], "text": str(text)})
    return errors


# -- small helpers ------------------------------------------------------------------------


def _kept(pages: OrderedDict[int, _Page], run_id: int, key: RunKey) -> _Page:
    """The run's page kept (anew when its key changed), kept as the most recent of at
    most :data:`RUNS_KEPT`."""
    page = pages.get(run_id)
    if page is None or page.key != key:
        page = pages[run_id] = _Page(key)
    pages.move_to_end(run_id)
    while len(pages) > RUNS_KEPT:
        pages.popitem(last=False)
    return page


def _duration(started: datetime | None, ended: datetime | None) -> float | None:
    """Seconds from start to end; for what has not ended, to now."""
    return None if started is None else ((ended or datetime.now(UTC)) - started).total_seconds()


def _first_line(text: str | None) -> str | None:
    if not text:
        return text
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 1] + "…"


def _least(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _most(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _metric_order(phase: int, agent: str, worker: int | None, name: str) -> tuple[int, str, int, str]:
    return phase, agent, -1 if worker is None else worker, name  # the brain's values (no worker) first
