"""The governor shell's part in pausing, snapshots and control (a mixin of
:class:`~arl.governor.shell.GovernorShell`): what the run's snapshots hold of the run
itself, which processes save what, the store's marks, the scaled clock."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import arl
from arl import time as arl_time
from arl.classref import build
from arl.conductors.service import env_service
from arl.messages import store
from arl.state import conditions as save_conditions
from arl.state import keepers
from arl.state.conditions import SaveCondition
from arl.store import marks, migrate
from arl.store.engine import connect_engine

from .control import ControlDesk
from .snapshots import PauseSettings, Snapshots

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .shell import GovernorShell

log = logging.getLogger("arl.governor")


class LiveState:
    """The shell's ``live``: its pauses, snapshots and control requests."""

    def __init__(self, shell: GovernorShell) -> None:
        self.shell = shell
        spec = shell.spec
        state = spec.state
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
        self.state_configured = state is not None
        state_dir = state.dir if state is not None else "arl-states"
        name_format = state.name_format if state is not None else None
        self.snapshots = Snapshots(shell, settings, state_dir, name_format, keeper, self.stepping)
        self.desk = ControlDesk(shell, condition)
        self._engine: Engine | None = None

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

    def state_services(self, folder: Path) -> list[tuple[str, Path]]:
        """(service, folder) of each process that saves components through the broker:
        the agent processes (their agents under ``agents/<name>``) and, with
        ``environments: own``, each environment process of the phase."""
        phase = self.shell.spec.phases[self.shell.machine.phase]
        if self.shell.plan.central:
            names = ", ".join(sorted(self.shell.plan.central))
            raise arl.ArlError(
                f"snapshots of a run with central agents ({names}: a learner and inference servers) "
                "are not supported yet"
            )
        services = [(service, folder) for service in sorted(set(self.shell.plan.agent_hosts.values()))]
        for env in phase.environments if self.shell.plan.own_environments else ():
            for worker in range(phase.workers):
                if self.shell.plan.env_host(env.uid, worker):
                    services.append((env_service(env.uid, worker), folder / "workers" / str(worker) / f"env.{env.uid}"))
        return services

    def store_marks(self) -> dict[str, Any]:
        assert self.shell.run_id is not None
        if self._engine is None:
            options = self.shell.options
            self._engine = connect_engine(options.store_url, create=False, patience=options.timeouts.store)
        return dict(marks.marks(self._engine, self.shell.run_id))

    async def record_event(self, kind: str, detail: dict[str, Any]) -> None:
        await self.shell._record(store.Event(kind, detail, time.time()))

    def worker_progress(self) -> list[dict[str, Any]]:
        """Each worker of the current phase: stepping, or done with its counts."""
        machine = self.shell.machine
        if machine.phase < 0:
            return []
        done = machine.done_workers()
        stepping = set(self.stepping())
        rows = []
        for worker in range(self.shell.spec.phases[machine.phase].workers):
            row: dict[str, Any] = {"worker": worker, "stepping": worker in stepping}
            if worker in done:
                row.update(episodes=done[worker].episodes, steps=done[worker].steps, reason=done[worker].reason)
            rows.append(row)
        return rows

    def manifest_fields(self) -> dict[str, Any]:
        """The run's own progress, for a snapshot's manifest: enough for a resume to put
        the run machine back where it was."""
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
            "stepping": self.stepping(),
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
