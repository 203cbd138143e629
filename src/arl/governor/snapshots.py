"""The governor's side of pausing a live run and taking its snapshots.

**Pause** (:meth:`Snapshots.pause`): each controller still stepping the phase gets
``pause <token>`` down its control pipe (its side: :mod:`arl.conductors.hold`) and
acknowledges through the store: it sends the records it holds, then ``Flush(token)``,
which the writer reports once everything before it is committed. The run is paused when
every worker has acknowledged or ended its phase. An attempt that does not complete in
``pause_timeout`` seconds is called off (``resume <token>`` to every controller, so those
already held go on) and tried again, ``pause_attempts`` times in all, as pamiq-core does
for its threads. While paused the run's scaled clock (:mod:`arl.time`) stands still.

**Snapshot** (:meth:`Snapshots.save`): paused (it pauses if the run was not, and resumes
after), the governor makes a staging folder (:func:`arl.state.snapshot.begin`); every
controller writes its workers' loops and the environments it hosts
(``save <token> <folder>``, answered ``saved <token>`` up the pipe), every agent process
and environment process its components (:class:`~arl.messages.control.SaveState` through
the broker); then the store's last rows (:func:`arl.store.marks.marks`) and the run's own
progress go into the manifest, and the folder is renamed into place. The keeper decides
which older snapshots go, and the store gets a ``snapshot`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arl.errors import ArlError
from arl.proc.child import SupervisedChild
from arl.state import snapshot

if TYPE_CHECKING:
    from arl.state.keepers import StatesKeeper

log = logging.getLogger("arl.governor")

POLL = 0.01  # seconds between looks at the workers while a pause waits for them


@dataclass
class PauseSettings:
    timeout: float = 5.0
    attempts: int = 3


@dataclass
class Held:
    """A pause that completed."""

    sent: dict[int, int]  # worker -> the token it was sent (resumed with the same)
    tokens: dict[int, int]  # the workers held, with their tokens (the others ended their phase)
    took: float  # seconds from the request to the last acknowledgement


@dataclass
class Progress:
    """The run's counts for status and save conditions."""

    last_snapshot: str | None = None
    snapshots: int = 0


class Snapshots:
    """Pauses and snapshots of one run; the shell owns one. ``stepping()`` says which
    workers of the current phase are still stepping (their phase not ended)."""

    def __init__(
        self,
        shell: Any,
        settings: PauseSettings,
        state_dir: str | Path,
        name_format: str | None,
        keeper: StatesKeeper | None,
        stepping: Callable[[], list[int]],
    ) -> None:
        self.shell = shell
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.name_format = name_format or snapshot.NAME_FORMAT
        self.keeper = keeper
        self.stepping = stepping
        self.held: Held | None = None
        self.progress = Progress()
        self.lock = asyncio.Lock()  # one pause, save or resume at a time
        self._answers: dict[int, dict[int, asyncio.Future[str]]] = {}  # token -> worker -> "saved"/why
        self._removals: set[asyncio.Task[None]] = set()

    # -- the controllers' words ---------------------------------------------------

    def controller(self, worker: int) -> SupervisedChild:
        child: SupervisedChild = self.shell.children[f"controller:{worker}"]
        return child

    def on_word(self, worker: int, word: bytes) -> None:
        """A word a controller sent up its pipe: the answer to a ``save``."""
        kind, _, rest = word.decode(errors="replace").partition(" ")
        token_text, _, why = rest.partition(" ")
        if kind not in ("saved", "save-failed") or not token_text.isdigit():
            log.warning("controller %d said %r on its control pipe", worker, word[:80])
            return
        future = self._answers.get(int(token_text), {}).get(worker)
        if future is not None and not future.done():
            future.set_result("saved" if kind == "saved" else why or "it did not say why")

    # -- pause --------------------------------------------------------------------

    async def pause(self) -> Held:
        """Hold every stepping worker at its next step boundary (see the module's doc)."""
        if self.held is not None:
            return self.held
        writer = self.shell.writer
        for attempt in range(1, self.settings.attempts + 1):
            asked = time.monotonic()
            tokens = {worker: writer.new_token() for worker in self.stepping()}
            writer.expect(list(tokens.values()))
            for worker, token in tokens.items():
                self.controller(worker).send(f"pause {token}".encode())
            waiting, acked = dict(tokens), {}
            deadline = asked + self.settings.timeout
            while waiting and time.monotonic() < deadline:
                got = await asyncio.to_thread(writer.met, list(waiting.values()), POLL)
                acked.update({w: t for w, t in waiting.items() if t in got})
                running = set(self.stepping())  # a worker that ended its phase is not waited for
                waiting = {w: t for w, t in waiting.items() if t not in got and w in running}
            if not waiting and not acked:  # every worker ended its phase meanwhile: nothing is held
                self._call_off(tokens)
                raise ArlError("the phase ended while the run was to pause: nothing steps now; try again")
            if not waiting:
                writer.forget([t for w, t in tokens.items() if w not in acked])  # (ended: never sent)
                took = time.monotonic() - asked
                self.held = Held(tokens, acked, took)
                self.shell.live.clock_paused(True)
                log.info("run paused in %.1f ms (attempt %d)", took * 1000, attempt)
                return self.held
            writer.forget(list(waiting.values()))
            self._call_off(tokens)
            log.warning(
                "pause attempt %d of %d: workers %s did not reach a step boundary within %g s",
                attempt, self.settings.attempts, sorted(waiting), self.settings.timeout,
            )  # fmt: skip
        raise ArlError(
            f"the run could not be paused: some workers did not reach a step boundary within "
            f"{self.settings.timeout:g} s, {self.settings.attempts} times (control.pause_timeout, pause_attempts)"
        )

    def _call_off(self, tokens: dict[int, int]) -> None:
        for worker, token in tokens.items():
            self.controller(worker).send(f"resume {token}".encode())

    async def resume(self) -> None:
        if self.held is None:
            return
        self._call_off(self.held.sent)
        self.held = None
        self.shell.live.clock_paused(False)
        log.info("run resumed")

    # -- snapshots ----------------------------------------------------------------

    async def save(self, reason: str, fields: Callable[[Held], dict[str, Any]]) -> Path:
        """Take a snapshot now (pausing the run for it if it was not); its path.
        ``fields``: the run's own progress for the manifest (the shell's), once paused."""
        was_held = self.held is not None
        held = await self.pause()
        try:
            if not held.tokens:
                raise ArlError("every worker ended its phase while the run paused: no snapshot of it was taken")
            await self._settled(held)
            return await self._save(held, reason, fields(held))
        finally:
            if not was_held:
                await self.resume()

    async def _settled(self, held: Held) -> None:
        """Until the run machine has every worker not held as done: a worker that ended
        its phase while the run paused has its report on the way (an event queued)."""
        workers = self.shell.spec.phases[self.shell.machine.phase].workers
        deadline = time.monotonic() + self.settings.timeout
        while len(held.tokens) + len(self.shell.machine.done_workers()) < workers:
            if time.monotonic() > deadline:
                raise ArlError("a worker that ended its phase while the run paused did not report it")
            await asyncio.sleep(POLL)

    async def save_between_phases(self, fields: dict[str, Any]) -> Path:
        """A snapshot before a phase is set up (``at_phase_end``): nothing steps and no
        component of the new phase exists yet, so it holds only the run's progress and
        the store's marks; a resume starts that phase afresh."""
        return await self._save(None, "phase-end", fields)

    async def _save(self, held: Held | None, reason: str, fields: dict[str, Any]) -> Path:
        started = time.monotonic()
        staging = snapshot.begin(self.state_dir, self.shell.spec.uid, None, self.name_format)
        try:
            if held is not None:
                await self._save_workers(staging.path, held)
                fields = {**fields, "progress": _progress(staging.path)}
                await self._save_services(staging.path)
            await asyncio.to_thread(self.shell.writer.flush)
            fields = {**fields, "store": await asyncio.to_thread(self.shell.live.store_marks), "reason": reason}
            path = await asyncio.to_thread(staging.commit, fields)
        except BaseException:
            with contextlib.suppress(OSError):
                staging.abort()
            raise
        took = time.monotonic() - started
        self.progress.last_snapshot, self.progress.snapshots = str(path), self.progress.snapshots + 1
        log.info("snapshot %s taken in %.0f ms (%s)", path, took * 1000, reason)
        await self.shell.live.record_event("snapshot", {"path": str(path), "reason": reason, "seconds": round(took, 4)})
        self._prune(path)
        return path

    async def _save_workers(self, folder: Path, held: Held) -> None:
        token = held.tokens
        loop = asyncio.get_running_loop()
        answers: dict[int, asyncio.Future[str]] = {worker: loop.create_future() for worker in token}
        self._answers.update({token[w]: {w: answers[w]} for w in token})
        try:
            for worker in token:
                self.controller(worker).send(f"save {token[worker]} {folder}".encode())
            timeout = self.shell.options.timeouts.request
            done, _ = await asyncio.wait(answers.values(), timeout=timeout)
            for worker, future in answers.items():
                if future not in done:
                    raise ArlError(f"controller {worker} did not save its state within {timeout:g} s")
                if future.result() != "saved":
                    raise ArlError(f"controller {worker} could not save its state: {future.result()}")
        finally:
            for worker in token:
                self._answers.pop(token[worker], None)

    async def _save_services(self, folder: Path) -> None:
        """Every agent process and environment process saves what it hosts."""
        timeout = self.shell.options.timeouts.request
        requests = self.shell.live.state_requests(folder, save=True)
        await asyncio.gather(*(self.shell.request(service, request, timeout) for service, request in requests))

    def _prune(self, newest: Path) -> None:
        if self.keeper is None:
            return
        for old in self.keeper.append(newest):
            if old == newest or old.parent != newest.parent:
                continue  # a keeper never removes the newest, nor anything outside the run's folder
            # In a thread: a large snapshot's removal must not hold the broker's heartbeats up.
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(shutil.rmtree, old, True))
            self._removals.add(task)
            task.add_done_callback(self._removals.discard)
            log.info("snapshot %s removed (keep)", old)


def _progress(folder: Path) -> dict[str, dict[str, int]]:
    """Each held (store) worker's episode and step at the snapshot, from its loop's state."""
    from arl.codec import unpack

    progress = {}
    for loop in sorted(folder.glob("workers/*/loop.msgpack")):
        state = unpack(loop.read_bytes())
        if "episode" in state:
            progress[loop.parent.name] = {"episode": state["episode"]["index"], "step": state["episode"]["step"]}
    return progress
