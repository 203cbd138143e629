"""General objectives: what an agent strives for, made from the rewards of a step.

An objective sees every reward of the step, keyed by qualified id (``<env uid>.<reward
id>``). In a multi-agent environment each agent usually wants its own reward only:
:class:`RewardOf` picks it out, for any environment that keys rewards by agent (such as
:class:`arl.pettingzoo.PettingZooEnvironment`, whose reward ids are the agents' names).
"""

from __future__ import annotations

from collections.abc import Mapping

from arl.api import Objective


class RewardOf(Objective):
    """The reward with the qualified id ``key`` (``rps.player_0``, say), times ``weight``.

    A step without that reward is an error, not a zero: a misspelt id would otherwise
    leave the agent striving for nothing.
    """

    def __init__(self, key: str, weight: float = 1.0) -> None:
        self.key = key
        self.weight = weight

    def evaluate(self, rewards: Mapping[str, float]) -> float:
        try:
            reward = rewards[self.key]
        except KeyError:
            raise ValueError(
                f"no reward {self.key!r} among this step's rewards {sorted(rewards)}; give RewardOf one of these ids"
            ) from None
        return self.weight * float(reward)
