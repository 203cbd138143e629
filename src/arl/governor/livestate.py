"""The governor shell's part in pausing, snapshots and control (a mixin of
:class:`~arl.governor.shell.GovernorShell`): what the run's snapshots hold of the run
itself, which processes save what, the store's marks, the scaled clock."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arl import time as arl_time
from arl.classref import build
from arl.codec import unpack
from arl.conditions import PhaseSummary
from arl.conductors.service import env_service
from arl.errors import ArlError
from arl.messages import control, store
from arl.state import conditions as save_conditions
from arl.state import keepers, snapshot
from arl.state.conditions import SaveCondition
from arl.store import marks, migrate
from arl.store.engine import connect_engine

from . import machine as m
from .control import ControlDesk, PhaseTally, count_on
from .snapshots import Held, PauseSettings, Snapshots

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .shell import GovernorShell

log = logging.getLogger("arl.governor")


_PHASE_ROW = 'select id from phases where run_id = :run and "index" = :phase'
_EPISODES_AFTER = "select id, steps, ended_at is not null from episodes where phase_id = :p and id > :after"
_EPISODES_OPEN = "select id, steps, ended_at is not null from episodes where id in :open"


class LiveState:
    """The shell's ``live``: its pauses, snapshots and control requests."""

    def __init__(self, shell: GovernorShell) -> None:
        self.shell = shell
        spec = shell.spec
        state = spec.state
        self.resumed: snapshot.Manifest | None = None  # the snapshot the run goes on from
        self._stepping_at_snapshot: set[int] = set()
        arl_time.set_clock(arl_time.ScaledClock(spec.time_scale))  # (before EverySeconds reads it)
        if shell.options.resume is not None:
            self._resume_from(Path(shell.options.resume))  # (its clock goes on from the snapshot's)
        settings = PauseSettings(spec.control.pause_timeout, spec.control.pause_attempts)
        keeper = None
        condition: SaveCondition | None = None
        if state is not None:
            if state.keep.keeper is not None:
                ref = state.keep.keeper
                keeper = build(ref.entry_point, dict(ref.params), keepers.StatesKeeper, "keeper")
            elif state.keep.table():
                keeper = keepers.from_keep(state.keep.table())
            table = state.save.table()
            user = [
                build(c.entry_point, dict(c.params), SaveCondition, "save condition") for c in state.save.conditions
            ]
            built = [save_conditions.from_save(table)] if table else []
            if built or user:
                condition = save_conditions.any_of(*built, *user)
        state_dir = state.dir if state is not None else "arl-states"
        name_format = state.name_format if state is not None else None
        self.snapshots = Snapshots(shell, settings, state_dir, name_format, keeper, self.stepping)
        self.desk = ControlDesk(shell, condition)
        self._engine: Engine | None = None
        for child in shell.plan.all:  # every process of the run reads the same scaled clock
            child.args["clock"] = arl_time.clock().state()

    # -- going on from a snapshot ------------------------------------------------------

    def _resume_from(self, path: Path) -> None:
        """Put the run machine where the snapshot left the run (its phase, the ended
        phases, the workers through the phase already); the rest happens as it starts."""
        manifest = snapshot.load(path)  # verified: every file's hash, the manifest's own
        fields = manifest.fields
        if fields.get("run_uid") != self.shell.spec.uid:
            raise ArlError(f"snapshot {path} is of run {fields.get('run_uid')!r}, not {self.shell.spec.uid!r}")
        phase, phases = int(fields["phase"]), self.shell.spec.phases
        if not 0 <= phase < len(phases) or fields.get("phase_name") != phases[phase].name:
            raise ArlError(
                f"snapshot {path} is of phase {fields.get('phase_name')!r}, which the file does not have there"
            )
        done = {int(w): m.WorkerDone(**d) for w, d in fields["done"].items()}
        history = tuple(PhaseSummary(**h) for h in fields["history"])
        # The phase's row is within the marks whenever the snapshot was taken (a phase-end
        # one comes after the phase was recorded, before it was set up).
        self.shell.machine.resume = m.ResumePoint(phase, history, done)
        self.shell.started = float(fields["started"])  # (run-level wall-clock conditions count on)
        self._stepping_at_snapshot = {int(w) for w in fields["stepping"]}
        self.resumed = manifest
        arl_time.clock().restore(fields["clock"])

    async def rewind_store(self) -> int:
        """The store as it was at the snapshot (``arl.store.marks.rewind``: what came after
        deleted, what was open opened again, the run RUNNING); the run's id."""
        assert self.resumed is not None
        fields = self.resumed.fields
        run_id = int(fields["run_id"])
        options = self.shell.options

        def rewind() -> dict[str, int]:
            if self._engine is None:
                self._engine = connect_engine(options.store_url, create=False, patience=options.timeouts.store)
            _check_run(self._engine, run_id, str(fields["run_uid"]))
            counts = marks.rewind(self._engine, run_id, fields["store"])
            self._restore_checkpoints(run_id)
            return counts

        counts = await asyncio.to_thread(rewind)
        log.info("run %s goes on from snapshot %s; the store dropped what came after it: %s",
                 self.shell.spec.uid, self.resumed.path, counts)  # fmt: skip
        self._prune_on_resume()
        return run_id

    def _restore_checkpoints(self, run_id: int) -> None:
        """The brains the run saved before the snapshot, for later phases' ``load``."""
        from sqlalchemy import select

        from arl.checkpoints import Saved
        from arl.store.schema import CheckpointRow, PhaseRow

        assert self._engine is not None
        query = (
            select(PhaseRow.name, CheckpointRow.agent, CheckpointRow.path, CheckpointRow.sha256)
            .join(PhaseRow, CheckpointRow.phase_id == PhaseRow.id)
            .where(CheckpointRow.run_id == run_id)
        )
        with self._engine.connect() as conn:
            for phase, agent, path, digest in conn.execute(query):
                self.shell.checkpoints.record(phase, agent, Saved(path, digest))

    def _prune_on_resume(self) -> None:
        """Staging folders a killed writer left go; snapshots newer than the one resumed
        from are set aside (they describe a history the rewind dropped: ``--resume`` must
        not pick one later); the keeper learns of the snapshots made before."""
        snaps = self.snapshots
        uid = self.shell.spec.uid
        removed = snapshot.sweep_staging(snaps.state_dir, uid)
        if removed:
            log.info("removed %d unfinished snapshot(s) a killed run left", len(removed))
        assert self.resumed is not None
        for newer in snapshot.snapshots(snaps.state_dir, uid):
            if newer.seq > self.resumed.seq:
                aside = newer.path.with_name(f".abandoned-{newer.path.name}")
                newer.path.rename(aside)
                log.warning("snapshot %s is newer than the one resumed from: set aside as %s", newer.path, aside)
        if snaps.keeper is not None:
            paths = [s.path for s in snapshot.snapshots(snaps.state_dir, self.shell.spec.uid)]
            newest = paths[-1] if paths else None
            for old in keepers.restore_keeper(snaps.keeper, paths):
                if old != newest and old != (self.resumed.path if self.resumed else None):
                    shutil.rmtree(old, ignore_errors=True)

    def resume_state(self, phase: int, worker: int) -> str | None:
        """The snapshot a worker's first ``RunPhase`` of ``phase`` goes on from, if any."""
        if self.resumed is None or int(self.resumed.fields["phase"]) != phase:
            return None
        if worker not in self._stepping_at_snapshot:
            return None
        self._stepping_at_snapshot.discard(worker)  # (a restart later goes on from its own progress)
        return str(self.resumed.path)

    async def load_services(self, phase: int) -> None:
        """After the resumed phase's setup: every agent process and environment process
        loads what it saved into the snapshot."""
        if self.resumed is None or int(self.resumed.fields["phase"]) != phase:
            return
        if not self.resumed.fields.get("phase_started", True):
            return  # (taken before the phase was set up: it starts afresh)
        folder = Path(self.resumed.path)
        timeout = self.shell.options.timeouts.request
        learners = {central.learner for central in self.shell.plan.central.values()}
        requests = self.state_requests(folder, save=False)
        for first in (True, False):  # the learners first: each broadcasts the policy it loaded
            await asyncio.gather(
                *(self.shell.request(service, request, timeout) for service, request in requests
                  if (service in learners) == first)
            )  # fmt: skip

    # -- what the snapshots ask of the shell ---------------------------------------------

    def stepping(self) -> list[int]:
        """The workers of the current phase whose phase has not ended."""
        machine = self.shell.machine
        if machine.state.name != "RUNNING" or machine.phase_step is None or machine.phase_step.name != "STEPPING":
            return []
        return sorted(w for w, task in self.shell._workers.items() if not task.done())

    def clock_paused(self, paused: bool) -> None:
        clock = arl_time.clock()
        if paused:
            clock.pause()
        else:
            clock.resume()

    def state_requests(self, folder: Path, *, save: bool) -> list[tuple[str, Any]]:
        """(service, request) of each process that saves (``save``) or loads components
        through the broker: the agent processes (their agents under ``agents/<name>``),
        each central agent's learner (first, when loading: it broadcasts what it loaded)
        and inference servers (each under ``servers/<service>/``: several serve one
        agent), and with ``environments: own`` each environment process of the phase."""
        shell = self.shell
        phase = shell.spec.phases[shell.machine.phase]
        make = control.SaveState if save else control.LoadState
        requests: list[tuple[str, Any]] = []
        sent = self._experiences_sent(folder) if save else {}
        for name, central in shell.plan.central.items():
            if any(agent.name == name for agent in phase.agents):
                learner = control.SaveState(str(folder), sent.get(name, 0)) if save else make(str(folder))
                requests.append((central.learner, learner))
                requests += [(server, make(str(folder / "servers" / server))) for server in central.servers]
        requests += [(service, make(str(folder))) for service in sorted(set(shell.plan.agent_hosts.values()))]
        for env in phase.environments if shell.plan.own_environments else ():
            for worker in range(phase.workers):
                directory = folder / "workers" / str(worker) / f"env.{env.uid}"
                requests.append((env_service(env.uid, worker), make(str(directory))))
        return requests

    def _experiences_sent(self, folder: Path) -> dict[str, int]:
        """The transitions the workers sent each central agent's learner in this phase:
        the held ones' (their loops' counts, saved just now) and those that had ended it."""
        sent: collections.Counter[str] = collections.Counter(self.shell._sent.get(self.shell.machine.phase, {}))
        for loop in folder.glob("workers/*/loop.msgpack"):
            sent.update(unpack(loop.read_bytes())["sent"])
        return dict(sent)

    async def run_counts(self) -> dict[str, int]:
        """The rows the run stored, for its outcome: the writer's counts, or for a resumed
        run the store's (rows from before the resume included)."""
        counts = dict(self.shell.writer.counts)
        if self.resumed is None or self._engine is None or self.shell.run_id is None or self.shell.writer.error:
            return counts
        from arl.store.query import run_counts

        try:
            stored = await asyncio.to_thread(run_counts, self._engine, self.shell.run_id)
        except Exception as exc:  # (the outcome then says what this writer stored)
            log.warning("the run's counts could not be read back: %s", exc)
            return counts
        return {**counts, **stored}

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def store_marks(self) -> dict[str, Any]:
        assert self.shell.run_id is not None
        if self._engine is None:
            options = self.shell.options
            self._engine = connect_engine(options.store_url, create=False, patience=options.timeouts.store)
        return dict(marks.marks(self._engine, self.shell.run_id))

    async def record_event(self, kind: str, detail: dict[str, Any]) -> None:
        await self.shell._record(store.Event(kind, detail, time.time()))

    async def worker_progress(self) -> list[dict[str, Any]]:
        """Each worker of the current phase: stepping (with the episode and step the store
        has of it last; with ``envs_per_worker``, of each copy) or done with its counts.
        What is the machine's is read before the store is: all of one phase."""
        machine = self.shell.machine
        if machine.phase < 0:
            return []
        index, done, stepping = machine.phase, machine.done_workers(), set(self.stepping())
        phase = self.shell.spec.phases[index]
        stored = await asyncio.to_thread(self._stored_progress, index)
        rows = []
        for worker in range(phase.workers):
            row: dict[str, Any] = {"worker": worker, "stepping": worker in stepping}
            if worker in done:
                row.update(episodes=done[worker].episodes, steps=done[worker].steps, reason=done[worker].reason)
            copies = range(worker * phase.envs_per_worker, (worker + 1) * phase.envs_per_worker)
            at = [stored[c] for c in copies if c in stored]
            if len(at) == 1:
                row.update(episode=at[0][0], step=at[0][1])
            elif at:
                row["copies"] = [{"episode": e, "step": st} for e, st in at]
            rows.append(row)
        return rows

    def _stored_progress(self, phase: int) -> dict[int, tuple[int, int]]:
        """Store worker -> (its newest episode's index, the last step stored of it)."""
        if self.shell.run_id is None:
            return {}
        return stored_progress(self._live_engine(), self.shell.run_id, phase)

    async def read_tally(self, tally: PhaseTally, last: int) -> PhaseTally:
        """``tally`` read on from the store (:func:`read_tally`); as it was before the
        run has its row."""
        run_id = self.shell.run_id
        if run_id is None:
            return tally
        return await asyncio.to_thread(lambda: read_tally(self._live_engine(), run_id, tally, last))

    def _live_engine(self) -> Engine:
        if self._engine is None:
            options = self.shell.options
            self._engine = connect_engine(options.store_url, create=False, patience=options.timeouts.store)
        return self._engine

    async def at_phase_start(self, index: int) -> None:
        """Before phase ``index`` is set up: the file's ``at_phase_end`` snapshot of the
        phase before it (not of a phase a resume goes on in)."""
        state = self.shell.spec.state
        if state is None or not state.save.at_phase_end or index == 0 or self.desk.ended:
            return
        if self.resumed is not None and int(self.resumed.fields["phase"]) == index:
            return
        fields = {**self.manifest_fields(), "phase_started": False, "stepping": [], "done": {}}
        try:
            await self.snapshots.save_between_phases(fields)
            if self.desk.condition is not None:
                self.desk.condition.saved(self.desk.view())  # (any save restarts every count)
        except Exception as exc:  # the run goes on without it (a name taken, a full disk, a slow store)
            log.error("the snapshot at the end of phase %d failed: %s", index - 1, exc)

    def manifest_fields(self, held: Held | None = None) -> dict[str, Any]:
        """The run's own progress, for a snapshot's manifest: enough for a resume to put
        the run machine back where it was (``held``: the pause the snapshot is taken in)."""
        machine = self.shell.machine
        phase = self.shell.spec.phases[machine.phase]
        return {
            "run_uid": self.shell.spec.uid,
            "run_id": self.shell.run_id,
            "seed": self.shell.spec.seed,
            "phase": machine.phase,
            "phase_name": phase.name,
            "workers": phase.workers,
            "envs_per_worker": phase.envs_per_worker,
            "phase_started": True,  # (False: taken before the phase was set up)
            "stepping": sorted(held.tokens) if held is not None else [],
            "done": {str(w): dataclasses.asdict(d) for w, d in machine.done_workers().items()},
            "history": [dataclasses.asdict(h) for h in machine.history],
            "started": self.shell.started,
            "clock": arl_time.clock().state(),
            "schema_version": migrate.HEAD,
        }

    # -- the controllers' pipes -------------------------------------------------------

    def listen_controller(self, label: str) -> None:
        child = self.shell.children[label]
        if child.spec.role == "controller":
            child.listen(functools.partial(self.snapshots.on_word, int(child.spec.name)))

    def control_tasks(self, group: asyncio.TaskGroup) -> None:
        if self.shell._control is not None:
            self.shell._background.append(group.create_task(self.desk.listen()))
        self.shell._background.append(group.create_task(self.desk.watch()))


def stored_progress(engine: Engine, run_id: int, phase: int) -> dict[int, tuple[int, int]]:
    """Store worker -> (its newest episode's index, the last step stored of it), of the
    run's phase ``phase``."""
    from sqlalchemy import text

    query = text(
        'select e.worker, e."index", (select max(s.step) from environment_steps s where s.episode_id = e.id) '
        "from episodes e "
        # Not correlated: the newest episode of each worker is found once (a subquery of
        # e's phase was run for every episode: a status took 7 s at 10,000 episodes).
        "where e.id in (select max(e2.id) from episodes e2 join phases p on e2.phase_id = p.id "
        '  where p.run_id = :run and p."index" = :phase group by e2.worker)'
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"run": run_id, "phase": phase}).all()
    return {int(w): (int(i), int(step or 0)) for w, i, step in rows}


def read_tally(engine: Engine, run_id: int, tally: PhaseTally, last: int) -> PhaseTally:
    """``tally`` (:class:`~arl.governor.control.PhaseTally`) read on from the store, with
    the returns of the newest ``last`` ended episodes. Reads only the phase's episodes
    after ``tally.seen`` and those that were open then (``tally.still_open``), by index,
    so that a status costs the same at the 10,000th episode as at the first, one episode
    open for long or not; sums the actions only of the newest ended episodes whose
    returns ``tally`` lacks (an ended episode's return never changes)."""
    from sqlalchemy import bindparam, text

    with engine.connect() as conn:
        phase_id = tally.phase_id
        if phase_id is None:
            phase_id = conn.execute(text(_PHASE_ROW), {"run": run_id, "phase": tally.phase}).scalar_one_or_none()
        if phase_id is None:
            return tally
        rows = list(conn.execute(text(_EPISODES_AFTER), {"p": phase_id, "after": tally.seen}))
        if tally.still_open:
            again = text(_EPISODES_OPEN).bindparams(bindparam("open", expanding=True))
            rows += conn.execute(again, {"open": list(tally.still_open)})
        seen, still_open, total, ended = count_on(rows, tally)
        newest = sorted({*tally.returns, *ended}, reverse=True)[:last]
        wanted = [i for i in newest if i not in tally.returns]
        found: dict[int, dict[str, float]] = {i: {} for i in wanted}  # (no actions stored: no return)
        if wanted:
            sums = text(
                "select episode_id, agent, sum(objective) from agent_actions "
                "where episode_id in :ids group by episode_id, agent"
            ).bindparams(bindparam("ids", expanding=True))
            for episode, agent, value in conn.execute(sums, {"ids": wanted}):
                found[int(episode)][str(agent)] = float(value)
    # (``{}`` is a return known to be none, with --no-store-steps: kept, not looked up again)
    returns = {i: tally.returns[i] if i in tally.returns else found[i] for i in newest}
    return PhaseTally(tally.phase, phase_id, seen, still_open, *total, returns)


def _check_run(engine: Engine, run_id: int, uid: str) -> None:
    """The store's run ``run_id`` must be the snapshot's (another store may have a run of
    that id: never rewind it)."""
    from sqlalchemy import select

    from arl.store.schema import RunRow

    with engine.connect() as conn:
        found = conn.execute(select(RunRow.uid).where(RunRow.id == run_id)).scalar_one_or_none()
    if found != uid:
        which = f"its run {run_id} is {found!r}" if found is not None else f"it has no run {run_id}"
        raise ArlError(
            f"this store is not the one the snapshot's run {uid!r} was stored in ({which}): give the run's --store"
        )
