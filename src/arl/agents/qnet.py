"""The torch half of :class:`arl.agents.dqn.DQNBrain`: its Q-network, target network,
optimizer and update step. Imported only when a DQN brain is set up, so that torch
loads in the processes that host one and nowhere else (not even the check of a file
that names it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from arl.agents.torchnet import adam, load_optimizer, mlp, seeded

WEIGHTS_FILE = "dqn.pt"


class QLearner:
    """Double Q-learning on batches of n-step transitions, with a target network."""

    def __init__(
        self,
        inputs: int,
        hidden: Sequence[int],
        actions: int,
        *,
        seed: int,
        learning_rate: float,
        max_grad_norm: float,
        double: bool,
        device: str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        with seeded(seed):
            self.online = mlp(inputs, hidden, actions).to(self.device)
            # Overwritten at once; built here for the generator's sake.
            self.target = mlp(inputs, hidden, actions).to(self.device)
        self.target.load_state_dict(self.online.state_dict())
        self.target.requires_grad_(False)
        self.optimizer = adam(self.online.parameters(), self.device, lr=learning_rate)
        self.learning_rate = learning_rate
        self.max_grad_norm, self.double = max_grad_norm, double

    def update(self, batch: Mapping[str, np.ndarray[Any, Any]]) -> float:
        """One gradient step on a batch; returns its (Huber) loss."""
        obs, action, ret, next_obs, discount = (
            torch.from_numpy(batch[name]).to(self.device) for name in ("obs", "action", "ret", "next_obs", "discount")
        )
        with torch.no_grad():
            next_target = self.target(next_obs)
            if self.double:  # the online network picks the action, the target values it
                best = self.online(next_obs).argmax(dim=1, keepdim=True)
                next_value = next_target.gather(1, best).squeeze(1)
            else:
                next_value = next_target.max(dim=1).values
            target = ret + discount * next_value
        q = self.online(obs).gather(1, action.unsqueeze(1)).squeeze(1)
        loss = nn.functional.smooth_l1_loss(q, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(self.online.parameters(), self.max_grad_norm, foreach=True)
        self.optimizer.step()
        return float(loss.item())

    def sync_target(self) -> None:
        self.target.load_state_dict(self.online.state_dict())

    def weights(self) -> dict[str, np.ndarray[Any, Any]]:
        """The online network's parameters as numpy arrays (copies, on the CPU), by parameter name."""
        return {name: t.detach().cpu().numpy().copy() for name, t in self.online.state_dict().items()}

    def save(self, directory: Path) -> None:
        state = {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }
        torch.save(state, directory / WEIGHTS_FILE)

    def load(self, directory: Path) -> None:
        path = directory / WEIGHTS_FILE
        # Tensors and numbers only, never code; onto this brain's device, whatever the saver's.
        state = torch.load(path, map_location=self.device, weights_only=True)
        try:
            self.online.load_state_dict(state["online"])
            self.target.load_state_dict(state["target"])
        except RuntimeError as exc:
            raise ValueError(
                f"{path}: its networks do not fit this brain's (give it the hidden sizes it was saved with): {exc}"
            ) from exc
        load_optimizer(self.optimizer, state["optimizer"])
        for group in self.optimizer.param_groups:  # the file's learning rate, not the save's
            group["lr"] = self.learning_rate
