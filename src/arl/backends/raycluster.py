"""The governors on a Ray cluster (``--backend ray``): the executor's side.

Each run is a :class:`arl.backends.rayhost.RunHost` actor, placed by Ray (spread over
the nodes) with what the run needs (:func:`arl.backends.raycheck.need_of`); it starts the
run's governor on its node. :class:`RayGovernor` stands for that governor here: it starts
the actor, fetches what the governor reports and logs (handled as if it came from a
local one: the progress display, the control API, ``-v``'s lines), and stops it. When
the actor dies with its node, the run is FAILED with the reason; a run that saves
snapshots goes on from its latest one on another node instead (the executor's
``_run``).

The cluster is the one at ``--ray-address`` (else ``$RAY_ADDRESS``), or a Ray started for
the runs on this machine and ended with them. Before any run goes, the checks of
:mod:`arl.backends.raycheck`: a store every node reaches, the shared folders marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import arl
from arl.backends import NotOpened, NotStarted, died_without_reporting
from arl.backends import raycheck as check
from arl.backends.rayhost import CONTROL, DROPPED, EXIT, LOG, RunHost, Shared, Where
from arl.errors import ArlError
from arl.proc.child import ChildSpec
from arl.proc.logs import LogConfig, handle_frame
from arl.transport import DropLog

if TYPE_CHECKING:
    from arl.executor import Executor, _Governor

log = logging.getLogger("arl.executor")
FETCH_WAIT = 1.0  # seconds a host holds a fetch of its events while it has none
CLOSE_WAIT = 10.0  # seconds a host has to stop its governor and hand over its last events
CONNECT_TIMEOUT = 5.0  # seconds a cluster's address has to take a connection
FETCH_PATIENCE = 30.0  # seconds a host may be out of reach before its run is taken as lost
T = TypeVar("T")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise NotOpened(
            "--backend ray needs Ray, which is not installed here: pip install 'arl-core[ray]' "
            "(on every node of the cluster too, with the same version of arl)"
        ) from None
    return ray


class RayBackend:
    start_at_once = 1_000_000  # each node starts its own runs: Ray places no more than fit

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.ray: Any = None
        self.host: Any = None  # RunHost as a Ray actor class
        self.nodes: list[check.Node] = []
        self.shared = Shared()
        self.cwd = os.getcwd()  # arl-run's: what relative paths of the runs mean
        self.drops = DropLog(log, "dropped a malformed log frame from a node")

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        from arl.proc import forkserver

        self.ray = import_ray()
        forkserver.stop()  # (the one started while the files were checked: nothing is forked here)
        try:
            self._connect()
            self._check()
            yield
        finally:
            check.unmark(self.shared.folders)
            self.ray.shutdown()  # (nothing to do if it never connected)

    def _connect(self) -> None:
        # Ray says at every start that it authenticates with a token; nothing to act on.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        options = self.executor.options
        address = options.ray_address or os.environ.get("RAY_ADDRESS") or None
        try:
            if address is None:
                needed = max((check.need_of(g.spec).cpus for g in self.executor._governors), default=1)
                cpus = max(len(os.sched_getaffinity(0)), needed)
                log.info("starting a local Ray for the runs (%d CPUs)", cpus)
                self.ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
            else:
                _answers(address)
                self.ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise NotOpened(
                f"cannot reach {where}: {exc} (start one with `ray start --head`, and give its address "
                "with --ray-address or $RAY_ADDRESS)"
            ) from None
        self.host = self.ray.remote(RunHost)
        self.nodes = self.live_nodes()
        log.info("Ray cluster: %d node(s), %g CPUs", len(self.nodes), sum(n.cpus for n in self.nodes))

    def live_nodes(self) -> list[check.Node]:
        return [check.Node.from_ray(entry) for entry in self.ray.nodes() if entry.get("Alive")]

    def _check(self) -> None:
        options = self.executor.options
        problem = check.unreachable_store(options.store_url, self.ray.util.get_node_ip_address(), self.nodes)
        if problem:
            raise NotOpened(problem)
        specs = [check.resolved(g.spec, self.cwd) for g in self.executor._governors]
        try:
            self.shared = Shared(check.mark(check.shared_folders(options.checkpoint_dir, specs)))
        except ArlError as exc:
            raise NotOpened(str(exc)) from None

    def process(self, governor: _Governor) -> RayGovernor:
        return RayGovernor(self, governor)

    async def send(self, governor: _Governor, frame: bytes) -> None:
        assert isinstance(governor.child, RayGovernor)
        await governor.child.send(frame)

    def death(self, governor: _Governor, code: int) -> str:
        child = governor.child
        assert isinstance(child, RayGovernor)
        if child.lost is not None:
            return f"the run's Ray actor on {child.place} died, and the run's processes with it: {child.lost}"
        return died_without_reporting(self.executor, governor, code, child.place)

    def lost(self, governor: _Governor) -> bool:
        return isinstance(governor.child, RayGovernor) and governor.child.lost is not None

    async def release(self, governor: _Governor) -> None:
        if isinstance(governor.child, RayGovernor):
            await governor.child.release()


def _answers(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """ConnectionError unless something takes connections at a ``host:port`` address:
    ``ray.init`` would try such an address for ever. (Ray's other forms, ``auto`` and
    ``ray://``, are left to Ray.)"""
    host, colon, port = address.rpartition(":")
    if "://" in address or not colon or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} within {timeout:g} s ({exc})") from None


class RayGovernor:
    """A run's governor on a Ray node, as the executor handles one (a GovernorProcess)."""

    def __init__(self, backend: RayBackend, governor: _Governor) -> None:
        self._backend = backend
        self._governor = governor
        self.spec = ChildSpec("governor", governor.spec.uid, "arl.governor.shell:main")
        self.where: Where | None = None
        self.lost: str | None = None  # why its actor died, when it did
        self._actor: Any = None
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._let_go = asyncio.Event()
        self._fetcher: asyncio.Task[None] | None = None
        self._closing = False  # released: the fetch ends with its batch under way

    @property
    def pid(self) -> int | None:
        return None if self.where is None else self.where.pid

    @property
    def place(self) -> str:
        if self.where is None:
            return "a node not known yet"
        return f"node {self.where.hostname} at {self.where.address}, id {self.where.node_id[:12]}"

    @property
    def exitcode(self) -> int | None:
        return self._exit.result() if self._exit.done() else None

    @property
    def exited(self) -> asyncio.Future[int]:
        return asyncio.shield(self._exit)

    async def start(self, timeout: float) -> None:
        """Place the run's host (for as long as the cluster is busy: only an interrupt
        ends the wait, with :class:`NotStarted`), then start the governor in it and wait
        until it is ready (``timeout``, counted on the node)."""
        backend, uid = self._backend, self._governor.spec.uid
        need = check.need_of(self._governor.spec)
        backend.nodes = await asyncio.to_thread(backend.live_nodes)  # (nodes come and go)
        problem = check.unplaceable(uid, need, backend.nodes)
        if problem:
            raise ArlError(problem)
        options = backend.executor.options
        self._actor = backend.host.options(
            num_cpus=need.cpus, num_gpus=need.gpus, scheduling_strategy="SPREAD", max_restarts=0, name=None
        ).remote(options.module_paths, backend.cwd)
        placed = asyncio.ensure_future(self._call(self._actor.where.remote()))
        let_go = asyncio.ensure_future(self._let_go.wait())
        await asyncio.wait({placed, let_go}, return_when=asyncio.FIRST_COMPLETED)
        let_go.cancel()
        if not placed.done():
            placed.cancel()
            raise NotStarted("interrupted while it waited for a node with room")
        self.where = placed.result()
        if self.where.arl_version != arl.__version__:
            raise ArlError(
                f"{self.place} has arl {self.where.arl_version}, this machine {arl.__version__}: "
                "install the same arl on every node"
            )
        log.info("run %s: on %s", uid, self.place)
        self._fetcher = asyncio.create_task(self._fetch())
        spec = check.resolved(self._governor.spec, backend.cwd)
        run_options = backend.executor.run_options(
            self._governor, logs=LogConfig("", options.level), control="", rundir=None
        )
        if run_options.resume is not None:
            run_options = dataclasses.replace(run_options, resume=os.path.join(backend.cwd, run_options.resume))
        error = await self._call(self._actor.start.remote(spec, run_options, backend.shared, timeout))
        if error is not None:
            raise ArlError(error)
        if self._let_go.is_set():  # asked to stop while it started: now it can hear it
            self._actor.request_stop.remote()

    async def _call(self, ref: Awaitable[T]) -> T:
        """The result of a call to the actor. ArlError if it failed: its actor's death (its
        node lost: :attr:`lost` says why), or a failure that may pass (the actor out of
        reach for a moment, Ray's own error)."""
        exceptions = self._backend.ray.exceptions
        try:
            return await ref
        except exceptions.ActorUnavailableError as exc:  # (a subclass of RayActorError: first)
            raise ArlError(f"the run's Ray actor on {self.place} is out of reach: {exc}") from None
        except exceptions.RayActorError as exc:
            self._lose(exc)
            raise ArlError(f"the run's Ray actor on {self.place} died: {self.lost}") from None
        except exceptions.RayError as exc:
            raise ArlError(f"a call to the run's Ray actor on {self.place} failed: {exc}") from None

    async def _fetch(self) -> None:
        """Hand what the governor reports and logs to the executor, until released. A fetch
        that fails is tried again a second later; the actor dead, or out of reach for
        :data:`FETCH_PATIENCE` seconds, the run's governor is taken as gone."""
        heard = self._backend.executor.heard
        identity = self._governor.identity
        failing_since: float | None = None
        while self.lost is None and not self._closing:
            try:
                events = await self._call(self._actor.events.remote(FETCH_WAIT))
            except ArlError as exc:
                now = time.monotonic()
                failing_since = failing_since or now
                if self.lost is None and now - failing_since > FETCH_PATIENCE:
                    self._lose(exc)
                await asyncio.sleep(FETCH_WAIT)
                continue
            failing_since = None
            for kind, payload in events:
                self._take(kind, payload, heard, identity)

    def _take(self, kind: str, payload: Any, heard: Any, identity: bytes) -> None:
        if kind == CONTROL:
            heard(identity, payload)
        elif kind == LOG:
            handle_frame(payload, self._backend.drops)
        elif kind == EXIT:
            if not self._exit.done():
                self._exit.set_result(payload if isinstance(payload, int) else -signal.SIGKILL)
        elif kind == DROPPED:
            log.warning("run %s: %d log record(s) dropped on %s", self._governor.spec.uid, payload, self.place)

    def _lose(self, exc: BaseException) -> None:
        if self.lost is None:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            self.lost = next((line for line in lines if "died because" in line), lines[0] if lines else repr(exc))
        if not self._exit.done():
            self._exit.set_result(-signal.SIGKILL)

    async def send(self, frame: bytes) -> None:
        if self._actor is not None and self.where is not None and self.lost is None:
            await self._call(self._actor.send.remote(frame))

    def request_stop(self) -> None:
        self._let_go.set()
        if self._actor is not None and self.where is not None and self.lost is None:
            self._actor.request_stop.remote()

    async def stop(self, *, grace: float = 3.0) -> int:
        if self._exit.done() or self.where is None:
            return self.exitcode if self.exitcode is not None else 0
        with contextlib.suppress(ArlError):
            code = await self._call(self._actor.stop.remote(grace))
            if not self._exit.done():
                self._exit.set_result(code if code is not None else 0)
        return self.exitcode if self.exitcode is not None else -signal.SIGKILL

    async def release(self) -> None:
        """Take the host's last events, then end it (its process, and with it anything of
        the run that is left on its node)."""
        if self._actor is None:
            return
        if self.where is not None and self.lost is None:
            heard, identity = self._backend.executor.heard, self._governor.identity
            self._closing = True
            closed = asyncio.ensure_future(self._call(self._actor.close.remote()))
            if self._fetcher is not None:
                # The fetch under way holds events the host no longer has: it ends with the
                # batch the close wakes it with, before the close's own (later) events.
                await asyncio.wait({self._fetcher}, timeout=CLOSE_WAIT)
            with contextlib.suppress(ArlError, TimeoutError):
                for kind, payload in await asyncio.wait_for(closed, CLOSE_WAIT):
                    self._take(kind, payload, heard, identity)
        if self._fetcher is not None:
            self._fetcher.cancel()
        self._backend.ray.kill(self._actor, no_restart=True)
        self._actor = None
