"""Which processes a run needs, and their service names and endpoints.

Processes live for the whole run: one environment conductor per environment uid and
worker, one agent conductor per agent name, one simulation controller per worker,
taken over every phase. Each phase then sets up fresh component instances in them,
which avoids paying process start-up again for every phase.
"""

from __future__ import annotations

from dataclasses import dataclass

from arl.conductors.service import agent_service, controller_service, env_service
from arl.config.spec import RunSpec
from arl.proc.child import ChildSpec


@dataclass(frozen=True)
class Plan:
    environments: tuple[ChildSpec, ...]
    agents: tuple[ChildSpec, ...]
    controllers: tuple[ChildSpec, ...]

    @property
    def all(self) -> tuple[ChildSpec, ...]:
        return self.environments + self.agents + self.controllers


def plan_children(spec: RunSpec, rundir: str, broker: str, store: str, *, store_steps: bool = True) -> Plan:
    """The child processes of ``spec``; ipc endpoints go in the private ``rundir``."""
    envs: dict[tuple[str, int], None] = {}
    agents: dict[str, None] = {}
    workers = 0
    for phase in spec.phases:
        workers = max(workers, phase.workers)
        for worker in range(phase.workers):
            for env in phase.environments:
                envs[(env.uid, worker)] = None
        for agent in phase.agents:
            agents[agent.name] = None

    def child(role: str, name: str, service: str, direct: str | None, **extra: object) -> ChildSpec:
        args = {"service": service, "broker": broker, "direct": direct, **extra}
        return ChildSpec(role, name, f"arl.conductors.{role}:main", args)

    return Plan(
        environments=tuple(
            child("environment", f"{uid}.{w}", env_service(uid, w), f"ipc://{rundir}/e{i}")
            for i, (uid, w) in enumerate(envs)
        ),
        agents=tuple(
            child("agent", name, agent_service(name), f"ipc://{rundir}/a{i}") for i, name in enumerate(agents)
        ),
        controllers=tuple(
            child("controller", str(w), controller_service(w), None, store=store, store_steps=store_steps)
            for w in range(workers)
        ),
    )
