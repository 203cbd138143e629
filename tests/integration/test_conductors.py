"""Conductors and a controller in-process (threads), a real broker on ipc:// in a temp dir."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import zmq
import zmq.asyncio

from arl import codec
from arl.conductors.agent import AgentHost
from arl.conductors.controller import SimulationController
from arl.conductors.environment import EnvironmentConductor
from arl.conductors.service import Service
from arl.dummy import DummyBrain
from arl.mdp import protocol as p
from arl.mdp.broker import Broker
from arl.mdp.client import MdpClient
from arl.messages import control, environment, store
from arl.messages.common import ErrorReply
from arl.proc.child import ChildContext, ChildSpec
from arl.simulation import BUILT_IN

pytestmark = pytest.mark.timeout(30)


class InProcess:
    """Runs a conductor's serve loop in a thread, stopped through its control pipe."""

    def __init__(self, spec: ChildSpec, make: Callable[[ChildContext], Service]) -> None:
        self._parent, child = multiprocessing.Pipe()
        self.ctx = ChildContext(spec, child)
        self.service = make(self.ctx)
        self.thread = threading.Thread(target=self.service.serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._parent.send_bytes(b"stop")
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.ctx.zmq.term()
        self._parent.close()
        self.ctx.conn.close()


def _spec(role: str, service: str, rundir: str, direct: str | None, **extra: str) -> ChildSpec:
    broker = f"ipc://{rundir}/broker"
    return ChildSpec(role, service, "", {"service": service, "broker": broker, "direct": direct, **extra})


def _records(pull: zmq.Socket[Any]) -> list[Any]:
    """The records the controller sent; a step's and an action's values come as the JSON
    text the store keeps (made by the controller), read back here."""
    found = []
    while pull.poll(200):
        record = codec.decode(pull.recv())
        if isinstance(record, store.EnvironmentStep | store.AgentAction):
            names = [f.name for f in dataclasses.fields(record) if isinstance(getattr(record, f.name), str)]
            texts = {n: json.loads(getattr(record, n)) for n in names if getattr(record, n).startswith("{")}
            record = dataclasses.replace(record, **texts)
        found.append(record)
    return found


async def _request(client: MdpClient, service: str, message: Any) -> Any:
    return codec.decode(await client.request(service, codec.encode(message), timeout=10))


@pytest.mark.parametrize(
    ("controller", "env_host"), [("vanilla", "env.env.0"), ("taking_turns", "env.env.0"), ("vanilla", "")]
)
def test_a_phase_runs_through_real_sockets(rundir: str, controller: str, env_host: str) -> None:
    """Both agents in one agent process; the environment in a process of its own, or
    (``env_host`` "") inside the controller, set up through the controller's service."""
    zctx = zmq.Context()
    pull = zctx.socket(zmq.PULL)
    pull.bind(f"ipc://{rundir}/store")
    env = EnvironmentConductor()
    agents = AgentHost()
    parts = [
        InProcess(_spec("environment", "env.env.0", rundir, f"ipc://{rundir}/e0"), lambda c: Service(c, env.handle)),
        InProcess(_spec("agent", "agents.0", rundir, f"ipc://{rundir}/a0"), lambda c: Service(c, agents.handle)),
        InProcess(
            _spec("controller", "controller.0", rundir, None, store=f"ipc://{rundir}/store"),
            lambda c: SimulationController(c).service,
        ),
    ]
    setup_at = env_host or "controller.0"

    async def drive() -> Any:
        actx = zmq.asyncio.Context()
        try:
            async with Broker(actx, f"ipc://{rundir}/broker"), MdpClient(actx, f"ipc://{rundir}/broker") as client:
                ready = await _request(
                    client,
                    setup_at,
                    control.SetupEnvironment(
                        0, "env", "arl.dummy:DummyEnvironment", {"sensors": 4, "actuators": 4, "episode_length": 5}
                    ),
                )
                spaces = dict(ready.sensors) | dict(ready.actuators)
                for name, ids in (("d", (["env.s0", "env.s1"], ["env.a0"])), ("a", (["env.s2"], ["env.a1", "env.a2"]))):
                    setup = control.SetupAgent(
                        0,
                        name,
                        ["arl.dummy:DummyBrain", {}],
                        ["arl.dummy:DummyMuscle", {}],
                        ["arl.dummy:DummyObjective", {}],
                        [[i, spaces[i]] for i in ids[0]],
                        [[i, spaces[i]] for i in ids[1]],
                        1,
                        True,
                        3,
                        None,
                    )
                    assert isinstance(await _request(client, "agents.0", setup), control.AgentReady)
                hosts = ["agents.0", env_host] if env_host else ["agents.0"]
                endpoints = {s: (await client.lookup(s))["direct"] for s in hosts}
                run = control.RunPhase(
                    0,
                    "phase",
                    0,
                    [BUILT_IN[controller], {}],
                    [["arl.conditions:EnvironmentDone", {}]],
                    [],
                    2,
                    None,
                    {"d": [["env.s0", "env.s1"], ["env.a0"]], "a": [["env.s2"], ["env.a1", "env.a2"]]},
                    ["env"],
                    {"d": "agents.0", "a": "agents.0"},
                    {"env": env_host},
                    endpoints,
                    5,
                    time.time(),
                    [],
                )
                done = await _request(client, "controller.0", run)
                broken = await _request(client, setup_at, control.SetupEnvironment(1, "env", "arl.dummy:Nope", {}))
                return done, broken
        finally:
            actx.term()

    try:
        done, broken = asyncio.run(drive())
        records = _records(pull)
    finally:
        for part in parts:
            part.stop()
        pull.close()
        zctx.term()
    kinds = Counter(type(r).__name__ for r in records)
    actions = [r for r in records if isinstance(r, store.AgentAction)]
    # Each agent's return of an episode is the sum of its stored objective values.
    returns = {a: [sum(r.objective for r in actions if (r.agent, r.episode) == (a, e)) for e in range(2)] for a in "da"}
    assert done == control.PhaseDone(0, 0, 2, 10, "episodes", False, returns)
    if controller == "vanilla":  # every agent acts in every step
        assert kinds == {"EpisodeStarted": 2, "EnvironmentStep": 10, "AgentAction": 20, "EpisodeEnded": 2}
        assert {(r.episode, r.step, r.agent) for r in actions} == {
            (e, s, a) for e in range(2) for s in range(1, 6) for a in "da"
        }
    else:  # one agent a step, in the file's order: d, a, d, a, d
        assert kinds == {"EpisodeStarted": 2, "EnvironmentStep": 10, "AgentAction": 10, "EpisodeEnded": 2}
        assert sorted((r.episode, r.step, r.agent) for r in actions) == [
            (e, s, "d" if s % 2 else "a") for e in range(2) for s in range(1, 6)
        ]
    assert all(set(r.setpoints) == {"env.a0"} for r in actions if r.agent == "d")
    assert all(set(r.inputs) == {"env.s2"} for r in actions if r.agent == "a")
    # The defender's objective is the sum of the rewards that followed its action.
    first = next(r for r in actions if r.agent == "d")
    assert first.objective == pytest.approx(sum(first.rewards.values()))
    experiences = 10 if controller == "vanilla" else 6
    defender = agents.agents["d"].brain
    assert isinstance(defender, DummyBrain)
    assert defender.experiences == experiences
    assert isinstance(broken, ErrorReply)
    assert broken.kind == "ComponentLoadError"
    assert "Nope" in broken.message


def _ask(dealer: zmq.Socket[Any], message: Any) -> Any:
    dealer.send(codec.encode(message))
    assert dealer.poll(10_000), "no answer: the conductor stopped serving"
    return codec.decode(dealer.recv())


def test_malformed_messages_on_either_socket_never_end_a_conductor(
    rundir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong frame counts, unreadable and deeply nested bodies and an oversized frame on
    the direct link, garbage on the broker link: each is dropped or answered with an
    ErrorReply, and the conductor goes on serving both links."""
    zctx = zmq.Context()
    broker = zctx.socket(zmq.ROUTER)  # a stand-in broker that sends what a real one never would
    broker.setsockopt(zmq.LINGER, 0)
    broker.bind(f"ipc://{rundir}/broker")
    dealer = zctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RECONNECT_IVL, 10)  # the oversized frame drops the connection: come back soon
    echo = InProcess(
        _spec("environment", "env.echo.0", rundir, f"ipc://{rundir}/e0"), lambda c: Service(c, lambda m: m)
    )
    try:
        assert broker.poll(10_000)
        worker, *_ready = broker.recv_multipart()
        dealer.connect(f"ipc://{rundir}/e0")
        assert _ask(dealer, environment.Reset(1)) == environment.Reset(1)
        with caplog.at_level(logging.WARNING):
            dealer.send_multipart([b"two", b"frames"])
            dealer.send_multipart([b""] * 5)
            dealer.send(b"x" * (codec.MAX_FRAME_BYTES + 1))
            for frames in ([b"", b"MDPW02", b"\x09"], [b"junk"], [b"", b"MDPW02", b"\x02", b"c", b"x"]):
                broker.send_multipart([worker, *frames])
            assert _ask(dealer, environment.Reset(2)) == environment.Reset(2)
            deep: Any = 0
            for _ in range(codec.MAX_DEPTH + 1):
                deep = [deep]
            for body in (b"\xc1", codec.pack([codec.CODEC_VERSION, "env.step", {"x": deep}])):
                dealer.send(body)
                assert dealer.poll(10_000)
                refused = codec.decode(dealer.recv())
                assert isinstance(refused, ErrorReply)
                assert refused.kind == "ProtocolError"
            broker.send_multipart([worker, *p.worker_request(b"client", b"c1", codec.encode(environment.Reset(3)))])
            assert broker.poll(10_000)
            reply = p.parse_worker_message(broker.recv_multipart()[1:])
            while isinstance(reply, p.Heartbeat):
                assert broker.poll(10_000)
                reply = p.parse_worker_message(broker.recv_multipart()[1:])
            assert reply == p.WorkerReport(b"client", b"c1", codec.encode(environment.Reset(3)))
    finally:
        echo.stop()
        dealer.close()
        broker.close()
        zctx.term()
    dropped = [r.getMessage() for r in caplog.records if "dropped a malformed message" in r.getMessage()]
    assert len(dropped) == 2 + 3, dropped  # two on the direct link, three from the "broker"
