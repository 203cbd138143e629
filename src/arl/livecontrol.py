"""The executor's side of controlling live runs: requests to a run's governor (over the
control socket the governors report through), the HTTP control API
(:mod:`arl.controlapi.server`, started beside the runs so that it never delays a first
step), each run's uptime limit and its save signal, and the statuses the progress
display (:mod:`arl.progress`) shows."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arl import codec
from arl.config.spec import DEFAULT_STATE_DIR
from arl.errors import ArlError
from arl.messages import executor as emsg
from arl.names import inside, path_part
from arl.progress import POLL_INTERVAL, STATUS_TIMEOUT

if TYPE_CHECKING:
    from arl.executor import Executor, _Governor
    from arl.progress import ProgressSink

log = logging.getLogger("arl.executor")

REQUEST_TIMEOUT = 120.0  # seconds a governor has to answer (a snapshot of a large buffer takes a while)
LIVE_STATES = frozenset({"RUNNING", "STARTING"})
POLLED_STATES = frozenset({"RUNNING", "STOPPING"})  # the progress display asks these for their status
SLOW_POLL = 10  # a run's statuses are asked at least this many times as long apart as one takes
# Seconds after the first run is up before the API starts: a run shorter than this (the
# dummy) never pays for starlette's and uvicorn's imports, nor waits for the API's end.
API_DELAY = 0.5


class LiveControl:
    """Implements :class:`arl.controlapi.server.Controls` for one executor."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[emsg.ControlReply]] = {}
        self._of: dict[int, str] = {}  # request id -> the run it went to
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: Any = None
        self._starting = False
        self.url: str | None = None
        self._polling: set[int] = set()  # runs (by index) whose status the progress display waits for
        self._shown: dict[int, int] = {}  # run -> the request id of the status last shown
        self._due: dict[int, float] = {}  # run -> when its next status may be asked (time.monotonic)
        self._sink_failed = False

    # -- the protocol the API serves ----------------------------------------------------

    def _live(self) -> dict[str, _Governor]:
        return {
            g.spec.uid: g
            for g in self.executor._governors
            if g.child is not None and g.child.exitcode is None and g.state in LIVE_STATES
        }

    def live(self) -> list[str]:
        return sorted(self._live())

    async def status(self, uid: str) -> dict[str, Any]:
        return await self.command(uid, "status")

    async def command(self, uid: str, word: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
        governor = self._live().get(uid)
        if governor is None:
            raise ArlError(f"run {uid} is not live here (live: {', '.join(self.live()) or 'none'})")
        return await self._ask(governor, word, detail, REQUEST_TIMEOUT)

    async def _ask(
        self, governor: _Governor, word: str, detail: dict[str, Any] | None, timeout: float
    ) -> dict[str, Any]:
        uid = governor.spec.uid
        request = emsg.ControlRequest(next(self._ids), word, detail or {})
        reply: asyncio.Future[emsg.ControlReply] = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = reply
        self._of[request.id] = uid
        try:
            await self.executor.send(governor, codec.encode(request))
            await asyncio.wait_for(asyncio.shield(reply), timeout)
        except TimeoutError:
            raise ArlError(f"run {uid}'s governor did not answer within {timeout:g} s") from None
        finally:
            self._waiting.pop(request.id, None)
            self._of.pop(request.id, None)
        answer = reply.result()
        if not answer.ok:
            raise ArlError(answer.error or f"run {uid} refused {word}")
        return answer.result

    def gone(self, uid: str) -> None:
        """Run ``uid``'s governor has exited: its requests still waiting get no answer."""
        for id_, of in list(self._of.items()):
            future = self._waiting.get(id_)
            if of == uid and future is not None and not future.done():
                future.set_result(emsg.ControlReply(id_, False, {}, f"run {uid} ended before it answered"))

    def replied(self, reply: emsg.ControlReply) -> None:
        future = self._waiting.get(reply.id)
        if future is not None and not future.done():
            future.set_result(reply)

    # -- the progress display ------------------------------------------------------------

    async def watch(self) -> None:
        """Every POLL_INTERVAL while the runs go: each governor that steps or stops is
        asked for its status (one request at a time each, STATUS_TIMEOUT at most; a
        status that fails is skipped), each answer goes to the executor's progress sink,
        and the sink redraws. Only with a sink: ``-q`` asks nothing."""
        while self._sink() is not None:
            now = time.monotonic()
            for governor in self.executor._governors:
                due = now >= self._due.get(governor.index, 0.0)
                if due and self._polled(governor) and governor.index not in self._polling:
                    self._poll(governor)
            self._tell("refresh")
            await asyncio.sleep(POLL_INTERVAL)

    def reported(self, governor: _Governor) -> None:
        """The governor reported a new state: the sink hears of it; a run that stops is
        asked once more at once (its last phase has ended: the status's history says so)."""
        self._tell("state", governor.index, governor.state)
        if governor.state == "STOPPING" and self._sink() is not None and self._polled(governor):
            self._poll(governor)

    def ended(self, governor: _Governor, outcome: emsg.RunOutcome) -> None:
        self._tell("ended", governor.index, outcome)

    def _sink(self) -> ProgressSink | None:
        return None if self._sink_failed else self.executor.progress

    @staticmethod
    def _polled(governor: _Governor) -> bool:
        return governor.child is not None and governor.child.exitcode is None and governor.state in POLLED_STATES

    def _poll(self, governor: _Governor) -> None:
        index, ticket = governor.index, next(self._ids)
        self._polling.add(index)

        async def poll() -> None:
            asked = time.monotonic()
            try:
                status = await self._ask(governor, "status", None, STATUS_TIMEOUT)
            except ArlError as exc:  # (the run goes on; the next poll asks again)
                log.debug("run %s: no status for the progress display: %s", governor.spec.uid, exc)
                self._tell("missed", index)  # (its row says so if none comes for a while)
                return
            finally:
                self._polling.discard(index)
                # A status that took long (a store far away, a busy one) is asked less
                # often: answering takes the governor a tenth of its time at most.
                took = time.monotonic() - asked
                self._due[index] = asked + max(POLL_INTERVAL, SLOW_POLL * took)
            if ticket > self._shown.get(index, 0):  # (an older answer that came late is stale)
                self._shown[index] = ticket
                self._tell("update", index, status)

        self._spawn(poll())

    def _tell(self, what: str, *args: Any) -> None:
        """Hand the sink news; a sink that raises is turned off, the runs go on."""
        sink = self._sink()
        if sink is None:
            return
        try:
            getattr(sink, what)(*args, time.monotonic())
        except Exception as exc:  # the display's own failure must never end a run
            self._sink_failed = True
            log.warning("the progress display failed and is off (the runs go on): %s", exc, exc_info=True)

    # -- the API, the uptime limits, the save signals -------------------------------------

    def start(self) -> None:
        """The runs' save signals now; the API once a run has been up for API_DELAY (in
        the background: its imports and its end must not hold a short run up)."""
        specs = [g.spec for g in self.executor._governors]
        wanted = {spec.state.save.on_signal for spec in specs if spec.state is not None and spec.state.save.on_signal}
        loop = asyncio.get_running_loop()
        for name in wanted:
            assert name is not None
            loop.add_signal_handler(signal.Signals[name], self._on_save_signal, name)
        self._signals = wanted

    def governor_up(self, governor: _Governor) -> None:
        """Called once a run's governor is up: its uptime limit starts, and it hears of the API."""
        limit = self.executor.options.max_uptime or governor.spec.max_uptime
        loop = asyncio.get_running_loop()
        if limit:
            loop.call_later(limit, lambda: self._spawn(self._uptime_over(governor.spec.uid, limit)))
        if self.url is not None:
            self._spawn(self._announce(governor))
        elif not self._starting:
            self._starting = True
            loop.call_later(API_DELAY, lambda: self._spawn(self._serve()))

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for name in getattr(self, "_signals", ()):
            loop.remove_signal_handler(signal.Signals[name])
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            await self._server.close()

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self) -> None:
        module = await asyncio.to_thread(importlib.import_module, "arl.controlapi.server")
        queue = min((g.spec.control.queue_size for g in self.executor._governors), default=16)
        self._server = module.ControlServer(self, queue_size=queue)
        token = module.new_token()
        self.url = await self._server.start(token)
        self._token = token
        log.info("control API at %s", self.url)
        for governor in self.executor._governors:
            live = governor.child is not None and governor.child.exitcode is None
            if live and governor.state == "RUNNING":
                await self._announce(governor)

    async def _announce(self, governor: _Governor) -> None:
        """Write the run's token file and have the run record where its API is."""
        module = importlib.import_module("arl.controlapi.server")
        state = governor.spec.state
        folder = inside(Path(state.dir if state is not None else DEFAULT_STATE_DIR), path_part(governor.spec.uid))
        try:
            token_file = await asyncio.to_thread(module.write_token, folder, self._token)
            where = {"url": self.url, "token_file": str(token_file.resolve())}
            await self.command(governor.spec.uid, "announce", where)
        except (ArlError, OSError) as exc:
            log.warning("run %s: its control API cannot be announced: %s", governor.spec.uid, exc)

    async def _uptime_over(self, uid: str, limit: float) -> None:
        log.warning("run %s reached its max uptime (%g s): it snapshots and stops", uid, limit)
        try:
            await self.command(uid, "uptime")
        except ArlError as exc:
            log.info("run %s: max uptime: %s", uid, exc)

    def _on_save_signal(self, name: str) -> None:
        for governor in self.executor._governors:
            spec = governor.spec
            if spec.state is not None and spec.state.save.on_signal == name and spec.uid in self._live():
                self._spawn(self._signal_save(spec.uid, name))

    async def _signal_save(self, uid: str, name: str) -> None:
        try:
            result = await self.command(uid, "signal")
            log.warning("run %s: %s: snapshot %s", uid, name, result.get("snapshot"))
        except ArlError as exc:
            log.error("run %s: %s: no snapshot: %s", uid, name, exc)
