"""A step's ``info`` (gymnasium's): made JSON text where the environment runs, capped,
and carried by the step loop into the step's record."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from arl.api import StepResult
from arl.classref import qualname
from arl.conductors.environment import EnvironmentConductor
from arl.dummy import DummyEnvironment
from arl.messages import control
from arl.messages.environment import Reset, Step
from arl.pettingzoo import PettingZooEnvironment
from arl.stepinfo import MAX_BYTES, info_text


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


class InfoEnvironment(DummyEnvironment):
    """A DummyEnvironment whose ``info`` holds numpy values and an object of its own on
    odd steps, more than the store keeps on step ``big``, and nothing on other steps."""

    def __init__(self, big: int, **params: Any) -> None:
        super().__init__(**params)
        self.big = big

    def step(self, setpoints: Any) -> StepResult:
        result = super().step(setpoints)
        info: dict[str, Any] | None = None
        if self._step == self.big:
            info = {"trace": [0.0] * 5000}
        elif self._step % 2:
            info = {"step": np.int64(self._step), "pos": np.array([0.5, 1.5], np.float32), "thing": Opaque()}
        return StepResult(result.sensors, result.rewards, result.terminated, result.truncated, info)


def test_info_becomes_json_text_numpy_made_plain_and_the_rest_its_repr() -> None:
    info = {"n": np.int64(3), "x": np.array([0.5, 1.5], np.float32), "nan": float("nan"), "what": Opaque(), "z": 1j}
    assert json.loads(info_text(info) or "") == {"n": 3, "x": [0.5, 1.5], "nan": None, "what": "Opaque()", "z": "1j"}
    assert json.loads(info_text({(1, 2): {np.int64(4): 2**70}}) or "") == {"(1, 2)": {"4": "1180591620717411303424"}}
    assert json.loads(info_text(np.arange(2)) or "") == {"info": [0, 1]}  # not a mapping: kept under a key


def test_no_info_is_none_and_one_over_the_cap_is_a_marker_of_its_size() -> None:
    assert info_text(None) is None
    assert info_text({}) is None
    big = json.loads(info_text({"trace": [0.0] * 5000}) or "")
    assert big == {"_truncated": len(json.dumps({"trace": [0.0] * 5000}, separators=(",", ":")))}
    assert big["_truncated"] > MAX_BYTES


class Frame(np.ndarray):  # type: ignore[type-arg]
    """An array that must not be made a list: the info's encoder has no need to."""

    def tolist(self) -> Any:
        raise AssertionError("an array too big for the cap was encoded")


def test_an_array_or_bytes_too_big_for_the_cap_alone_is_not_encoded() -> None:
    frame = np.zeros((84, 84, 3), np.uint8).view(Frame)
    assert json.loads(info_text({"frame": frame, "lives": 3}) or "") == {"_truncated": 2 * frame.size + 1}
    assert json.loads(info_text({"raw": b"x" * 3000}) or "") == {"_truncated": 6002}
    small = {"b": bytearray(b"ab"), "small": np.zeros(3, np.uint8)}  # under the cap: made plain
    assert json.loads(info_text(small) or "") == {"b": "6162", "small": [0, 0, 0]}


class Stats(Mapping[str, Any]):
    """A read-only mapping of the environment's own (not a dict)."""

    def __init__(self, **values: Any) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def test_an_info_that_is_a_mapping_of_another_kind_is_stored_as_an_object() -> None:
    info = MappingProxyType({"lives": 3, "stats": Stats(hits=deque([1, 2]), x=np.float32(0.5))})
    assert json.loads(info_text(info) or "") == {"lives": 3, "stats": {"hits": [1, 2], "x": 0.5}}
    assert json.loads(info_text(Stats(a=range(2))) or "") == {"a": [0, 1]}


def test_an_info_that_contains_itself_is_cut_not_refused() -> None:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    text = info_text(looped) or ""
    assert text.startswith('{"self":{"self":')
    assert len(text) < MAX_BYTES


def test_the_environment_s_host_sends_each_step_s_info_as_json_text() -> None:
    conductor = EnvironmentConductor()
    params = {"sensors": 1, "actuators": 1, "big": 2}
    conductor.setup(control.SetupEnvironment(0, "env", qualname(InfoEnvironment), params))
    conductor.reset(Reset(5))
    infos = [conductor.step(Step({"env.a0": 1.0})).info for _ in range(4)]
    assert json.loads(infos[0] or "") == {"step": 1, "pos": [0.5, 1.5], "thing": "Opaque()"}
    assert json.loads(infos[1] or "") == {"_truncated": len(json.dumps({"trace": [0.0] * 5000}).replace(" ", ""))}
    assert json.loads(infos[2] or "")["step"] == 3
    assert infos[3] is None
    conductor.close()


class ArrayInfos(ParallelEnv):  # type: ignore[misc]
    """One agent ``a`` whose info is an array (PettingZoo leaves an info's type open)."""

    metadata = {"name": "array_infos_v0", "render_modes": []}
    possible_agents = ["a", "b"]

    def __init__(self) -> None:
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return spaces.Discrete(2)

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return spaces.Discrete(2)

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict[str, int], dict[str, Any]]:
        self.agents = list(self.possible_agents)
        return dict.fromkeys(self.agents, 0), {}

    def step(self, actions: dict[str, Any]) -> tuple[Any, ...]:
        infos = {"a": np.array([0.5, 1.5]), "b": {}}
        false = dict.fromkeys(self.agents, False)
        return dict.fromkeys(self.agents, 1), dict.fromkeys(self.agents, 0.0), false, false, infos


def array_infos() -> ArrayInfos:
    return ArrayInfos()


def test_a_pettingzoo_agent_s_info_may_be_an_array() -> None:
    env = PettingZooEnvironment(f"{__name__}:array_infos", api="parallel")
    env.reset(seed=0)
    info = env.step({"a.action": 0, "b.action": 1}).info
    assert info is not None
    assert list(info) == ["a"]  # b said nothing
    assert json.loads(info_text(info) or "") == {"a": [0.5, 1.5]}
    env.close()
