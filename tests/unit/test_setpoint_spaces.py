"""Setpoints checked against their actuator's space where the environment is hosted: a
value outside it fails the step, and the step loop names the agent that set it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from arl.classref import qualname
from arl.conductors.agent import AgentHost
from arl.conductors.environment import EnvironmentConductor
from arl.conductors.links import Driver, Environments, LocalAgents
from arl.conductors.steploop import PhaseLoop
from arl.dummy import DummyMuscle
from arl.errors import ComponentCrashed
from arl.messages import control
from arl.messages.environment import Step
from arl.spacecheck import SetpointError, accepts, membership

BOX = spaces.Box(0.0, 10.0, shape=(), dtype=np.float64)
BOX2 = spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 5.0], np.float32), dtype=np.float32)
INT_BOX = spaces.Box(0, 3, shape=(2,), dtype=np.int64)
DISCRETE = spaces.Discrete(3, start=1)


@pytest.mark.parametrize(
    ("space", "value", "inside"),
    [
        (BOX, 3.5, True),
        (BOX, np.float64(10.0), True),
        (BOX, np.float32(2.0), True),
        (BOX, 4, True),
        (BOX, np.array(7.0), True),
        (BOX, 10.5, False),
        (BOX, -0.1, False),
        (BOX, float("nan"), False),
        (BOX, "3", False),
        (BOX, [1.0], False),  # shape (1,), not ()
        (BOX2, np.array([0.5, 4.0]), True),  # float64 values in a float32 Box: taken
        (BOX2, [0.5, 4.0], True),
        (BOX2, [0.5, 6.0], False),
        (BOX2, [0.5], False),
        (BOX2, [[0.5], [1.0, 2.0]], False),  # ragged
        (INT_BOX, [0, 3], True),
        (INT_BOX, [0.0, 3.0], False),  # an integer Box takes integers, as gymnasium has it
        (DISCRETE, 1, True),
        (DISCRETE, np.int64(3), True),
        (DISCRETE, np.array(2), True),
        (DISCRETE, 0, False),
        (DISCRETE, 4, False),
        (DISCRETE, 2.0, False),
        (spaces.MultiBinary(2), [0, 1], True),
        (spaces.MultiBinary(2), [0, 2], False),
    ],
)
def test_membership_takes_what_the_space_holds(space: spaces.Space[Any], value: Any, inside: bool) -> None:
    assert membership(space)(value) is inside


def test_what_a_space_takes_is_said_in_words() -> None:
    assert accepts(BOX) == "a number from 0.0 to 10.0"
    assert accepts(BOX2) == "an array of shape (2,) of numbers from [-1.0, 0.0] to [1.0, 5.0]"
    assert accepts(INT_BOX) == "an array of shape (2,) of integers from 0 to 3"
    assert accepts(DISCRETE) == "an integer from 1 to 3"


def test_the_common_setpoints_are_checked_in_well_under_a_microsecond() -> None:
    """The check runs for every setpoint of every step: a float in a scalar Box and an int
    in a Discrete take the fast path (gymnasium's contains: 7 and 1.5 µs)."""
    box, discrete = membership(BOX), membership(DISCRETE)
    started = time.perf_counter()
    for _ in range(10_000):
        box(3.5)
        discrete(2)
    assert (time.perf_counter() - started) / 20_000 < 1e-6


def test_the_environment_s_host_refuses_a_setpoint_outside_its_actuator_s_space() -> None:
    conductor = EnvironmentConductor()
    conductor.setup(control.SetupEnvironment(0, "env", "arl.dummy:DummyEnvironment", {"sensors": 1, "actuators": 2}))
    conductor.reset(_reset())
    assert conductor.step(Step({"env.a0": 1.0, "env.a1": 10.0})).terminated is False
    with pytest.raises(SetpointError) as refused:
        conductor.step(Step({"env.a0": 1.0, "env.a1": 12.5}))
    assert str(refused.value) == (
        "actuator 'env.a1' was set to 12.5, which is not in its space Box(0.0, 10.0, (), float64): "
        "it takes a number from 0.0 to 10.0"
    )
    conductor.close()


def _reset() -> Any:
    from arl.messages.environment import Reset

    return Reset(1)


class OffMuscle(DummyMuscle):
    """Sets its second actuator to -3 on its third action."""

    calls = 0

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls += 1
        setpoints = dict(super().act(sensors))
        if self.calls == 3:
            setpoints[self.actuators[1].id] = -3
        return setpoints


AGENTS = {"defender": [["env.s0"], ["env.a0"]], "attacker": [["env.s1"], ["env.a1", "env.a2"]]}


def test_a_setpoint_outside_its_space_fails_the_step_naming_agent_actuator_and_value() -> None:
    env = EnvironmentConductor()
    ready = env.setup(control.SetupEnvironment(0, "env", "arl.dummy:DummyEnvironment", {"sensors": 2, "actuators": 3}))
    described = dict(ready.sensors) | dict(ready.actuators)
    host = AgentHost()
    for name, (sensors, actuators) in AGENTS.items():
        muscle = qualname(OffMuscle) if name == "attacker" else "arl.dummy:DummyMuscle"
        host.handle(
            control.SetupAgent(
                0, name, ["arl.dummy:DummyBrain", {}], [muscle, {}], ["arl.dummy:DummyObjective", {}],
                [[i, described[i]] for i in sensors], [[i, described[i]] for i in actuators], 1, True, 3, None,
            )
        )  # fmt: skip
    request = control.RunPhase(
        0, "phase", 0, ["arl.simulation:Vanilla", {}], [], [], 1, 10,
        AGENTS, ["env"], dict.fromkeys(AGENTS, "agents.0"), {"env": ""}, {}, 5, time.time(), [],
    )  # fmt: skip
    stored: list[Any] = []

    class Records:
        def send(self, records: list[Any], *, flush: bool = False) -> None:
            stored.extend(records)

    class NoPeers:  # every component is local here
        def send(self, requests: Any) -> None:
            assert not requests

        def collect(self, services: Any, grace: float | None = None) -> tuple[dict[str, Any], bool]:
            return {}, False

    envs = Environments(0, {"env": env}, {}, NoPeers())  # type: ignore[arg-type]
    driver = Driver(envs, LocalAgents(0, host), Records(), lambda: False)  # type: ignore[arg-type]
    with pytest.raises(ComponentCrashed) as failed:
        driver.run(PhaseLoop(request).run())
    assert (failed.value.component, failed.value.kind) == ("agent.attacker", "SetpointError")
    assert failed.value.detail == (
        "actuator 'env.a2' was set to -3, which is not in its space Box(0.0, 10.0, (), float64): "
        "it takes a number from 0.0 to 10.0"
    )
    assert [r.step for r in stored if type(r).__name__ == "EnvironmentStep"] == [1, 2]  # the third never ran
    host.close()
    env.close()
