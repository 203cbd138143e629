"""The governors on this machine (``--backend local``): each a child of the fork server
(:mod:`arl.proc.forkserver`), the one ``arl-run`` started while it checked the files,
else one started here for the runs. They report to a ROUTER and log to a LogServer, both
on ipc in a private folder that is removed when the runs end (a killed governor leaves
nothing either)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import zmq
import zmq.asyncio

from arl.backends import NotOpened, died_without_reporting
from arl.errors import ArlError
from arl.proc import forkserver
from arl.proc.child import ChildSpec, SupervisedChild
from arl.proc.forkclient import ForkServer
from arl.proc.ipc import private_dir
from arl.proc.logs import LogConfig, LogServer
from arl.transport import limit_input

if TYPE_CHECKING:
    from arl.executor import Executor, _Governor

log = logging.getLogger("arl.executor")


class LocalBackend:
    start_at_once = 0  # starting a run is CPU-bound: as many at once as there are cores

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._workdir = ""
        self._router: zmq.asyncio.Socket | None = None

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        try:
            # ipc paths are short (107 bytes): a deep $TMPDIR is left for a short folder.
            self._workdir = private_dir("arl-exec-")
        except ArlError as exc:
            forkserver.stop()  # the one started for these runs, while the files were checked
            raise NotOpened(str(exc)) from None
        log.debug("ipc endpoints in %s", self._workdir)
        try:
            with forkserver.serving() as server:
                self._relay_output(server)
                logs = LogServer(f"ipc://{self._workdir}/log")
                logs.start()
                zctx = zmq.asyncio.Context()
                self._router = zctx.socket(zmq.ROUTER)
                limit_input(self._router)
                self._router.bind(f"ipc://{self._workdir}/control")
                listener = asyncio.create_task(self._listen(self._router))
                try:
                    yield
                finally:
                    listener.cancel()
                    self._router.close(linger=0)
                    zctx.term()
                    logs.close()
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _relay_output(self, server: ForkServer) -> None:
        """With a live table, the runs' processes write to a terminal of its own, which it
        prints above itself (:mod:`arl.childoutput`): sent to the fork server before it
        forks the first governor."""
        progress = self.executor.progress
        if progress is None or not server.owned:  # (no terminal made for nothing)
            return
        relay = progress.children_output()
        if relay is None:
            return
        try:
            server.send_output(relay.terminal(), stderr=relay.takes_stderr)
        except OSError as exc:  # (they write to the terminal itself, as off a table)
            log.debug("the runs' processes write to the terminal itself: %s", exc)
        finally:
            relay.handed_over()

    async def _listen(self, router: zmq.asyncio.Socket) -> None:
        while True:
            identity, *frames = await router.recv_multipart()
            self.executor.heard(identity, frames)

    def process(self, governor: _Governor) -> SupervisedChild:
        name = governor.identity.decode()
        options = self.executor.run_options(
            governor,
            logs=LogConfig(f"ipc://{self._workdir}/log", self.executor.options.level),
            control=f"ipc://{self._workdir}/control",
            # Inside the executor's directory, so even a killed governor leaves nothing.
            rundir=f"{self._workdir}/{name}",
        )
        spec = ChildSpec(
            "governor", governor.spec.uid, "arl.governor.shell:main", {"spec": governor.spec, "options": options}
        )
        return SupervisedChild(spec, options.logs, asynchronous=True)

    async def send(self, governor: _Governor, frame: bytes) -> None:
        assert self._router is not None
        await self._router.send_multipart([governor.identity, frame])

    def death(self, governor: _Governor, code: int) -> str:
        return died_without_reporting(self.executor, governor, code)

    def lost(self, governor: _Governor) -> bool:
        return False  # (this machine going down takes the executor with it)

    async def release(self, governor: _Governor) -> None:
        pass  # (its process was reaped; the folder goes with the executor's)
