"""The Executor: runs experiment runs, each in its own RunGovernor process.

It is the edge: it owns the LogServer, the console, the control socket the governors
report to, and the signals. The first SIGINT/SIGTERM asks every governor to stop at a
step boundary; a second one stops them at once.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio

from arl import codec
from arl.config.spec import RunSpec
from arl.errors import ProtocolError
from arl.governor.options import RunOptions, describe_exit
from arl.messages import executor as emsg
from arl.proc.child import ChildSpec, SupervisedChild
from arl.proc.logs import LogConfig, LogServer

log = logging.getLogger("arl.executor")
OUTCOME_GRACE = 2.0  # seconds to wait for a governor's outcome message after it exited


@dataclass(frozen=True)
class ExecutorOptions:
    store_url: str
    checkpoint_dir: str
    parallel: int = 1
    level: int = logging.WARNING
    store_steps: bool = True  # False: no environment_steps or agent_actions rows


@dataclass
class _Governor:
    index: int
    spec: RunSpec
    child: SupervisedChild | None = None
    run_id: int | None = None  # its row in the store, once the governor has reported it
    outcome: asyncio.Future[emsg.RunOutcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def identity(self) -> bytes:
        return f"g{self.index}".encode()


class Executor:
    """Runs runs; :meth:`execute` returns one outcome per run, in the order given."""

    def __init__(self, options: ExecutorOptions, *, on_status: Callable[[str, str], None] | None = None) -> None:
        self.options = options
        self._on_status = on_status or (lambda uid, state: None)
        self._workdir = ""
        self._router: zmq.asyncio.Socket | None = None
        self._governors: list[_Governor] = []
        self._interrupts = 0
        self._kills: set[asyncio.Task[int]] = set()  # forced stops after a second signal

    async def execute(self, specs: list[RunSpec]) -> list[emsg.RunOutcome]:
        self._workdir = tempfile.mkdtemp(prefix="arl-exec-")
        logs = LogServer(f"ipc://{self._workdir}/log")
        logs.start()
        zctx = zmq.asyncio.Context()
        self._router = zctx.socket(zmq.ROUTER)
        self._router.bind(f"ipc://{self._workdir}/control")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            self._governors = [_Governor(i, spec) for i, spec in enumerate(specs)]
            slots = asyncio.Semaphore(max(1, self.options.parallel))
            listener = asyncio.create_task(self._listen())
            try:
                return list(await asyncio.gather(*(self._run(g, slots) for g in self._governors)))
            finally:
                listener.cancel()
                await asyncio.gather(*self._kills, return_exceptions=True)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self._router.close(linger=0)
            zctx.term()
            logs.close()
            shutil.rmtree(self._workdir, ignore_errors=True)

    async def _run(self, governor: _Governor, slots: asyncio.Semaphore) -> emsg.RunOutcome:
        async with slots:
            if self._interrupts:
                return self._synthetic(governor, "INTERRUPTED", "not started: interrupted before its turn")
            options = RunOptions(
                store_url=self.options.store_url,
                checkpoint_dir=self.options.checkpoint_dir,
                logs=LogConfig(f"ipc://{self._workdir}/log", self.options.level),
                control=f"ipc://{self._workdir}/control",
                control_id=governor.identity.decode(),
                # Inside the executor's directory, so even a killed governor leaves nothing.
                rundir=f"{self._workdir}/{governor.identity.decode()}",
                store_steps=self.options.store_steps,
            )
            spec = ChildSpec(
                "governor", governor.spec.uid, "arl.governor.shell:main", {"spec": governor.spec, "options": options}
            )
            governor.child = SupervisedChild(spec, options.logs, asynchronous=True)
            try:
                await governor.child.start(timeout=60.0)
            except Exception as exc:
                await governor.child.stop(grace=0)
                return self._died(governor, "FAILED", f"the run's governor did not start: {exc}")
            code = await governor.child.exited
            await governor.child.stop(grace=0)  # reaps and closes the pipe; it has exited already
            # A governor that ended normally sent its outcome just before; one that was
            # killed sent none, so there is nothing to wait for.
            grace = OUTCOME_GRACE if code == 0 else 0.1
            try:
                return await asyncio.wait_for(asyncio.shield(governor.outcome), grace)
            except TimeoutError:
                if self._interrupts > 1:
                    return self._died(governor, "INTERRUPTED", "stopped at once by a second interrupt")
                return self._died(
                    governor, "FAILED", f"the run's governor process {describe_exit(code)} without reporting"
                )

    def _synthetic(self, governor: _Governor, status: str, error: str) -> emsg.RunOutcome:
        return emsg.RunOutcome(governor.spec.uid, governor.run_id, status, 0, 0, 0, 0, error, self.options.store_url)

    def _died(self, governor: _Governor, status: str, error: str) -> emsg.RunOutcome:
        """The governor is gone without an outcome: record how its run ended ourselves."""
        log.error("run %s: %s", governor.spec.uid, error)
        if governor.run_id is not None:  # no row yet: nothing was stored, nothing to end
            from arl.store.query import end_run_at

            end_run_at(self.options.store_url, governor.run_id, status, error)
        return self._synthetic(governor, status, error)

    async def _listen(self) -> None:
        assert self._router is not None
        by_identity = {g.identity: g for g in self._governors}
        while True:
            identity, *frames = await self._router.recv_multipart()
            governor = by_identity.get(identity)
            try:
                message: Any = codec.decode(frames[0]) if len(frames) == 1 else None
            except ProtocolError as exc:
                message = None
                log.warning("a malformed message from governor %r: %s", identity, exc)
            if governor is None or message is None:
                log.warning("dropped a message from %r", identity)
            elif isinstance(message, emsg.GovernorStatus):
                governor.run_id = message.run_id if message.run_id is not None else governor.run_id
                self._on_status(message.run_uid, message.state)
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
