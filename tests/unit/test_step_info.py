"""A step's ``info`` (gymnasium's): made JSON text where the environment runs, capped,
and carried by the step loop into the step's record."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from arl.api import StepResult
from arl.classref import qualname
from arl.conductors.environment import EnvironmentConductor
from arl.dummy import DummyEnvironment
from arl.messages import control
from arl.messages.environment import Reset, Step
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
            info = {"trace": np.zeros(5000)}
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
    big = json.loads(info_text({"trace": np.zeros(5000)}) or "")
    assert big == {"_truncated": len(json.dumps({"trace": [0.0] * 5000}, separators=(",", ":")))}
    assert big["_truncated"] > MAX_BYTES


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
