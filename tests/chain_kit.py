"""The 7-state chain the learning agents' unit tests learn, driven the way an agent
process drives a brain and a muscle (act, learn, update), or the way a central learner
does (:class:`Central`: remember, train, a broadcast now and then), without processes."""

from __future__ import annotations

from dataclasses import replace
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
    policy_version: int | None

    def act(self, sensors: Any) -> Any: ...

    def update(self, update: Any) -> None: ...


class _CentralBrain(Protocol):
    def remember(self, experience: Experience) -> None: ...

    def train(self) -> bool: ...

    def policy(self) -> Any: ...


class Central:
    """A central learner without processes, for :func:`play` (which calls its ``learn``):
    each transition is remembered stamped with the ``policy_version`` its muscle acted
    with, then ``train`` is called ``trains`` times; every ``broadcast_every``
    transitions, if it trained since, the brain's policy goes to the muscle with the
    version set to the learner's count of updates (``train`` calls that returned True),
    as arl's learner process sends it."""

    def __init__(self, brain: _CentralBrain, muscle: _Muscle, trains: int = 1, broadcast_every: int = 4) -> None:
        self.brain, self.muscle, self.trains, self.broadcast_every = brain, muscle, trains, broadcast_every
        self.transitions = self.updates = self.sent = 0

    def learn(self, experience: Experience) -> Any:
        self.brain.remember(replace(experience, policy_version=self.muscle.policy_version))
        self.transitions += 1
        for _ in range(self.trains):
            self.updates += self.brain.train()
        if self.transitions % self.broadcast_every or self.updates == self.sent:
            return None
        self.sent = self.updates
        return {**self.brain.policy(), "version": self.updates}


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
