"""Tic-tac-toe: a PettingZoo AEC environment and a player that cannot lose.

The environment mirrors PettingZoo's ``classic/tictactoe_v3`` (same agents, spaces,
rewards and wrappers) in plain Python, since PettingZoo's own needs pygame. This module
follows PettingZoo's module convention: it has only :func:`env`, so
:class:`arl.pettingzoo.PettingZooEnvironment` with ``params: {env: arl.examples.tictactoe}``
builds the AEC form.

:class:`MinimaxMuscle` plays perfectly (two of them always draw, in nine moves) or, with
probability ``epsilon``, a random legal move.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo.utils import AgentSelector, AssertOutOfBoundsWrapper, OrderEnforcingWrapper, TerminateIllegalWrapper
from pettingzoo.utils.env import AECEnv

from arl.api import ActuatorInfo, Muscle, SensorInfo
from arl.examples import one_id

SQUARES = 9
STATE_FILE = "muscle_state.json"  # a muscle's, in its own state folder
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


def winner(squares: Sequence[int]) -> int:
    """The mark (1 or 2) that holds a line, or 0."""
    for a, b, c in LINES:
        if squares[a] and squares[a] == squares[b] == squares[c]:
            return squares[a]
    return 0


class TicTacToe(AECEnv):  # type: ignore[misc]  # PettingZoo has no type hints
    """``player_1`` (mark 1) and ``player_2`` (mark 2) take turns, ``player_1`` first.

    An observation is a Dict: ``observation`` (3x3x2, the observer's marks in channel 0,
    the opponent's in channel 1; square ``i`` is at ``divmod(i, 3)``) and ``action_mask``
    (the free squares, all 0 for the player not to move). The winner gets +1 and the
    loser -1 on the winning move; then, as on a draw, both are terminated.
    """

    metadata = {"name": "arl_tictactoe_v0", "render_modes": [], "is_parallelizable": False}
    render_mode = None  # nothing to render

    def __init__(self) -> None:
        super().__init__()
        self.possible_agents = ["player_1", "player_2"]
        self.agents: list[str] = []
        self._observation_space = spaces.Dict(
            {
                "observation": spaces.Box(low=0, high=1, shape=(3, 3, 2), dtype=np.int8),
                "action_mask": spaces.Box(low=0, high=1, shape=(SQUARES,), dtype=np.int8),
            }
        )
        self._action_space = spaces.Discrete(SQUARES)
        self.squares = [0] * SQUARES
        self._selector = AgentSelector(self.possible_agents)

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self._action_space

    def observe(self, agent: str) -> dict[str, np.ndarray[Any, Any]]:
        board = np.asarray(self.squares).reshape(3, 3)
        mark = self.possible_agents.index(agent) + 1
        observation = np.stack([board == mark, board == 3 - mark], axis=-1).astype(np.int8)
        mask = np.zeros(SQUARES, dtype=np.int8)
        if agent == self.agent_selection:
            mask[[i for i, square in enumerate(self.squares) if square == 0]] = 1
        return {"observation": observation, "action_mask": mask}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.squares = [0] * SQUARES
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos: dict[str, dict[str, Any]] = {agent: {} for agent in self.agents}
        self._selector.reinit(self.agents)
        self.agent_selection = self._selector.reset()

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        square = int(action)
        if self.squares[square]:
            raise ValueError(f"{agent} played square {square}, which is taken")
        self._cumulative_rewards[agent] = 0.0
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self.squares[square] = self.possible_agents.index(agent) + 1
        won = winner(self.squares)
        if won:
            for player in self.agents:
                self.rewards[player] = 1.0 if self.possible_agents.index(player) + 1 == won else -1.0
        if won or 0 not in self.squares:
            self.terminations = dict.fromkeys(self.agents, True)
        self._accumulate_rewards()
        self.agent_selection = self._selector.next()


def env(**kwargs: Any) -> Any:
    """The AEC environment, wrapped as ``tictactoe_v3`` is: an illegal move loses (-1) and
    ends the game."""
    wrapped = TerminateIllegalWrapper(TicTacToe(**kwargs), illegal_reward=-1)
    return OrderEnforcingWrapper(AssertOutOfBoundsWrapper(wrapped))


@functools.cache
def _value(squares: tuple[int, ...]) -> int:
    """The game's value for the player to move, whose marks are 1 (the other's are 2)."""
    if winner(squares):
        return -1  # the previous move, the other player's, won
    free = [i for i, square in enumerate(squares) if square == 0]
    if not free:
        return 0
    return max(-_value(_swap(_play(squares, i))) for i in free)


def _play(squares: tuple[int, ...], square: int) -> tuple[int, ...]:
    return (*squares[:square], 1, *squares[square + 1 :])


def _swap(squares: tuple[int, ...]) -> tuple[int, ...]:
    return tuple((0, 2, 1)[square] for square in squares)


def best_moves(squares: Sequence[int]) -> list[int]:
    """The free squares that keep the best outcome for the player to move (marks 1)."""
    free = [i for i, square in enumerate(squares) if square == 0]
    values = {i: -_value(_swap(_play(tuple(squares), i))) for i in free}
    best = max(values.values())
    return [i for i in free if values[i] == best]


class MinimaxMuscle(Muscle):
    """Plays a best move (ties drawn at random), or a random legal move with probability
    ``epsilon``. Reads its agent's ``.observation`` and ``.action_mask`` sensors; when the
    mask is all 0 (not its turn, under ``vanilla``) it sets square 0, which is ignored."""

    def __init__(self, epsilon: float = 0.0) -> None:
        self.epsilon = epsilon
        self._rng = np.random.default_rng(0)
        self._ids = ("", "", "")

    def setup(self, sensors: Sequence[SensorInfo], actuators: Sequence[ActuatorInfo], seed: int) -> None:
        super().setup(sensors, actuators, seed)
        self._rng = np.random.default_rng(seed)
        ids, who = [s.id for s in sensors], "the tic-tac-toe muscle"
        self._ids = (
            one_id(ids, ".observation", who),
            one_id(ids, ".action_mask", who),
            one_id([a.id for a in actuators], ".action", who),
        )

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        observation_id, mask_id, action_id = self._ids
        legal = [int(i) for i in np.flatnonzero(np.asarray(sensors[mask_id]))]
        if not legal:
            return {action_id: 0}
        if self._rng.random() < self.epsilon:
            return {action_id: legal[int(self._rng.integers(len(legal)))]}
        planes = np.asarray(sensors[observation_id]).reshape(SQUARES, 2)
        squares = [1 if mine else 2 if theirs else 0 for mine, theirs in planes.tolist()]
        moves = best_moves(squares)
        return {action_id: moves[int(self._rng.integers(len(moves)))]}

    def save_state(self, path: Path) -> None:
        (path / STATE_FILE).write_text(json.dumps({"rng": self._rng.bit_generator.state}))

    def load_state(self, path: Path) -> None:
        self._rng.bit_generator.state = json.loads((path / STATE_FILE).read_text())["rng"]
