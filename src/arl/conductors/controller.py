"""SimulationController: runs one worker's phases, and hosts that worker's environments
when they run in its process (the default layout).

The loop itself is :class:`~arl.conductors.steploop.PhaseLoop`; this process carries
out its commands (:class:`~arl.conductors.links.Driver`) over a direct call to each
environment it hosts, a DEALER link to each agent process and environment process, and
a PUSH link to the store (and one to each central agent's learner). With
``envs_per_worker`` it hosts that many copies of the worker's environments and runs a
loop for each, in lockstep (:mod:`arl.conductors.vector`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arl.codec import pack, unpack
from arl.messages import control
from arl.messages import store as store_msg
from arl.proc.child import ChildContext

from .environment import EnvironmentConductor
from .hold import Hold, new_folder
from .links import REPLY_GRACE, Agents, Driver, Environments, LearnerLink, RemotePeers, StoreLink
from .service import Service
from .steploop import PhaseLoop
from .ticks import TickStats, to_metrics
from .vector import VectorAgents, VectorDriver, merged

log = logging.getLogger("arl.controller")

STATS_AGENT = "arl:controller"  # the metrics' agent of the step statistics (no agent is named so)


class SimulationController:
    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        self.service = Service(ctx, self.handle)
        self.hold = Hold(ctx, self.service)
        # Those hosted here, by uid and copy (envs_per_worker: copies 0 ... n - 1).
        self.environments: dict[tuple[str, int], EnvironmentConductor] = {}

    def handle(self, message: Any) -> Any:
        if isinstance(message, control.RunPhase):
            return self.run_phase(message)
        if isinstance(message, control.SetupEnvironment):
            return self.setup_environment(message)
        raise TypeError(f"a simulation controller cannot handle {type(message).__name__}")

    def setup_environment(self, request: control.SetupEnvironment) -> control.EnvironmentReady:
        """Build the phase's ``copies`` instances of the environment (an earlier phase's
        copies beyond them are closed)."""
        for key in [k for k in self.environments if k[0] == request.env_uid and k[1] >= request.copies]:
            self.environments.pop(key).close()
        readies = [
            self.environments.setdefault((request.env_uid, copy), EnvironmentConductor()).setup(request)
            for copy in range(request.copies)
        ]
        return readies[0]

    def run_phase(self, request: control.RunPhase) -> control.PhaseDone:
        if request.envs > 1:
            return self._run_copies(request)
        args = self.ctx.spec.args
        grace = float(args.get("reply_grace", REPLY_GRACE))
        loop = PhaseLoop(request, store_steps=args.get("store_steps", True))
        local = self._local(request, 0)
        if request.state is not None:
            load_worker(Path(request.state), loop, local)
        remote = {uid: host for uid, host in request.env_hosts.items() if host}
        with contextlib.ExitStack() as links:  # closed however the phase ends, the store's last
            store, learners, peers = self._links(request, links, grace)
            envs = Environments(request.worker, local, remote, peers)
            agents = Agents(request.worker, request.agent_hosts, peers)
            pause = self._pause(store, learners, [(loop, local)])
            driver = Driver(envs, agents, store, self.service.pulse, learners, pause[1])
            done: control.PhaseDone = driver.run(loop.run())
        log.debug("worker %d ended phase %d: %s", request.worker, request.phase, done)
        return done

    def _links(
        self, request: control.RunPhase, links: contextlib.ExitStack, grace: float
    ) -> tuple[StoreLink, LearnerLink | None, RemotePeers]:
        """The phase's links: to the store, to its central agents' learners, and to its
        peers; closed in reverse (the peers, then the learners' transitions, then the
        store's records, flushed on the way out)."""
        store = StoreLink(self.ctx.zmq, self.ctx.spec.args["store"])
        links.callback(store.close)
        learners = None
        if request.learners:
            learners = LearnerLink(self.ctx.zmq, request.phase, request.learners)
            links.callback(learners.close)

        def waiting() -> None:
            # A wait for a peer must hold nothing back: not the store's records, nor the
            # transitions a learner needs before it updates (an inference server keeping
            # its workers to learner.max_steps_per_update waits for that update).
            store.flush()
            if learners is not None:
                learners.flush()

        peers = RemotePeers(self.ctx.zmq, request.endpoints, self.service.pulse, grace, on_wait=waiting)
        links.callback(peers.close)
        return store, learners, peers

    def _pause(
        self,
        store: StoreLink,
        learners: LearnerLink | None,
        workers: list[tuple[PhaseLoop, dict[str, EnvironmentConductor]]],
    ) -> tuple[Callable[[], bool], Callable[[], bool]]:
        """(asked, hold) for the driver: whether a pause is asked, and holding at a step
        boundary (acknowledged through the store link) until resumed or stopped."""

        def flush(token: int) -> None:
            if learners is not None:
                learners.flush()
            store.send([store_msg.Flush(token)], flush=True)

        def save(folder: Path) -> None:
            for loop, local in workers:
                save_worker(folder, loop, local)

        ticks = self._ticks(store, workers[0][0].request) if len(workers) == 1 else None

        def hold() -> bool:
            if ticks is not None:
                ticks(False)
            if not self.hold.asked():
                return False
            stop = self.hold.hold(flush, save)
            if ticks is not None:
                ticks(True)  # a pause is no step's time
            return stop

        return self.hold.asked, hold

    def _ticks(self, store: StoreLink, request: control.RunPhase) -> Callable[[bool], None] | None:
        """The file's ``statistics_interval``: at each step boundary, the step's time goes
        into the window; every interval the window's steps a second and step-time
        percentiles are logged and stored as metrics of agent ``arl:controller``."""
        interval = request.statistics_interval
        if not interval:
            return None
        stats = TickStats(interval)
        last = [time.monotonic()]
        windows = [0]

        def tick(restart: bool) -> None:
            now = time.monotonic()
            if not restart:
                stats.add(now - last[0])
            last[0] = now
            if restart or not stats.due():
                return
            summary = stats.take()
            if summary is None:
                return
            windows[0] += 1
            log.info(
                "worker %d: %.0f steps/s, step time p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms",
                request.worker, summary.steps_per_s, summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.max_ms,
            )  # fmt: skip
            at = time.time()
            values = [[request.worker, name, windows[0], value, at] for name, value in to_metrics(summary)]
            store.send([store_msg.Metrics(request.phase, STATS_AGENT, values)])

        return tick

    def _local(self, request: control.RunPhase, copy: int) -> dict[str, EnvironmentConductor]:
        return {
            uid: self.environments[(uid, copy)]
            for uid, host in request.env_hosts.items()
            if not host and (uid, copy) in self.environments
        }

    def _run_copies(self, request: control.RunPhase) -> control.PhaseDone:
        """``envs_per_worker``: a loop for each copy of the environments (each copy a
        worker of its own), stepped together; one answer for them all."""
        args = self.ctx.spec.args
        grace = float(args.get("reply_grace", REPLY_GRACE))
        count = request.envs
        seeds = request.seeds or []
        if len(seeds) != count or any(host for host in request.env_hosts.values()):
            raise ValueError(f"envs {count} needs a seed for each copy and environments in the controller")
        resume = (
            request.resume
            or [[request.first_episode, request.episodes, request.episodes_before, request.steps_before]] * count
        )
        if len(resume) != count:
            raise ValueError(f"envs {count} needs the progress of each copy to resume")
        copies = [
            dataclasses.replace(
                request,
                worker=request.worker * count + k,
                seed=seeds[k],
                envs=1,
                seeds=None,
                resume=None,
                first_episode=first,
                episodes=episodes,
                episodes_before=before,
                steps_before=steps,
            )
            for k, (first, episodes, before, steps) in enumerate(resume)
        ]
        loops = [PhaseLoop(copy, store_steps=args.get("store_steps", True)) for copy in copies]
        if request.state is not None:
            for k, loop in enumerate(loops):
                load_worker(Path(request.state), loop, self._local(request, k))
        with contextlib.ExitStack() as links:
            store, learners, peers = self._links(request, links, grace)
            drivers = [
                Driver(
                    Environments(copy.worker, self._local(request, k), {}, peers),
                    Agents(copy.worker, request.agent_hosts, peers),
                    store,
                    self.service.pulse,
                    learners,
                )
                for k, copy in enumerate(copies)
            ]
            pause = self._pause(store, learners, [(loop, self._local(request, k)) for k, loop in enumerate(loops)])
            ticks = [self._ticks(store, copy) for copy in copies]
            vector = VectorDriver(
                drivers, [c.worker for c in copies], VectorAgents(request.agent_hosts, peers), pause,
                boundary=_each(ticks),
            )  # fmt: skip
            dones = vector.run([loop.run() for loop in loops])
        done = merged(request.worker, dones)
        log.debug("worker %d ended phase %d with %d copies: %s", request.worker, request.phase, count, done)
        return done

    def close(self) -> None:
        for conductor in self.environments.values():
            conductor.close()


def _each(ticks: list[Callable[[bool], None] | None]) -> Callable[[int], None] | None:
    """Copy ``i``'s step statistics at each of its step boundaries (None: none kept)."""
    if not any(ticks):
        return None

    def boundary(i: int) -> None:
        tick = ticks[i]
        if tick is not None:
            tick(False)

    return boundary


def save_worker(folder: Path, loop: PhaseLoop, local: dict[str, EnvironmentConductor]) -> None:
    """A worker's part of a snapshot: ``<folder>/workers/<worker>/``: its loop
    (``loop.msgpack``), the loop's simulation and conditions, the environments hosted here."""
    root = folder / "workers" / str(loop.request.worker)
    root.mkdir(parents=True, exist_ok=True)  # (an environment process may have written its part)
    (root / "loop.msgpack").write_bytes(pack(loop.state()))
    for name, component in loop.components().items():
        component.save_state(new_folder(root / name))
    for uid, conductor in local.items():
        if conductor.env is not None:
            conductor.env.save_state(new_folder(root / f"env.{uid}"))


def load_worker(folder: Path, loop: PhaseLoop, local: dict[str, EnvironmentConductor]) -> None:
    """Go on from :func:`save_worker`'s folder (the environments are set up already)."""
    root = folder / "workers" / str(loop.request.worker)
    loop.restore(unpack((root / "loop.msgpack").read_bytes()))
    for name, component in loop.components().items():
        component.load_state(root / name)
    for uid, conductor in local.items():
        if conductor.env is not None:
            conductor.env.load_state(root / f"env.{uid}")


def main(ctx: ChildContext) -> None:
    """Entry point of an ``arl[controller:...]`` process."""
    controller = SimulationController(ctx)
    try:
        controller.service.serve()
    finally:
        controller.close()
