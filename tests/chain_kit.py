"""The 7-state chain the learning agents' unit tests learn, driven the way an agent
process drives a brain and a muscle (act, learn, update), without processes."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from gymnasium import spaces

from arl.api import ActuatorInfo, Experience, SensorInfo

CHAIN = 7  # states 0..6
GOAL = 3  # in the middle: the way to it is right from one side, left from the other
STARTS = [s for s in range(CHAIN) if s != GOAL]
WAY = [1, 1, 1, 0, 0, 0]  # the best action in each start state
SENSORS = [SensorInfo("chain.obs", spaces.Box(0.0, 1.0, shape=(CHAIN,), dtype=np.float32))]
ACTUATORS = [ActuatorInfo("chain.action", spaces.Discrete(2))]  # 0: left, 1: right


class _Brain(Protocol):
    def learn(self, experience: Experience) -> Any: ...


class _Muscle(Protocol):
    def act(self, sensors: Any) -> Any: ...

    def update(self, update: Any) -> None: ...


def one_hot(state: int) -> np.ndarray[Any, Any]:
    obs = np.zeros(CHAIN, np.float32)
    obs[state] = 1.0
    return obs


def play(brain: _Brain, muscle: _Muscle, episodes: int, first_episode: int = 0) -> None:
    """An action moves one state left (0) or right (1); reaching the goal pays 1 and ends
    the episode (terminated); it is cut (truncated) after 12 steps. Episodes start in
    every other state in turn."""
    for episode in range(first_episode, first_episode + episodes):
        state = STARTS[episode % len(STARTS)]
        for step in range(1, 13):
            obs = {"chain.obs": one_hot(state)}
            setpoints = muscle.act(obs)
            state = min(CHAIN - 1, max(0, state + (1 if setpoints["chain.action"] == 1 else -1)))
            reward = 1.0 if state == GOAL else 0.0
            terminated, truncated = state == GOAL, step == 12 and state != GOAL
            experience = Experience(
                0, obs, setpoints, {"reward": reward}, reward, {"chain.obs": one_hot(state)}, terminated, truncated
            )
            update = brain.learn(experience)
            if update is not None:
                muscle.update(update)
            if terminated or truncated:
                break
