"""SimulationController: runs one worker's phases, and hosts that worker's environments
when they run in its process (the default layout).

The loop itself is :class:`~arl.conductors.steploop.PhaseLoop`; this process carries
out its commands (:class:`~arl.conductors.links.Driver`) over a direct call to each
environment it hosts, a DEALER link to each agent process and environment process, and
a PUSH link to the store.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from arl.messages import control
from arl.proc.child import ChildContext

from .environment import EnvironmentConductor
from .links import REPLY_GRACE, Agents, Driver, Environments, RemotePeers, StoreLink
from .service import Service
from .steploop import PhaseLoop

log = logging.getLogger("arl.controller")


class SimulationController:
    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        self.service = Service(ctx, self.handle)
        self.environments: dict[str, EnvironmentConductor] = {}  # those hosted here, by uid

    def handle(self, message: Any) -> Any:
        if isinstance(message, control.RunPhase):
            return self.run_phase(message)
        if isinstance(message, control.SetupEnvironment):
            return self.environments.setdefault(message.env_uid, EnvironmentConductor()).setup(message)
        raise TypeError(f"a simulation controller cannot handle {type(message).__name__}")

    def run_phase(self, request: control.RunPhase) -> control.PhaseDone:
        args = self.ctx.spec.args
        grace = float(args.get("reply_grace", REPLY_GRACE))
        loop = PhaseLoop(request, store_steps=args.get("store_steps", True))
        local = {
            uid: self.environments[uid]
            for uid, host in request.env_hosts.items()
            if not host and uid in self.environments
        }
        remote = {uid: host for uid, host in request.env_hosts.items() if host}
        with contextlib.ExitStack() as links:  # closed however the phase ends, the store's last
            store = StoreLink(self.ctx.zmq, args["store"])
            links.callback(store.close)  # records flushed on the way out
            peers = RemotePeers(self.ctx.zmq, request.endpoints, self.service.pulse, grace, on_wait=store.flush)
            links.callback(peers.close)
            envs = Environments(request.worker, local, remote, peers)
            driver = Driver(envs, Agents(request.worker, request.agent_hosts, peers), store, self.service.pulse)
            done: control.PhaseDone = driver.run(loop.run())
        log.debug("worker %d ended phase %d: %s", request.worker, request.phase, done)
        return done

    def close(self) -> None:
        for conductor in self.environments.values():
            conductor.close()


def main(ctx: ChildContext) -> None:
    """Entry point of an ``arl[controller:...]`` process."""
    controller = SimulationController(ctx)
    try:
        controller.service.serve()
    finally:
        controller.close()
