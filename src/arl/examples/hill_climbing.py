"""A hill-climbing brain: the simplest learner that is not a fixed rule.

It keeps the best parameter vector seen, judged by episode return, and after every
episode hands its muscles a seeded perturbation of that best to try next. The muscles
decide what the parameters mean (gains of a controller, say).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arl.api import Brain, Experience

STATE_FILE = "hill_climber_state.json"  # beside save()'s file, in a state folder


class HillClimber(Brain):
    """Starts from ``start``; perturbs by ``noise`` (one scale, or one per parameter)."""

    def __init__(self, start: Sequence[float], noise: float | Sequence[float] = 0.1) -> None:
        self.best = np.asarray(start, dtype=float)
        self.noise = np.broadcast_to(np.asarray(noise, dtype=float), self.best.shape)
        self.best_return = -np.inf
        self.trying = self.best.copy()
        self.episode_return = 0.0
        self._rng = np.random.default_rng(0)

    def setup(self, sensors: Any, actuators: Any, seed: int) -> None:
        super().setup(sensors, actuators, seed)
        self._rng = np.random.default_rng(seed)

    def learn(self, experience: Experience) -> Any:
        self.episode_return += experience.objective
        if not (experience.terminated or experience.truncated):
            return None
        if self.episode_return >= self.best_return:
            self.best_return, self.best = self.episode_return, self.trying
        self.episode_return = 0.0
        self.trying = self.best + self.noise * self._rng.standard_normal(self.best.shape)
        return self.trying.tolist()

    def policy(self) -> Any:
        return self.trying.tolist()

    def save(self, directory: Path) -> None:
        state = {"best": self.best.tolist(), "best_return": float(self.best_return)}
        (directory / "hill_climber.json").write_text(json.dumps(state))

    def load(self, directory: Path) -> None:
        state = json.loads((directory / "hill_climber.json").read_text())
        self.best, self.best_return = np.asarray(state["best"], dtype=float), float(state["best_return"])
        self.trying = self.best.copy()

    def save_state(self, path: Path) -> None:
        """:meth:`save`, and what a checkpoint leaves out: the parameters being tried,
        the return of the episode so far and the generator that draws the next try."""
        self.save(path)
        state = {
            "trying": self.trying.tolist(),
            "episode_return": self.episode_return,
            "rng": self._rng.bit_generator.state,
        }
        (path / STATE_FILE).write_text(json.dumps(state))

    def load_state(self, path: Path) -> None:
        self.load(path)
        state = json.loads((path / STATE_FILE).read_text())
        self.trying = np.asarray(state["trying"], dtype=float)
        self.episode_return = float(state["episode_return"])
        self._rng.bit_generator.state = state["rng"]
