"""The Executor: runs experiment runs, each in its own RunGovernor process.

It is the edge: it owns the console and the signals, and hears every governor's reports
and logs through its backend (the LogServer and the control socket here, a Ray actor's
queue on a cluster). The first SIGINT/SIGTERM asks every governor to stop at a step
boundary; a second one stops them at once.

Where the governors run is its backend's business (:mod:`arl.backends`): forked by the
fork server on this machine (``local``), or one per Ray actor on a cluster's nodes
(``ray``). Starting a run is CPU-bound (the store, the components' own imports and
set-up), so however many runs go side by side here (``--parallel``), only as many start
at once as there are cores: a run takes its turn to start, and gives it up once its
children are up. Start timeouts count only the time a child was not kept waiting for a
CPU (:class:`arl.proc.child.StartClock`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arl import codec
from arl.backends import Backend, GovernorProcess, NotOpened, NotStarted, backend_for
from arl.config.spec import RunSpec
from arl.errors import ProtocolError
from arl.governor.options import RunOptions, Timeouts, timeouts_from
from arl.livecontrol import LiveControl
from arl.messages import executor as emsg
from arl.proc.logs import LogConfig
from arl.progress import ProgressSink
from arl.status import RunStatus
from arl.transport import DropLog

log = logging.getLogger("arl.executor")
OUTCOME_GRACE = 2.0  # seconds to wait for a governor's outcome message after it exited
_NOT_UP = (RunStatus.PRISTINE, RunStatus.STARTING)  # a governor in these states is still starting its run
TAIL = 10  # log lines kept per governor, to show when one dies
MAX_MOVES = 3  # times a run goes on from its snapshot elsewhere, its machine lost, before it fails


@dataclass(frozen=True)
class ExecutorOptions:
    store_url: str
    checkpoint_dir: str
    parallel: int = 1
    level: int = logging.WARNING
    store_steps: bool = True  # False: no environment_steps or agent_actions rows
    start_at_once: int = 0  # runs starting at the same time; 0: as many as the cores this process may use
    max_uptime: float | None = None  # seconds; each run then snapshots and ends INTERRUPTED (over the file's)
    resumes: dict[str, str] = field(default_factory=dict)  # run uid -> the snapshot it goes on from
    backend: str = "local"  # where the governors run (arl.backends): local, ray
    ray_address: str | None = None  # ray: the cluster's; None: $RAY_ADDRESS, else a Ray started for the runs
    module_paths: tuple[str, ...] = ()  # folders of the runs' own modules (arl.config.modulepaths)


@dataclass
class _Governor:
    index: int
    spec: RunSpec
    child: GovernorProcess | None = None
    run_id: int | None = None  # its row in the store, once the governor has reported it
    state: str = ""  # the last state it reported
    up: asyncio.Event = field(default_factory=asyncio.Event)  # set once its children are up (or it ended)
    outcome: asyncio.Future[emsg.RunOutcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    resume: str | None = None  # the snapshot it goes on from
    moves: int = 0  # times it went on elsewhere, its machine lost

    @property
    def identity(self) -> bytes:
        return f"g{self.index}".encode()

    def again(self, snapshot: str) -> None:
        """Start over from ``snapshot``: a new governor, which reports afresh."""
        self.child, self.state, self.resume = None, "", snapshot
        self.up = asyncio.Event()
        self.outcome = asyncio.get_running_loop().create_future()
        self.moves += 1


class Executor:
    """Runs runs; :meth:`execute` returns one outcome per run, in the order given."""

    def __init__(
        self,
        options: ExecutorOptions,
        *,
        on_status: Callable[[str, str], None] | None = None,
        progress: ProgressSink | None = None,
    ) -> None:
        self.options = options
        self._on_status = on_status or (lambda uid, state: None)
        self.progress = progress  # shown the runs' statuses, polled while they go (arl.progress)
        self._governors: list[_Governor] = []
        self._by_identity: dict[bytes, _Governor] = {}
        self._interrupts = 0
        self._kills: set[asyncio.Task[int]] = set()  # forced stops after a second signal
        self._timeouts = Timeouts()
        self.tails = _GovernorTails()
        self.backend: Backend | None = None
        self._drops = DropLog(log, "dropped a message on the control socket")

    async def execute(self, specs: list[RunSpec]) -> list[emsg.RunOutcome]:
        self._governors = [
            _Governor(i, spec, resume=self.options.resumes.get(spec.uid)) for i, spec in enumerate(specs)
        ]
        self._by_identity = {g.identity: g for g in self._governors}
        async with contextlib.AsyncExitStack() as opened:
            try:
                self._timeouts = timeouts_from(os.environ)
                self.backend = backend_for(self)
                await opened.enter_async_context(self.backend.opened())
            except (ValueError, NotOpened) as exc:
                log.error("%s; nothing was run", exc)
                return [self._synthetic(g, "FAILED", f"not started: {exc}") for g in self._governors]
            return await self._execute()

    async def _execute(self) -> list[emsg.RunOutcome]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        logging.getLogger().addHandler(self.tails)
        self.control = LiveControl(self)
        self.control.start()
        try:
            slots = asyncio.Semaphore(max(1, self.options.parallel))
            at_once = self.options.start_at_once or self._backend.start_at_once or len(os.sched_getaffinity(0))
            starts = asyncio.Semaphore(at_once)
            watcher = asyncio.create_task(self.control.watch())
            try:
                return list(await asyncio.gather(*(self._run_told(g, slots, starts) for g in self._governors)))
            finally:
                watcher.cancel()
                await asyncio.gather(*self._kills, return_exceptions=True)
        finally:
            await self.control.close()
            logging.getLogger().removeHandler(self.tails)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    @property
    def _backend(self) -> Backend:
        assert self.backend is not None
        return self.backend

    async def _run_told(
        self, governor: _Governor, slots: asyncio.Semaphore, starts: asyncio.Semaphore
    ) -> emsg.RunOutcome:
        try:
            outcome = await self._run(governor, slots, starts)
        finally:
            await self._backend.release(governor)
        self.control.ended(governor, outcome)  # (the progress display shows how it ended)
        return outcome

    async def _run(self, governor: _Governor, slots: asyncio.Semaphore, starts: asyncio.Semaphore) -> emsg.RunOutcome:
        async with slots:
            while True:
                ended = await self._attempt(governor, starts)
                if isinstance(ended, emsg.RunOutcome):
                    return ended
                await self._backend.release(governor)
                governor.again(ended)

    async def _attempt(self, governor: _Governor, starts: asyncio.Semaphore) -> emsg.RunOutcome | str:
        """The run's outcome, or the snapshot it goes on from, its governor lost with its
        machine (a Ray node)."""
        async with starts:  # this run's turn to start, until its children are up
            if self._interrupts:
                return await self._unstarted(governor, "not started: interrupted before its turn")
            governor.child = self._backend.process(governor)
            try:
                await governor.child.start(timeout=self._timeouts.governor_start)
            except NotStarted as exc:  # let go before it started: nothing ran
                return await self._unstarted(governor, f"not started: {exc}")
            except Exception as exc:
                await governor.child.stop(grace=0)  # (its machine may have been lost as it started again)
                return await self._failed_or_moved(governor, f"the run's governor did not start: {exc}")
            await self._until_up(governor)
        code = await governor.child.exited
        self.control.gone(governor.spec.uid)
        await governor.child.stop(grace=0)  # reaps and closes the pipe; it has exited already
        # A governor that ended normally sent its outcome just before; one that was
        # killed sent none, so there is nothing to wait for.
        grace = OUTCOME_GRACE if code == 0 else 0.1
        try:
            return await asyncio.wait_for(asyncio.shield(governor.outcome), grace)
        except TimeoutError:
            pass
        if self._interrupts > 1:
            return await self._died(governor, "INTERRUPTED", "stopped at once by a second interrupt")
        return await self._failed_or_moved(governor, self._backend.death(governor, code))

    async def _failed_or_moved(self, governor: _Governor, why: str) -> emsg.RunOutcome | str:
        """FAILED for ``why``; or, its machine lost, the snapshot it goes on from elsewhere."""
        snapshot = await self._goes_on_from(governor)
        if snapshot is None:
            return await self._died(governor, "FAILED", why)
        log.warning("run %s: %s; it goes on from its snapshot %s", governor.spec.uid, why, snapshot)
        return snapshot

    async def _unstarted(self, governor: _Governor, error: str) -> emsg.RunOutcome:
        """INTERRUPTED before its governor started: a run that was going on elsewhere (its
        machine lost) has its row ended so in the store, a new one has none."""
        if governor.run_id is None:
            return self._synthetic(governor, "INTERRUPTED", error)
        return await self._died(governor, "INTERRUPTED", error)

    async def _goes_on_from(self, governor: _Governor) -> str | None:
        """The snapshot a run goes on from elsewhere, when its machine was lost (and with
        it the run's processes, none at fault) and it saves snapshots (``state``): its
        newest, if it is of this run (this row in the store); at most :data:`MAX_MOVES`
        times a run."""
        spec = governor.spec
        if not self._backend.lost(governor) or spec.state is None or governor.moves >= MAX_MOVES or self._interrupts:
            return None
        from arl.resume import state_dir
        from arl.state import snapshot

        def newest_of_this_run() -> str | None:
            # (the folder may hold an earlier run's of the same uid: an arl-run before this one)
            newest = snapshot.latest(state_dir(spec), spec.uid)
            if newest is None or governor.run_id is None:
                return None
            return str(newest) if snapshot.load(newest).fields.get("run_id") == governor.run_id else None

        return await asyncio.to_thread(newest_of_this_run)

    def run_options(self, governor: _Governor, *, logs: LogConfig, control: str, rundir: str | None) -> RunOptions:
        """What ``governor`` is started with, its backend giving where it reports and logs."""
        return RunOptions(
            store_url=self.options.store_url,
            checkpoint_dir=self.options.checkpoint_dir,
            logs=logs,
            control=control,
            control_id=governor.identity.decode(),
            rundir=rundir,
            timeouts=self._timeouts,
            store_steps=self.options.store_steps,
            resume=governor.resume,
        )

    @staticmethod
    async def _until_up(governor: _Governor) -> None:
        """Until the governor's children are up (it reported RUNNING or later), or it exited."""
        assert governor.child is not None
        up: asyncio.Future[Any] = asyncio.ensure_future(governor.up.wait())
        exited: asyncio.Future[Any] = governor.child.exited
        try:
            await asyncio.wait({up, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()

    def _synthetic(
        self, governor: _Governor, status: str, error: str, stored: dict[str, int] | None = None
    ) -> emsg.RunOutcome:
        """An outcome the governor did not send; ``stored``: the rows the run has in the
        store (:func:`arl.store.query.run_counts`), none when it never started."""
        n = stored or {}
        return emsg.RunOutcome(
            governor.spec.uid, governor.run_id, status, n.get("phases", 0), n.get("episodes", 0),
            n.get("environment_steps", 0), n.get("agent_actions", 0), error,
        )  # fmt: skip

    async def _died(self, governor: _Governor, status: str, error: str) -> emsg.RunOutcome:
        """The governor is gone without an outcome: record how its run ended ourselves, and
        report what it had stored (read back from the store: its own counts died with it)."""
        log.error("run %s: %s", governor.spec.uid, error)
        stored = None
        if governor.run_id is not None:  # no row yet: nothing was stored, nothing to end
            from arl.store.query import end_run_at

            url = self.options.store_url
            # In a thread: a busy store may take its patience, and other runs go on meanwhile.
            stored = await asyncio.to_thread(
                end_run_at, url, governor.run_id, status, error, patience=self._timeouts.store
            )
        return self._synthetic(governor, status, error, stored)

    async def send(self, governor: _Governor, frame: bytes) -> None:
        """Send ``governor`` a control frame, wherever it runs."""
        await self._backend.send(governor, frame)

    def heard(self, identity: bytes, frames: list[bytes]) -> None:
        """A governor's report (status, outcome, a control reply), as its backend got it."""
        governor = self._by_identity.get(identity)
        try:
            if governor is None or len(frames) != 1:
                raise ProtocolError(f"{len(frames)} frame(s) from {identity!r}, not one from a governor")
            message: Any = codec.decode(frames[0])
        except ProtocolError as exc:
            self._drops.drop(exc)
            return
        if isinstance(message, emsg.GovernorStatus):
            governor.run_id = message.run_id if message.run_id is not None else governor.run_id
            if message.state != governor.state:  # a report may only bring the run's id
                governor.state = message.state
                self._on_status(message.run_uid, message.state)
                self.control.reported(governor)
            if message.state not in _NOT_UP and not governor.up.is_set():
                governor.up.set()
                if message.state == "RUNNING":
                    self.control.governor_up(governor)
        elif isinstance(message, emsg.ControlReply):
            self.control.replied(message)
        elif isinstance(message, emsg.RunOutcome) and not governor.outcome.done():
            governor.outcome.set_result(message)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._interrupts += 1
        running = [g for g in self._governors if g.child is not None and g.child.exitcode is None]
        if self._interrupts == 1:
            log.warning("%s: stopping the runs at the next step boundary (again to stop at once)", sig.name)
            for g in running:
                assert g.child is not None
                g.child.request_stop()  # the pipe keeps the word even if the governor is still starting
        else:
            log.warning("%s again: stopping the runs now", sig.name)
            for g in running:
                assert g.child is not None
                task = asyncio.get_running_loop().create_task(g.child.stop(grace=0))
                self._kills.add(task)
                task.add_done_callback(self._kills.discard)


class _GovernorTails(logging.Handler):
    """Keeps the last :data:`TAIL` lines each governor logged, to say what a governor that
    died was doing. (A governor keeps its own children's: ``governor/childlogs.py``.)"""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._lines: dict[str, collections.deque[str]] = {}
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        label = getattr(record, "arl_process", "")
        if isinstance(label, str) and label.startswith("governor:"):
            try:
                line = (self.format(record).splitlines() or [""])[0]
            except Exception:  # logging's own policy for a record that cannot be formatted
                self.handleError(record)
                return
            self._lines.setdefault(label, collections.deque(maxlen=TAIL)).append(line)

    def of(self, label: str) -> list[str]:
        return list(self._lines.get(label, ()))
