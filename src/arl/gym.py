"""Gymnasium environments as arl environments.

``arl.gym:GymEnvironment`` with ``params: {id: CartPole-v1, ...}`` runs any registered
Gymnasium environment; the other params go to ``gymnasium.make``. Its sensors and
actuators come from the spaces: a ``Dict`` space gives one per key, any other space a
single sensor ``obs`` or actuator ``action``. The reward is ``reward``; terminated and
truncated stay apart, as Gymnasium reports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
from gymnasium import spaces

from arl.api import ActuatorInfo, Environment, SensorInfo, StepResult

OBS = "obs"
ACTION = "action"


class GymEnvironment(Environment):
    """Wraps ``gymnasium.make(id, **kwargs)``."""

    def __init__(self, id: str, **kwargs: Any) -> None:
        self.env = gymnasium.make(id, **kwargs)
        self._obs_keys = _keys(self.env.observation_space)
        self._action_keys = _keys(self.env.action_space)

    def sensors(self) -> Sequence[SensorInfo]:
        return [SensorInfo(key, space) for key, space in _parts(self.env.observation_space, OBS)]

    def actuators(self) -> Sequence[ActuatorInfo]:
        return [ActuatorInfo(key, space) for key, space in _parts(self.env.action_space, ACTION)]

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
        keys = self._action_keys
        missing = [k for k in (keys or [ACTION]) if k not in setpoints]
        if missing:
            raise ValueError(f"no agent set {missing} this step; a Gymnasium environment needs a whole action")
        if keys is None:
            return setpoints[ACTION]
        return {key: setpoints[key] for key in keys}


def _keys(space: spaces.Space[Any]) -> list[str] | None:
    return list(space.spaces) if isinstance(space, spaces.Dict) else None


def _parts(space: spaces.Space[Any], single: str) -> list[tuple[str, spaces.Space[Any]]]:
    if isinstance(space, spaces.Dict):
        return list(space.spaces.items())
    return [(single, space)]
