"""What a live run is asked from outside: the executor's control requests (status,
pause, resume, save, stop, the uptime's end, a save signal) and the file's save
conditions, asked every :data:`TICK` seconds while the run steps.

Requests come on the governor's socket to the executor (the DEALER it reports through),
one :class:`~arl.messages.executor.ControlRequest` at a time in order, and each gets a
:class:`~arl.messages.executor.ControlReply`. The pause and the snapshots themselves
are :mod:`arl.governor.snapshots`'.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from arl import codec
from arl.errors import ArlError
from arl.messages import executor as emsg
from arl.state.conditions import SaveCondition, SaveView
from arl.status import Ending

from . import machine as m

if TYPE_CHECKING:
    from .shell import GovernorShell

log = logging.getLogger("arl.governor")

TICK = 0.1  # seconds between looks at the save conditions
WORDS = ("status", "pause", "resume", "save", "stop", "uptime", "signal")


class ControlDesk:
    """Answers the executor's control requests and asks the save conditions."""

    def __init__(self, shell: GovernorShell, condition: SaveCondition | None) -> None:
        self.shell = shell
        self.condition = condition
        self.ended = False  # a stop was asked (a final snapshot taken): no more saves
        self._base = (0, 0, 0)  # (steps, environment_steps rows, phase) at the current phase's start
        self._steps_before = 0
        self._rate: tuple[float, int] = (time.monotonic(), 0)
        self._replying: set[asyncio.Task[None]] = set()

    # -- requests ------------------------------------------------------------------

    async def listen(self) -> None:
        sock = self.shell._control
        assert sock is not None
        while True:
            frames = await sock.recv_multipart()
            try:
                request = codec.decode(frames[-1])
                if not isinstance(request, emsg.ControlRequest):
                    raise TypeError(f"{type(request).__name__} is not a control request")
            except Exception as exc:  # nothing the executor sends can end the run
                log.warning("the governor dropped a malformed control request: %s", exc)
                continue
            # Each in a task of its own: a status never waits behind a long save (the
            # commands themselves are taken one at a time by the snapshots' lock).
            task = asyncio.get_running_loop().create_task(self._reply(sock, request))
            self._replying.add(task)
            task.add_done_callback(self._replying.discard)

    async def _reply(self, sock: Any, request: emsg.ControlRequest) -> None:
        reply = await self.answer(request)
        await sock.send(codec.encode(reply))
        log.debug("control request %s answered: %s", request.word, reply)

    async def answer(self, request: emsg.ControlRequest) -> emsg.ControlReply:
        try:
            if request.word == "announce":  # where the run's control API is, for `arl-run ctl`
                await self.shell.live.record_event("control", dict(request.detail))
                return emsg.ControlReply(request.id, True, {}, None)
            result = await self.carry_out(request.word)
        except ArlError as exc:
            return emsg.ControlReply(request.id, False, {}, str(exc))
        except Exception as exc:  # the request fails, not the run
            log.error("control request %s failed: %s", request.word, exc, exc_info=True)
            return emsg.ControlReply(request.id, False, {}, f"{type(exc).__name__}: {exc}")
        return emsg.ControlReply(request.id, True, result, None)

    async def carry_out(self, word: str) -> dict[str, Any]:
        shell, live, snaps = self.shell, self.shell.live, self.shell.live.snapshots
        match word:
            case "status":
                return await self.status()
            case "pause":
                self._check_stepping(word)
                async with snaps.lock:
                    held = await snaps.pause()
                return {"paused": True, "seconds": held.took}
            case "resume":
                async with snaps.lock:
                    await snaps.resume()
                return {"paused": False}
            case "save" | "signal":
                self._check_stepping(word)
                path = await self.save(word if word == "signal" else "request")
                return {"snapshot": str(path)}
            case "stop" | "uptime":
                reason = "max-uptime" if word == "uptime" else Ending.INTERRUPTED
                path, why = None, None
                if live.stepping() and not self.ended:
                    try:  # a last snapshot, to go on from; the stop comes whatever happens to it
                        path = await self.save(reason)
                    except Exception as exc:
                        log.error("the last snapshot before the stop failed: %s", exc)
                        why = str(exc)
                self.ended = True
                shell._post(m.StopRequested(reason))
                return {"stopping": True, "snapshot": str(path) if path else None, "snapshot_failed": why}
        raise ArlError(f"unknown control request {word!r}: use one of {', '.join(WORDS)}")

    def _check_stepping(self, word: str) -> None:
        machine = self.shell.machine
        if not self.shell.live.stepping():
            raise ArlError(
                f"the run cannot {word} now: it is {machine.state.name}"
                f"{' / ' + machine.phase_step.name if machine.phase_step is not None else ''}"
                " (a run pauses and saves only while its workers step); try again in a moment"
            )

    async def save(self, reason: str) -> Any:
        snaps = self.shell.live.snapshots
        async with snaps.lock:
            path = await snaps.save(reason, self.shell.live.manifest_fields)
        if self.condition is not None:
            self.condition.saved(self.view())
        return path

    async def status(self) -> dict[str, Any]:
        shell, machine, snaps = self.shell, self.shell.machine, self.shell.live.snapshots
        now, steps = time.monotonic(), self.steps()
        then, before = self._rate
        self._rate = (now, steps)
        phase = shell.spec.phases[machine.phase] if machine.phase >= 0 else None
        return {
            "run": shell.spec.uid,
            "run_id": shell.run_id,
            "state": machine.state.name,
            "phase": phase.name if phase else None,
            "phase_step": machine.phase_step.name if machine.phase_step is not None else None,
            "paused": snaps.held is not None,
            "steps": steps,
            "steps_per_s": round((steps - before) / (now - then), 1) if now > then and before else None,
            "workers": await shell.live.worker_progress(),
            "last_snapshot": snaps.progress.last_snapshot,
            "snapshots": snaps.progress.snapshots,
            "uptime": round(time.time() - shell.started, 3),
        }

    # -- the file's save conditions -------------------------------------------------

    def steps(self) -> int:
        """Steps of the whole run as the store has them (each environment stores a row a
        step: the rows of this phase divided by its environments, on top of earlier phases')."""
        shell = self.shell
        phase = shell.machine.phase
        rows = shell.writer.counts["environment_steps"]
        steps, base_rows, base_phase = self._base
        if phase != base_phase:
            envs = len(shell.spec.phases[base_phase].environments) if base_phase >= 0 else 1
            self._steps_before = steps + (rows - base_rows) // max(1, envs)
            self._base = (self._steps_before, rows, phase)
            steps, base_rows = self._base[:2]
        envs = len(shell.spec.phases[phase].environments) if phase >= 0 else 1
        return steps + (rows - base_rows) // max(1, envs)

    def view(self) -> SaveView:
        machine = self.shell.machine
        name = self.shell.spec.phases[machine.phase].name if machine.phase >= 0 else ""
        return SaveView(self.steps(), self.shell.writer.counts["episodes"], name)

    async def watch(self) -> None:
        """Ask the save conditions every TICK while the run steps; save when one is due."""
        if self.condition is None:
            return
        while not self.ended:
            await asyncio.sleep(TICK)
            live = self.shell.live
            try:  # (a user's condition that raises costs its snapshot, not the run)
                if live.stepping() and live.snapshots.held is None and self.condition.due(self.view()):
                    await self.save("condition")
            except Exception as exc:  # the run goes on; the next due condition tries again
                trace = not isinstance(exc, ArlError)  # (an ArlError says all there is to say)
                log.error("the snapshot a save condition asked for failed: %s", exc, exc_info=trace)
