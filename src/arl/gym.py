"""Gymnasium environments as arl environments.

``arl.gym:GymEnvironment`` with ``params: {id: CartPole-v1, ...}`` (in an experiment file,
``name: gym:CartPole-v1`` for short) runs any registered Gymnasium environment; the other
params go to ``gymnasium.make``. Its sensors and
actuators come from the spaces: a ``Dict`` space gives one per key, any other space a
single sensor ``obs`` or actuator ``action``. The reward is ``reward``; terminated and
truncated stay apart, as Gymnasium reports them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium

from arl.api import ActuatorInfo, Environment, SensorInfo, StepResult
from arl.spaces import keys, parts

OBS = "obs"
ACTION = "action"


class GymEnvironment(Environment):
    """Wraps ``gymnasium.make(id, **kwargs)``."""

    def __init__(self, id: str, **kwargs: Any) -> None:
        self.env = gymnasium.make(id, **kwargs)
        self._obs_keys = keys(self.env.observation_space)
        self._action_keys = keys(self.env.action_space)

    @classmethod
    def problem(cls, id: str, **kwargs: Any) -> str | None:
        """None if Gymnasium knows ``id``, else what is wrong, with the nearest ids: for
        checking a file before anything runs (the environment is built only in its process)."""
        if id in gymnasium.registry:
            return None
        close = difflib.get_close_matches(id, list(gymnasium.registry), n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"Gymnasium has no environment {id!r}{hint} (an id from another package needs that package imported)"

    def sensors(self) -> Sequence[SensorInfo]:
        return [SensorInfo(key, space) for key, space in parts(self.env.observation_space, OBS)]

    def actuators(self) -> Sequence[ActuatorInfo]:
        return [ActuatorInfo(key, space) for key, space in parts(self.env.action_space, ACTION)]

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        observation, _ = self.env.reset(seed=seed % 2**32)
        return self._readings(observation)

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        observation, reward, terminated, truncated, _ = self.env.step(self._action(setpoints))
        return StepResult(self._readings(observation), {"reward": float(reward)}, bool(terminated), bool(truncated))

    def close(self) -> None:
        self.env.close()

    def _readings(self, observation: Any) -> dict[str, Any]:
        if self._obs_keys is None:
            return {OBS: observation}
        return {key: observation[key] for key in self._obs_keys}

    def _action(self, setpoints: Mapping[str, Any]) -> Any:
        action_keys = self._action_keys
        missing = [k for k in (action_keys or [ACTION]) if k not in setpoints]
        if missing:
            raise ValueError(f"no agent set {missing} this step; a Gymnasium environment needs a whole action")
        if action_keys is None:
            return setpoints[ACTION]
        return {key: setpoints[key] for key in action_keys}
