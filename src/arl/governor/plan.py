"""Which processes a run needs, what each hosts, and their service names and endpoints.

Processes live for the whole run, taken over every phase; each phase sets up fresh
component instances in them, which avoids paying process start-up again for every
phase. A run has one simulation controller per worker and the agent processes of
:class:`~arl.config.spec.ProcessLayout`: the agents, in order of first appearance, dealt
to ``agents`` processes. Environments run inside their worker's controller
(``in_controller``, the default: a direct call a step instead of a round trip), or with
``own`` one process per environment uid and worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arl.conductors.service import agent_host_service, controller_service, env_service
from arl.config.spec import RunSpec
from arl.proc.child import ChildSpec


@dataclass(frozen=True)
class Plan:
    environments: tuple[ChildSpec, ...]  # empty when environments run in the controllers
    agents: tuple[ChildSpec, ...]
    controllers: tuple[ChildSpec, ...]
    agent_hosts: dict[str, str]  # agent name -> service of the process hosting it
    own_environments: bool  # each environment in a process of its own (else in its controller)

    @property
    def all(self) -> tuple[ChildSpec, ...]:
        return self.environments + self.agents + self.controllers

    def env_host(self, uid: str, worker: int) -> str:
        """The service to set environment ``uid`` of ``worker`` up at."""
        return env_service(uid, worker) if self.own_environments else controller_service(worker)

    def env_hosts(self, uids: list[str], worker: int) -> dict[str, str]:
        """``RunPhase.env_hosts``: "" for an environment the controller hosts itself."""
        return {uid: env_service(uid, worker) if self.own_environments else "" for uid in uids}

    def layout(self) -> dict[str, Any]:
        """What the store records of the layout (an ``Event`` of kind ``layout``)."""
        groups: dict[str, list[str]] = {}
        for name, service in self.agent_hosts.items():
            groups.setdefault(service, []).append(name)
        return {
            "environments": "own" if self.own_environments else "in_controller",
            "agent_processes": list(groups.values()),
            "controllers": len(self.controllers),
            "processes": len(self.all),
        }


def _label(names: list[str]) -> str:
    """An agent process's name (its proctitle, its log lines' prefix): its agents, the
    first three of them and how many more (the layout event lists them all)."""
    return "+".join(names) if len(names) <= 3 else f"{'+'.join(names[:3])}+{len(names) - 3}more"


def plan_children(
    spec: RunSpec,
    rundir: str,
    broker: str,
    store: str,
    *,
    store_steps: bool = True,
    reply_grace: float = 1.0,
    liveness: float = 60.0,
) -> Plan:
    """The child processes of ``spec``; ipc endpoints go in the private ``rundir``."""
    envs: dict[tuple[str, int], None] = {}
    names: dict[str, None] = {}
    workers = 0
    for phase in spec.phases:
        workers = max(workers, phase.workers)
        for worker in range(phase.workers):
            for env in phase.environments:
                envs[(env.uid, worker)] = None
        for agent in phase.agents:
            names[agent.name] = None
    own = spec.processes.environments == "own"
    groups: list[list[str]] = [[] for _ in range(min(spec.processes.agents, len(names)))]
    for i, name in enumerate(names):
        groups[i % len(groups)].append(name)

    def child(role: str, name: str, service: str, direct: str | None, **extra: object) -> ChildSpec:
        args = {"service": service, "broker": broker, "direct": direct, "liveness": liveness, **extra}
        return ChildSpec(role, name, f"arl.conductors.{role}:main", args)

    controller_args = {"store": store, "store_steps": store_steps, "reply_grace": reply_grace}
    agents = tuple(
        # `store`: the agents' metrics (log_metric) go straight to the run's writer.
        child("agent", _label(group), agent_host_service(i), f"ipc://{rundir}/a{i}", store=store)
        for i, group in enumerate(groups)
    )
    return Plan(
        environments=tuple(
            child("environment", f"{uid}.{w}", env_service(uid, w), f"ipc://{rundir}/e{i}")
            for i, (uid, w) in enumerate(envs)
        )
        if own
        else (),
        agents=agents,
        controllers=tuple(
            child("controller", str(w), controller_service(w), None, **controller_args) for w in range(workers)
        ),
        agent_hosts={name: agent_host_service(i) for i, group in enumerate(groups) for name in group},
        own_environments=own,
    )
