"""Experience replay for value-based learners, in numpy: n-step returns per worker and a
fixed-size ring buffer sampled uniformly. No torch here, so it is tested (and usable)
without it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Transition:
    """An n-step transition: from ``obs`` taking ``action``, the discounted sum ``ret`` of
    the next m ≤ n rewards, then ``next_obs``, whose value counts ``discount`` times
    (gamma ** m, or 0 when the episode terminated within those m steps)."""

    obs: np.ndarray[Any, Any]
    action: int
    ret: float
    next_obs: np.ndarray[Any, Any]
    discount: float


class NStep:
    """Turns one worker's 1-step transitions into n-step ones.

    Each worker needs its own: transitions of different workers interleave. An episode's
    end (terminated, or truncated: arl marks the last transition of an episode it cut)
    flushes what is pending, every step of it with a shorter return. So does a step that
    does not start where the last one ended: a new episode began without the brain
    hearing the last one end (its worker's process died, and a restart resumed it), and
    the last one's steps bootstrap from where it stopped, never from the new episode.
    """

    def __init__(self, n: int, gamma: float) -> None:
        self.n, self.gamma = n, gamma
        self._window: deque[tuple[np.ndarray[Any, Any], int, float]] = deque()
        self._last_next: np.ndarray[Any, Any] | None = None

    def add(
        self,
        obs: np.ndarray[Any, Any],
        action: int,
        reward: float,
        next_obs: np.ndarray[Any, Any],
        terminated: bool,
        truncated: bool,
    ) -> list[Transition]:
        """Take one step; return the n-step transitions it completes (oldest first)."""
        cut: list[Transition] = []
        if self._window and self._last_next is not None and not np.array_equal(obs, self._last_next, equal_nan=True):
            cut = self._flush(self._last_next, terminal=False)
        self._last_next = next_obs
        self._window.append((obs, action, reward))
        if terminated or truncated:
            return cut + self._flush(next_obs, terminal=terminated)
        if len(self._window) == self.n:
            return [*cut, self._pop(next_obs, terminal=False)]
        return cut

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        """What a state keeps of this window (the steps pending, where the last ended)."""
        out: dict[str, np.ndarray[Any, Any]] = {
            "actions": np.asarray([a for _, a, _ in self._window], np.int64),
            "rewards": np.asarray([r for _, _, r in self._window], np.float64),
        }
        if self._window:
            out["obs"] = np.stack([o for o, _, _ in self._window])
        if self._last_next is not None:
            out["last_next"] = np.asarray(self._last_next)
        return out

    def restore(self, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
        """Go on from :meth:`arrays`."""
        obs = arrays.get("obs")
        actions, rewards = arrays["actions"], arrays["rewards"]
        self._window = deque(
            (obs[i], int(actions[i]), float(rewards[i])) for i in range(len(actions)) if obs is not None
        )
        self._last_next = arrays.get("last_next")

    def _flush(self, next_obs: np.ndarray[Any, Any], terminal: bool) -> list[Transition]:
        out = []
        while self._window:
            out.append(self._pop(next_obs, terminal))
        return out

    def _pop(self, next_obs: np.ndarray[Any, Any], terminal: bool) -> Transition:
        ret = 0.0
        for k, (_, _, reward) in enumerate(self._window):
            ret += self.gamma**k * reward
        obs, action, _ = self._window.popleft()
        discount = 0.0 if terminal else self.gamma ** (len(self._window) + 1)
        return Transition(obs, action, ret, next_obs, discount)


class ReplayBuffer:
    """The last ``capacity`` transitions, sampled uniformly with replacement."""

    FIELDS = ("obs", "action", "ret", "next_obs", "discount")

    def __init__(self, capacity: int, obs_shape: tuple[int, ...]) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), np.float32)
        self.action = np.zeros(capacity, np.int64)
        self.ret = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), np.float32)
        self.discount = np.zeros(capacity, np.float32)
        self.size = 0
        self.cursor = 0  # where the next transition goes

    def __len__(self) -> int:
        return self.size

    def add(self, t: Transition) -> None:
        i = self.cursor
        self.obs[i], self.action[i], self.ret[i] = t.obs, t.action, t.ret
        self.next_obs[i], self.discount[i] = t.next_obs, t.discount
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray[Any, Any]]:
        index = rng.integers(0, self.size, size=batch)
        return {name: getattr(self, name)[index] for name in self.FIELDS}

    def save(self, path: Path) -> None:
        """Write the stored part (not the empty slots) to ``path``, an ``.npz`` file."""
        arrays = {name: getattr(self, name)[: self.size] for name in self.FIELDS}
        np.savez(path, cursor=np.int64(self.cursor), **arrays)

    def load(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            size = len(data["action"])
            if size > self.capacity or data["obs"].shape[1:] != self.obs.shape[1:]:
                raise ValueError(
                    f"{path}: a buffer of {size} transitions of shape {data['obs'].shape[1:]} does not fit this "
                    f"brain's ({self.capacity} of shape {self.obs.shape[1:]}); give it the buffer_size it had"
                )
            for name in self.FIELDS:
                getattr(self, name)[:size] = data[name]
            self.size, self.cursor = size, int(data["cursor"]) % self.capacity
