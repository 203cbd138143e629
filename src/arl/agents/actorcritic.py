"""The torch half of :class:`arl.agents.ppo.PPOBrain`: its actor-critic network, Adam and
the clipped-surrogate gradient step. Imported only when a PPO brain is set up, so that
torch loads in the processes that host one and nowhere else."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from arl.agents.torchnet import adam, load_optimizer, mlp, seeded

WEIGHTS_FILE = "ppo.pt"
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class ActorCritic(nn.Module):
    """Separate policy (``pi``) and value (``vf``) networks; for Box actions a learned
    log standard deviation per action dimension (``log_std``), independent of the input."""

    def __init__(
        self, inputs: int, hidden: Sequence[int], outputs: int, activation: str, continuous: bool, log_std_init: float
    ) -> None:
        super().__init__()
        self.pi = mlp(inputs, hidden, outputs, activation, out_gain=0.01)
        self.vf = mlp(inputs, hidden, 1, activation, out_gain=1.0)
        self.log_std = nn.Parameter(torch.full((outputs,), log_std_init)) if continuous else None


class PPOLearner:
    """PPO's gradient step on minibatches of a rollout, and the values and
    log-probabilities the brain needs before it.

    ``bounds``: for Box actions, the space's (low, high), flattened; the muscle clips
    its samples to them, so an action on a bound has the probability of all the samples
    at or beyond it (a censored Gaussian: the exact likelihood of a clipped action)."""

    def __init__(
        self,
        inputs: int,
        hidden: Sequence[int],
        outputs: int,
        *,
        activation: str,
        bounds: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None,
        seed: int,
        learning_rate: float,
        log_std_init: float,
        max_grad_norm: float,
        device: str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        with seeded(seed):
            self.net = ActorCritic(inputs, hidden, outputs, activation, bounds is not None, log_std_init)
        self.net.to(self.device)
        self.bounds = None if bounds is None else (self._tensor(bounds[0]), self._tensor(bounds[1]))
        self.optimizer = adam(self.net.parameters(), self.device, lr=learning_rate, eps=1e-5)
        self.max_grad_norm = max_grad_norm

    def _tensor(self, array: np.ndarray[Any, Any]) -> torch.Tensor:
        """``array`` on this learner's device."""
        return torch.from_numpy(array).to(self.device)

    def values(self, obs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        with torch.no_grad():
            values: np.ndarray[Any, Any] = self.net.vf(self._tensor(obs)).squeeze(1).cpu().numpy()
            return values

    def log_probs(self, obs: np.ndarray[Any, Any], actions: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        with torch.no_grad():
            logp, _ = self._distribution(self._tensor(obs), self._tensor(actions))
            return logp.cpu().numpy()

    def _distribution(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each action's log-probability under the policy, and the policy's entropy."""
        out = self.net.pi(obs)
        if self.net.log_std is None:  # Discrete: a categorical over the logits
            logits = torch.log_softmax(out, dim=1)
            entropy = -(logits.exp() * logits).sum(dim=1)
            return logits.gather(1, actions.unsqueeze(1)).squeeze(1), entropy
        log_std = self.net.log_std.expand_as(out)
        logp = -0.5 * ((actions - out) / log_std.exp()) ** 2 - log_std - _HALF_LOG_2PI
        if self.bounds is not None:
            logp = self._censored(logp, out, log_std, actions)
        # The entropy of the Gaussian before clipping: what the bonus asks to keep wide.
        return logp.sum(dim=1), (0.5 + _HALF_LOG_2PI + log_std).sum(dim=1)

    def _censored(
        self, logp: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        assert self.bounds is not None
        low, high = self.bounds
        at_low, at_high = actions <= low, actions >= high
        std = log_std.exp()
        # Standardised bounds, zero where unused: an infinite bound in a branch torch.where
        # discards would still send NaN through the backward pass.
        z_low = torch.where(at_low, (torch.where(at_low, low, 0.0) - mean) / std, 0.0)
        z_high = torch.where(at_high, (mean - torch.where(at_high, high, 0.0)) / std, 0.0)
        logp = torch.where(at_low, torch.special.log_ndtr(z_low), logp)
        return torch.where(at_high, torch.special.log_ndtr(z_high), logp)

    def step(
        self,
        batch: Mapping[str, np.ndarray[Any, Any]],
        *,
        clip_range: float,
        learning_rate: float,
        ent_coef: float,
        vf_coef: float,
        normalize_advantage: bool,
    ) -> dict[str, float]:
        """One gradient step on a minibatch (``obs``, ``action``, ``old_logp``,
        ``advantage``, ``ret``); returns its losses, approximate KL and clip fraction."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        obs = self._tensor(batch["obs"])
        advantage = self._tensor(batch["advantage"])
        if normalize_advantage and len(advantage) > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        logp, entropy = self._distribution(obs, self._tensor(batch["action"]))
        log_ratio = logp - self._tensor(batch["old_logp"])
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1 - clip_range, 1 + clip_range)
        policy_loss = -torch.min(ratio * advantage, clipped * advantage).mean()
        value_loss = nn.functional.mse_loss(self.net.vf(obs).squeeze(1), self._tensor(batch["ret"]))
        entropy_mean = entropy.mean()
        loss = policy_loss - ent_coef * entropy_mean + vf_coef * value_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(self.net.parameters(), self.max_grad_norm, foreach=True)
        self.optimizer.step()
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()  # Schulman's low-variance estimator
            clip_fraction = ((ratio - 1).abs() > clip_range).float().mean()
        return {
            "loss": float(loss.item()),
            "policy_loss": float(policy_loss.item()),
            "value_loss": float(value_loss.item()),
            "entropy": float(entropy_mean.item()),
            "approx_kl": float(approx_kl.item()),
            "clip_fraction": float(clip_fraction.item()),
        }

    def weights(self) -> dict[str, np.ndarray[Any, Any]]:
        """What a muscle acts with: the policy network's parameters and ``log_std``, as
        numpy arrays (copies, on the CPU), by parameter name. The value network stays here."""
        return {
            name: t.detach().cpu().numpy().copy()
            for name, t in self.net.state_dict().items()
            if name.startswith("pi.") or name == "log_std"
        }

    def save(self, directory: Path) -> None:
        state = {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}
        torch.save(state, directory / WEIGHTS_FILE)

    def load(self, directory: Path) -> None:
        path = directory / WEIGHTS_FILE
        # Tensors and numbers only, never code; onto this learner's device, whatever the saver's.
        state = torch.load(path, map_location=self.device, weights_only=True)
        try:
            self.net.load_state_dict(state["net"])
        except RuntimeError as exc:
            raise ValueError(
                f"{path}: its network does not fit this brain's (give it the hidden sizes and spaces it was saved "
                f"with): {exc}"
            ) from exc
        load_optimizer(self.optimizer, state["optimizer"])
