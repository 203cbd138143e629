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
import collections
import dataclasses
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from arl import codec
from arl.errors import ArlError
from arl.messages import executor as emsg
from arl.progress import RETURN_WINDOW, PhasePlan
from arl.state.conditions import SaveCondition, SaveView
from arl.status import Ending

from . import machine as m

if TYPE_CHECKING:
    from arl.conditions import PhaseSummary

    from .shell import GovernorShell

log = logging.getLogger("arl.governor")

TICK = 0.1  # seconds between looks at the save conditions
PACE_WINDOW = 5.0  # a status's steps_per_s: over about this many seconds of earlier statuses
MIN_PACE = 0.2  # seconds: statuses closer together say no steps_per_s
SETTLE = 1.0  # seconds the run's end waits for answers being made
WORDS = ("status", "pause", "resume", "save", "stop", "uptime", "signal")


@dataclasses.dataclass(frozen=True)
class PhaseTally:
    """A phase's ended episodes as the store has them, read on from where the reading
    before stopped (:meth:`arl.governor.livestate.LiveState.read_tally`): how many and
    their steps, and the return per agent of the newest of them."""

    phase: int
    phase_id: int | None = None  # its row, once it has one
    seen: int = 0  # the newest episode read: every one up to it is counted, or in ``still_open``
    still_open: tuple[int, ...] = ()  # those up to ``seen`` that had not ended: read again each time
    episodes: int = 0  # every ended episode
    steps: int = 0
    returns: Mapping[int, Mapping[str, float]] = dataclasses.field(default_factory=dict)  # the newest: id -> per agent


def count_on(
    rows: Iterable[Sequence[Any]], tally: PhaseTally
) -> tuple[int, tuple[int, ...], tuple[int, int], list[int]]:
    """``tally`` counted on with ``rows`` (id, steps, whether it ended) of the episodes
    after ``tally.seen`` and of those still open at ``tally.still_open``: the newest id
    seen, the ids still open, the counts of every ended episode, and the ids of those that
    ended since. (An episode read once as ended is never read again: one episode open for
    long costs each status only itself, not every episode after it.)"""
    seen, episodes, steps = tally.seen, tally.episodes, tally.steps
    still_open, ended = [], []
    for episode, length, over in rows:
        seen = max(seen, int(episode))
        if over:
            episodes, steps = episodes + 1, steps + int(length or 0)
            ended.append(int(episode))
        else:
            still_open.append(int(episode))
    return seen, tuple(sorted(still_open)), (episodes, steps), ended


class Pace:
    """Steps a second over the last :data:`PACE_WINDOW` seconds of statuses, whoever asked
    them (a display polling and a user's ``ctl status`` do not shorten each other's
    window, and the store's commits, a quarter of a second apart, do not make it jump)."""

    def __init__(self) -> None:
        self._seen: collections.deque[tuple[float, int]] = collections.deque()  # (when, steps)

    def rate(self, now: float, steps: int) -> float | None:
        """With ``steps`` done at ``now``; None until a status with steps is MIN_PACE old."""
        seen = self._seen
        if not steps or (seen and steps < seen[-1][1]):  # (start-up is no pace; nor a count that fell back)
            seen.clear()
            return None
        seen.append((now, steps))
        while len(seen) > 2 and now - seen[1][0] >= PACE_WINDOW:
            seen.popleft()
        then, before = seen[0]
        return round((steps - before) / (now - then), 1) if now - then >= MIN_PACE else None


class ControlDesk:
    """Answers the executor's control requests and asks the save conditions."""

    def __init__(self, shell: GovernorShell, condition: SaveCondition | None) -> None:
        self.shell = shell
        self.condition = condition
        self.ended = False  # a stop was asked (a final snapshot taken): no more saves
        self._base = (0, 0, 0)  # (steps, environment_steps rows, phase) at the current phase's start
        self._steps_before = 0
        self._pace = Pace()
        self._read: PhaseTally | None = None  # the current phase's ended episodes, read on at each status
        self._tally_lock = asyncio.Lock()
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

    async def settle(self) -> None:
        """Until the answers being made have gone out (at most :data:`SETTLE` seconds):
        called before the run closes its socket, so that a status asked as the run
        stopped (the progress display's last) is answered."""
        if self._replying:
            await asyncio.wait(set(self._replying), timeout=SETTLE)

    async def _reply(self, sock: Any, request: emsg.ControlRequest) -> None:
        reply = await self.answer(request)
        data = codec.encode(reply)
        await sock.send(data)
        # (not a status's figures: the progress display asks one each half second, and
        # its history and workers run to kilobytes; ctl and the API show them in full)
        said = f"{len(data):,} bytes" if request.word == "status" else reply.result
        log.debug("control request %s answered: %s", request.word, said if reply.ok else reply.error)

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
        """The run now: its state and phase, how far the phase is and what it was to run,
        the mean return of its newest :data:`RETURN_WINDOW` ended episodes, its ended
        phases (``history``), its workers, snapshots and age. What ``arl-run``'s progress
        display polls (every half second), ``arl-run ctl status`` and the API show.

        All that is the machine's is taken at once, before the store is read (in a thread,
        while the run goes on): a phase that ends meanwhile leaves the status whole, of
        the phase it began in, never a name of one and the counts of another."""
        shell, machine, snaps = self.shell, self.shell.machine, self.shell.live.snapshots
        index, steps = machine.phase, self.steps()
        before = self._base[0]  # (the phase's start: another status may move it meanwhile)
        phase = shell.spec.phases[index] if index >= 0 else None
        history = self.history()
        now = {
            "run": shell.spec.uid,
            "run_id": shell.run_id,
            "state": machine.state.name,
            "phase": phase.name if phase is not None else None,
            "phase_index": index if phase is not None else None,
            "phase_count": len(shell.spec.phases),
            "phase_step": machine.phase_step.name if machine.phase_step is not None else None,
            "paused": snaps.held is not None,
            "steps": steps,
        }
        workers = await shell.live.worker_progress()  # (it reads the machine before its first await)
        tally = await self._tally(index) if phase is not None else {}
        # Steps the store has rows of (none with --no-store-steps) or those of the ended
        # episodes (a resumed phase's from before the resume too), whichever is more.
        done = max(steps - before, tally.get("phase_steps", 0)) if phase is not None else 0
        return {
            **now,
            "steps_per_s": self._pace.rate(time.monotonic(), sum(h["steps"] for h in history[:index]) + done),
            **({"planned": PhasePlan.of(phase).as_status(), **tally, "phase_steps": done} if phase is not None else {}),
            "history": history,
            "workers": workers,
            "last_snapshot": snaps.progress.last_snapshot,
            "snapshots": snaps.progress.snapshots,
            "uptime": round(time.time() - shell.started, 3),
        }

    def history(self) -> list[dict[str, Any]]:
        """The run's ended phases, as a status and the run's outcome say them."""
        return [_ended(summary) for summary in self.shell.machine.history]

    async def _tally(self, phase: int) -> dict[str, Any]:
        """``phase_episodes`` ended, their ``phase_steps``, and ``returns``: per agent, the
        mean return of the newest :data:`RETURN_WINDOW` of them (``returns_over`` many)."""
        async with self._tally_lock:  # (two statuses at once read on from the same tally once)
            tally = self._read if self._read is not None and self._read.phase == phase else PhaseTally(phase)
            self._read = tally = await self.shell.live.read_tally(tally, RETURN_WINDOW)
        if tally.phase_id is None:
            return {}
        by_agent: dict[str, list[float]] = {}
        for returns in tally.returns.values():
            for agent, value in returns.items():
                by_agent.setdefault(agent, []).append(value)
        return {
            "phase_episodes": tally.episodes,
            "phase_steps": tally.steps,
            "returns": {agent: _mean(values) for agent, values in sorted(by_agent.items())},
            "returns_over": len(tally.returns),
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


def _ended(summary: PhaseSummary) -> dict[str, Any]:
    """An ended phase as a status says it: its counts and each agent's mean return."""
    return {
        "name": summary.name,
        "mode": summary.mode,
        "reason": summary.reason,
        "episodes": summary.episodes,
        "steps": summary.steps,
        "returns": {agent: _mean(values) for agent, values in sorted(summary.returns.items()) if values},
    }


def _mean(values: Sequence[float]) -> float | None:
    """The mean, rounded for showing; None for none or a non-finite one (JSON has no NaN)."""
    if not values:
        return None
    mean = math.fsum(values) / len(values)
    return round(mean, 6) if math.isfinite(mean) else None
