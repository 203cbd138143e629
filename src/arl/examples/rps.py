"""Rock-paper-scissors: a PettingZoo environment, a learner and a biased opponent.

The environment mirrors PettingZoo's ``classic/rps_v2`` (same agents, spaces and rewards)
in plain Python, since PettingZoo's own needs pygame. This module follows PettingZoo's
module convention, so ``params: {env: arl.examples.rps}`` of
:class:`arl.pettingzoo.PettingZooEnvironment` builds it through :func:`parallel_env`
(or :func:`env` for its AEC form).

The learner's brain counts the opponent's moves and its muscle plays the best response
to those frequencies; the opponent's muscle draws moves with a fixed bias.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo.utils import parallel_to_aec
from pettingzoo.utils.env import ParallelEnv

from arl.api import ActuatorInfo, Brain, Experience, Muscle, SensorInfo
from arl.examples import one_id

ROCK, PAPER, SCISSORS = 0, 1, 2
MOVES = 3
NO_MOVE = 3  # what each player observes before the first round
STATE_FILE = "muscle_state.json"  # a muscle's, in its own state folder


def score(move: int, other: int) -> int:
    """+1 if ``move`` beats ``other``, -1 if it loses, 0 on a draw."""
    if move == other:
        return 0
    return 1 if (move - other) % MOVES == 1 else -1


class RockPaperScissors(ParallelEnv):  # type: ignore[misc]  # PettingZoo has no type hints
    """Two players, ``player_0`` and ``player_1``, play rounds at once.

    Each observes the other's last move (``NO_MOVE`` before the first round) and gets
    +1, -1 or 0 a round. The match is truncated after ``max_cycles`` rounds; with
    ``first_to``, it terminates as soon as a player has won that many rounds.
    """

    metadata = {"name": "arl_rps_v0", "render_modes": [], "is_parallelizable": True}
    render_mode = None  # nothing to render

    def __init__(self, max_cycles: int = 15, first_to: int | None = None) -> None:
        self.possible_agents = ["player_0", "player_1"]
        self.agents: list[str] = []
        self.max_cycles = max_cycles
        self.first_to = first_to
        self._observation_space = spaces.Discrete(MOVES + 1)
        self._action_space = spaces.Discrete(MOVES)
        self._round = 0
        self._wins = dict.fromkeys(self.possible_agents, 0)

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self._action_space

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, int], Any]:
        self.agents = list(self.possible_agents)
        self._round = 0
        self._wins = dict.fromkeys(self.possible_agents, 0)
        return dict.fromkeys(self.agents, NO_MOVE), {agent: {} for agent in self.agents}

    def step(self, actions: Mapping[str, Any]) -> tuple[Any, ...]:
        first, second = self.possible_agents
        moves = {agent: int(actions[agent]) for agent in (first, second)}
        bad = {agent: move for agent, move in moves.items() if not 0 <= move < MOVES}
        if bad:
            raise ValueError(f"moves must be 0 (rock), 1 (paper) or 2 (scissors); got {bad}")
        result = score(moves[first], moves[second])
        self._round += 1
        if result:
            self._wins[first if result > 0 else second] += 1
        won = self.first_to is not None and max(self._wins.values()) >= self.first_to
        timed_out = not won and self._round >= self.max_cycles
        observations = {first: moves[second], second: moves[first]}
        rewards = {first: float(result), second: float(-result)}
        terminations = dict.fromkeys(self.agents, won)
        truncations = dict.fromkeys(self.agents, timed_out)
        infos: dict[str, dict[str, Any]] = {agent: {} for agent in self.agents}
        if won or timed_out:
            self.agents = []
        return observations, rewards, terminations, truncations, infos


def parallel_env(max_cycles: int = 15, first_to: int | None = None) -> RockPaperScissors:
    """The parallel form (PettingZoo's module convention)."""
    return RockPaperScissors(max_cycles, first_to)


def env(max_cycles: int = 15, first_to: int | None = None) -> Any:
    """The AEC form: the players move one after the other, the round is scored after both."""
    return parallel_to_aec(RockPaperScissors(max_cycles, first_to))


def best_responses(counts: Sequence[float]) -> list[int]:
    """The moves with the highest expected score against moves drawn as often as ``counts``."""
    p = np.asarray(counts, dtype=float) / float(np.sum(counts))
    expected = [sum(p[other] * score(move, other) for other in range(MOVES)) for move in range(MOVES)]
    best = max(expected)
    return [move for move in range(MOVES) if np.isclose(expected[move], best)]


class _PlayerMuscle(Muscle):
    """A muscle that sets its agent's one ``.action`` actuator, with a seeded generator."""

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)
        self._action = ""

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        super().setup(sensors, actuators, seed)
        self._rng = np.random.default_rng(seed)
        self._action = one_id([a.id for a in actuators], ".action", "the rock-paper-scissors muscle")

    def save_state(self, path: Path) -> None:
        (path / STATE_FILE).write_text(json.dumps(self._state()))

    def load_state(self, path: Path) -> None:
        self._restore(json.loads((path / STATE_FILE).read_text()))

    def _state(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state}

    def _restore(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]


class CounterMuscle(_PlayerMuscle):
    """Plays the best response to the opponent's move counts its brain sends (ties drawn
    at random); a random move instead with probability ``epsilon``."""

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.counts = np.ones(MOVES)

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        if self._rng.random() < self.epsilon:
            return {self._action: int(self._rng.integers(MOVES))}
        moves = best_responses(self.counts.tolist())
        return {self._action: moves[int(self._rng.integers(len(moves)))]}

    def update(self, update: Any) -> None:
        self.counts = np.asarray(update, dtype=float)

    def _state(self) -> dict[str, Any]:  # the counts it plays against, which its brain sent
        return {**super()._state(), "counts": self.counts.tolist()}

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.counts = np.asarray(state["counts"], dtype=float)


class FrequencyBrain(Brain):
    """Counts the opponent's moves (its agent's ``.obs`` sensor shows the opponent's last
    move), starting from ``prior`` each, and sends the counts to its muscles."""

    def __init__(self, prior: float = 1.0) -> None:
        if prior <= 0:
            raise ValueError(f"prior must be > 0, got {prior}")
        self.counts = np.full(MOVES, float(prior))
        self._obs = ""

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        super().setup(sensors, actuators, seed)
        self._obs = one_id([s.id for s in sensors], ".obs", "the rock-paper-scissors brain")

    def learn(self, experience: Experience) -> Any:
        move = int(experience.next_inputs[self._obs])
        if move == NO_MOVE:
            return None
        self.counts[move] += 1.0
        return self.counts.tolist()

    def policy(self) -> Any:
        return self.counts.tolist()

    def save(self, directory: Path) -> None:
        (directory / "frequencies.json").write_text(json.dumps({"counts": self.counts.tolist()}))

    def load(self, directory: Path) -> None:
        self.counts = np.asarray(json.loads((directory / "frequencies.json").read_text())["counts"], dtype=float)


class BiasedMuscle(_PlayerMuscle):
    """Draws rock, paper and scissors with the fixed probabilities ``weights`` (normalised)."""

    def __init__(self, weights: Sequence[float] = (0.5, 0.3, 0.2)) -> None:
        super().__init__()
        p = np.asarray(weights, dtype=float)
        if p.shape != (MOVES,) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError(f"weights must be three non-negative numbers, not all 0; got {list(weights)}")
        self.p = p / p.sum()

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        return {self._action: int(self._rng.choice(MOVES, p=self.p))}
