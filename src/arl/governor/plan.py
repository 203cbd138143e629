"""Which processes a run needs, what each hosts, and their service names and endpoints.

Processes live for the whole run, taken over every phase; each phase sets up fresh
component instances in them, which avoids paying process start-up again for every
phase. A run has one simulation controller per worker and the agent processes of
:class:`~arl.config.spec.ProcessLayout`: the agents, in order of first appearance, dealt
to ``agents`` processes. A central agent (``learner``/``inference`` in any phase) has
processes of its own instead: a learner, and ``inference.servers`` agent processes (the
most any phase asks for), worker ``w`` served by server ``w % servers``. Environments run
inside their worker's controller (``in_controller``, the default: a direct call a step
instead of a round trip), or with ``own`` one process per environment uid and worker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from arl.conductors.service import agent_host_service, controller_service, env_service, learner_service
from arl.config.spec import InferenceSpec, LearnerSpec, PhaseSpec, RunSpec
from arl.messages.control import SetupAgent
from arl.proc.child import ChildSpec

Wave = list[tuple[str, SetupAgent]]  # (service, request) pairs sent together


@dataclass(frozen=True)
class Central:
    """A central agent's processes: its learner and its inference servers (services),
    and the learner's endpoints for transitions in and policies out."""

    learner: str
    servers: tuple[str, ...]
    experiences: str
    weights: str

    def server(self, worker: int) -> str:
        return self.servers[worker % len(self.servers)]

    def clients(self, index: int, workers: int) -> int:
        """The controllers the ``index``-th server answers: the most requests that can
        wait for it at once (each controller has one out at a time)."""
        return sum(1 for w in range(workers) if w % len(self.servers) == index)

    def serves(self, index: int, workers: int, copies: int = 1) -> list[int]:
        """The workers (of a phase of ``workers`` controllers, each stepping ``copies``
        of the environments) the ``index``-th server acts for: a controller's copies all
        go to the server of the controller."""
        mine = [w for w in range(workers) if w % len(self.servers) == index]
        return [w * copies + k for w in mine for k in range(copies)]


@dataclass(frozen=True)
class Plan:
    environments: tuple[ChildSpec, ...]  # empty when environments run in the controllers
    agents: tuple[ChildSpec, ...]  # agent processes, inference servers included
    controllers: tuple[ChildSpec, ...]
    agent_hosts: dict[str, str]  # agent name -> service of the process hosting it (not central agents)
    own_environments: bool  # each environment in a process of its own (else in its controller)
    learners: tuple[ChildSpec, ...] = ()
    central: dict[str, Central] = field(default_factory=dict)  # central agent name -> its processes

    @property
    def all(self) -> tuple[ChildSpec, ...]:
        return self.environments + self.learners + self.agents + self.controllers

    def agent_host(self, name: str, worker: int) -> str:
        """The service that acts for agent ``name`` on ``worker``."""
        central = self.central.get(name)
        return central.server(worker) if central is not None else self.agent_hosts[name]

    def env_host(self, uid: str, worker: int) -> str:
        """The service to set environment ``uid`` of ``worker`` up at."""
        return env_service(uid, worker) if self.own_environments else controller_service(worker)

    def env_hosts(self, uids: list[str], worker: int) -> dict[str, str]:
        """``RunPhase.env_hosts``: "" for an environment the controller hosts itself."""
        return {uid: env_service(uid, worker) if self.own_environments else "" for uid in uids}

    def agent_setups(self, phase: PhaseSpec, setups: Mapping[str, SetupAgent], wait: float) -> tuple[Wave, Wave]:
        """Where the phase's ``SetupAgent`` requests go, in two waves: first every plain
        agent's and every central agent's learner's, then the central agents' inference
        servers' (a server waits for its learner's first policy). ``setups``: each
        agent's request as a plain agent's; ``wait``: how long a central agent's
        processes wait for each other."""
        first: Wave = []
        then: Wave = []
        for agent in phase.agents:
            setup = setups[agent.name]
            central = self.central.get(agent.name)
            if central is None:
                first.append((self.agent_hosts[agent.name], setup))
                continue
            learner, inference = agent.learner or LearnerSpec(), agent.inference or InferenceSpec()
            options = {**dataclasses.asdict(learner), "wait": wait}
            first.append((central.learner, dataclasses.replace(setup, role="learner", options=options)))
            options = {**dataclasses.asdict(inference), "wait": wait}
            then.extend(
                (
                    server,
                    dataclasses.replace(
                        setup,
                        role="inference",
                        serves=central.serves(k, phase.workers, phase.envs_per_worker),
                        weights=central.weights,
                        options={
                            **options,
                            "server": k,
                            "servers": len(central.servers),
                            "clients": central.clients(k, phase.workers),
                            # learner.max_steps_per_update: each server keeps its share of the pace
                            "pace": [learner.minimum_buffer_size, learner.max_steps_per_update, phase.actors]
                            if learner.max_steps_per_update
                            else None,
                        },
                    ),
                )
                for k, server in enumerate(central.servers)
            )
        return first, then

    def layout(self) -> dict[str, Any]:
        """What the store records of the layout (an ``Event`` of kind ``layout``)."""
        groups: dict[str, list[str]] = {}
        for name, service in self.agent_hosts.items():
            groups.setdefault(service, []).append(name)
        layout: dict[str, Any] = {
            "environments": "own" if self.own_environments else "in_controller",
            "agent_processes": list(groups.values()),
            "controllers": len(self.controllers),
            "processes": len(self.all),
        }
        if self.central:
            layout["central"] = {name: {"inference_servers": len(c.servers)} for name, c in self.central.items()}
        return layout


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
    servers: dict[str, int] = {}  # central agent -> its inference servers
    workers = 0
    for phase in spec.phases:
        workers = max(workers, phase.workers)
        for worker in range(phase.workers):
            for env in phase.environments:
                envs[(env.uid, worker)] = None
        for agent in phase.agents:
            names[agent.name] = None
            if agent.central:
                wanted = agent.inference.servers if agent.inference is not None else 1
                servers[agent.name] = max(servers.get(agent.name, 1), wanted)
    own = spec.processes.environments == "own"
    plain = [name for name in names if name not in servers]
    groups: list[list[str]] = [[] for _ in range(min(spec.processes.agents, len(plain)))]
    for i, name in enumerate(plain):
        groups[i % len(groups)].append(name)

    def child(role: str, name: str, service: str, direct: str | None, **extra: object) -> ChildSpec:
        args = {"service": service, "broker": broker, "direct": direct, "liveness": liveness, **extra}
        return ChildSpec(role, name, f"arl.conductors.{role}:main", args)

    controller_args = {"store": store, "store_steps": store_steps, "reply_grace": reply_grace}
    # `store`: the agents' metrics (log_metric) go straight to the run's writer.
    agents = [
        child("agent", _label(group), agent_host_service(i), f"ipc://{rundir}/a{i}", store=store)
        for i, group in enumerate(groups)
    ]
    learners = []
    central: dict[str, Central] = {}
    for j, (name, count) in enumerate(servers.items()):
        experiences, weights = f"ipc://{rundir}/l{j}", f"ipc://{rundir}/w{j}"
        learners.append(
            child("learner", name, learner_service(name), None, store=store, experiences=experiences, weights=weights)
        )
        services = []
        for k in range(count):
            i = len(agents)
            services.append(agent_host_service(i))
            label = name if count == 1 else f"{name}#{k}"
            agents.append(child("agent", label, agent_host_service(i), f"ipc://{rundir}/a{i}", store=store))
        central[name] = Central(learner_service(name), tuple(services), experiences, weights)
    return Plan(
        environments=tuple(
            child("environment", f"{uid}.{w}", env_service(uid, w), f"ipc://{rundir}/e{i}")
            for i, (uid, w) in enumerate(envs)
        )
        if own
        else (),
        agents=tuple(agents),
        controllers=tuple(
            child("controller", str(w), controller_service(w), None, **controller_args) for w in range(workers)
        ),
        agent_hosts={name: agent_host_service(i) for i, group in enumerate(groups) for name in group},
        own_environments=own,
        learners=tuple(learners),
        central=central,
    )
