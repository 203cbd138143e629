"""Setpoints checked against their actuator's space where the environment is hosted: a
value outside it fails the step, and the step loop names the agent that set it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from arl.classref import qualname
from arl.conductors.agent import AgentHost
from arl.conductors.environment import EnvironmentConductor
from arl.conductors.links import Driver, Environments, LocalAgents
from arl.conductors.steploop import PhaseLoop
from arl.dummy import DummyMuscle
from arl.errors import ComponentCrashed
from arl.examples.tictactoe import MinimaxMuscle
from arl.messages import control
from arl.messages.environment import Step
from arl.spacecheck import SetpointError, accepts, membership

BOX = spaces.Box(0.0, 10.0, shape=(), dtype=np.float64)
BOX2 = spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 5.0], np.float32), dtype=np.float32)
INT_BOX = spaces.Box(0, 3, shape=(2,), dtype=np.int64)
DISCRETE = spaces.Discrete(3, start=1)
F32 = spaces.Box(-0.7, 0.7, shape=(), dtype=np.float32)
F32_1 = spaces.Box(-0.7, 0.7, shape=(1,), dtype=np.float32)
DICT = spaces.Dict(
    {"p": spaces.Box(-0.7, 0.7, shape=(2,), dtype=np.float32), "n": spaces.Dict({"d": spaces.Discrete(2)})}
)
TUPLE = spaces.Tuple((spaces.Discrete(2), F32_1))


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
        (F32, 0.7, True),  # at its bound written in the file: 0.7 becomes the float32 bound when cast
        (F32, -0.7, True),
        (F32, np.float32(0.7), True),
        (F32, 0.70000003, False),  # the next float32 up
        (F32_1, np.array([0.7]), True),  # a float64 array at the float32 bound
        (F32_1, np.array([-0.7], np.float32), True),
        (F32_1, np.array([0.7000001]), False),
        (spaces.Box(-np.inf, np.inf, shape=(), dtype=np.float32), 1e300, True),  # cast: inf, within
        (spaces.Box(0.0, float(np.finfo(np.float32).max), shape=(), dtype=np.float32), 1e300, False),  # inf: outside
        (DICT, {"p": np.array([0.1, 0.7]), "n": {"d": np.int64(1)}}, True),  # float64 in the nested float32 Box
        (DICT, {"p": [0.1, 0.7], "n": {"d": 1}}, True),
        (DICT, {"p": [0.1, 0.8], "n": {"d": 1}}, False),
        (DICT, {"p": [0.1, 0.7], "n": {"d": 2}}, False),
        (DICT, {"p": [0.1, 0.7]}, False),  # a key missing
        (DICT, [0.1, 0.7], False),
        (TUPLE, (1, np.array([0.7])), True),
        (TUPLE, [1, [0.7]], True),
        (TUPLE, (1, [0.7], 0), False),  # one part too many
        (TUPLE, (3, [0.7]), False),
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


def _run_phase(
    uid: str, entry_point: str, params: dict[str, Any], agents: dict[str, list[list[str]]],
    muscles: dict[str, str], conditions: list[list[Any]], episodes: int, stored: list[Any],
) -> None:  # fmt: skip
    """Run one phase in this process through the real step loop, environment conductor
    and agent host (vanilla simulation), adding the records it stores to ``stored``."""
    env = EnvironmentConductor()
    host = AgentHost()

    class Records:
        def send(self, records: list[Any], *, flush: bool = False) -> None:
            stored.extend(records)

    class NoPeers:  # every component is local here
        def send(self, requests: Any) -> None:
            assert not requests

        def collect(self, services: Any, grace: float | None = None) -> tuple[dict[str, Any], bool]:
            return {}, False

    try:
        ready = env.setup(control.SetupEnvironment(0, uid, entry_point, params))
        described = dict(ready.sensors) | dict(ready.actuators)
        for name, (sensors, actuators) in agents.items():
            host.handle(
                control.SetupAgent(
                    0, name, ["arl.dummy:DummyBrain", {}], [muscles[name], {}], ["arl.dummy:DummyObjective", {}],
                    [[i, described[i]] for i in sensors], [[i, described[i]] for i in actuators], 1, True, 3, None,
                )
            )  # fmt: skip
        request = control.RunPhase(
            0, "phase", 0, ["arl.simulation:Vanilla", {}], conditions, [], episodes, 10,
            agents, [uid], dict.fromkeys(agents, "agents.0"), {uid: ""}, {}, 5, time.time(), [],
        )  # fmt: skip
        envs = Environments(0, {uid: env}, {}, NoPeers())  # type: ignore[arg-type]
        driver = Driver(envs, LocalAgents(0, host), Records(), lambda: False)  # type: ignore[arg-type]
        driver.run(PhaseLoop(request).run())
    finally:
        host.close()
        env.close()


def test_a_setpoint_outside_its_space_fails_the_step_naming_agent_actuator_and_value() -> None:
    stored: list[Any] = []
    muscles = {"defender": "arl.dummy:DummyMuscle", "attacker": qualname(OffMuscle)}
    params = {"sensors": 2, "actuators": 3}
    with pytest.raises(ComponentCrashed) as failed:
        _run_phase("env", "arl.dummy:DummyEnvironment", params, AGENTS, muscles, [], 1, stored)
    assert (failed.value.component, failed.value.kind) == ("agent.attacker", "SetpointError")
    assert failed.value.detail == (
        "actuator 'env.a2' was set to -3, which is not in its space Box(0.0, 10.0, (), float64): "
        "it takes a number from 0.0 to 10.0"
    )
    assert [r.step for r in stored if type(r).__name__ == "EnvironmentStep"] == [1, 2]  # the third never ran


# --------------------------------------------------------------------------- setpoints not applied


class NoneOffTurn(MinimaxMuscle):
    """A tic-tac-toe player as PettingZoo's loops write one: ``None`` when it may not move."""

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        if not np.asarray(sensors[self._ids[1]]).any():  # its action mask is all 0: not its turn
            return {self._ids[2]: None}
        return super().act(sensors)


TTT = {
    f"player_{n}": [[f"ttt.player_{n}.observation", f"ttt.player_{n}.action_mask"], [f"ttt.player_{n}.action"]]
    for n in (1, 2)
}


def test_an_aec_agent_off_its_turn_may_send_none_but_the_one_on_turn_may_not() -> None:
    """The PettingZoo adapter ignores the setpoints of agents whose turn it is not; they
    are not checked either (before, a None there failed the run)."""
    muscles = dict.fromkeys(TTT, qualname(NoneOffTurn))
    done = [["arl.conditions:EnvironmentDone", {}]]
    stored: list[Any] = []
    _run_phase("ttt", "arl.pettingzoo:PettingZooEnvironment", TTT_PARAMS, TTT, muscles, done, 2, stored)
    steps = [r for r in stored if type(r).__name__ == "EnvironmentStep"]
    assert len(steps) >= 10  # two games of 5 to 9 moves
    assert steps[-1].terminated
    actions = [r for r in stored if type(r).__name__ == "AgentAction"]
    assert any(a.setpoints == {"ttt.player_2.action": None} for a in actions)  # sent, and let through
    conductor = EnvironmentConductor()
    conductor.setup(control.SetupEnvironment(0, "ttt", "arl.pettingzoo:PettingZooEnvironment", TTT_PARAMS))
    conductor.reset(_reset())  # player_1's turn
    with pytest.raises(SetpointError, match=r"'ttt.player_1.action' was set to None, which is not in its space"):
        conductor.step(Step({"ttt.player_1.action": None, "ttt.player_2.action": 4}))
    conductor.close()


TTT_PARAMS = {"env": "arl.examples.tictactoe", "api": "aec"}


class Staggered(ParallelEnv):  # type: ignore[misc]
    """Agents ``a`` and ``b`` (actions Discrete(3)); ``a`` terminates after the first step
    and leaves ``agents``, ``b`` plays on."""

    metadata = {"name": "staggered_v0", "render_modes": []}
    possible_agents = ["a", "b"]

    def __init__(self) -> None:
        self.agents: list[str] = []
        self.actions: list[dict[str, Any]] = []

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return spaces.Discrete(2)

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return spaces.Discrete(3)

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict[str, int], dict[str, Any]]:
        self.agents = ["a", "b"]
        return dict.fromkeys(self.agents, 0), {}

    def step(self, actions: dict[str, Any]) -> tuple[Any, ...]:
        self.actions.append(dict(actions))
        ended = {agent: agent == "a" for agent in self.agents}
        observations, rewards = dict.fromkeys(self.agents, 1), dict.fromkeys(self.agents, 0.0)
        self.agents = ["b"]
        return observations, rewards, ended, dict.fromkeys(ended, False), {}


def staggered() -> Staggered:
    return Staggered()


def test_a_parallel_agent_that_is_done_may_send_none_but_a_live_one_may_not() -> None:
    conductor = EnvironmentConductor()
    params = {"env": f"{__name__}:staggered", "api": "parallel"}
    conductor.setup(control.SetupEnvironment(0, "pz", "arl.pettingzoo:PettingZooEnvironment", params))
    conductor.reset(_reset())
    assert conductor.step(Step({"pz.a.action": 1, "pz.b.action": 2})).sensors["pz.a.done"] == 1
    conductor.step(Step({"pz.a.action": None, "pz.b.action": 0}))  # a is done: its None is not passed on
    assert conductor.env.env.actions[-1] == {"b": 0}  # type: ignore[union-attr]
    with pytest.raises(SetpointError, match=r"'pz.b.action' was set to None"):
        conductor.step(Step({"pz.a.action": None, "pz.b.action": None}))
    with pytest.raises(SetpointError, match=r"'pz.b.action' was set to 3"):
        conductor.step(Step({"pz.a.action": 0, "pz.b.action": 3}))
    conductor.close()
