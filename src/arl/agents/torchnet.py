"""The torch side of what the reference agents share: their MLPs, laid out as
:class:`arl.agents.common.NumpyMLP` reads them back from the weights alone. Imported
only by the agents' torch halves (qnet.py, actorcritic.py)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(
    inputs: int, hidden: Sequence[int], outputs: int, activation: str = "relu", out_gain: float | None = None
) -> nn.Sequential:
    """Linear layers with ``activation`` between them. With ``out_gain`` they are
    orthogonally initialised as stable-baselines3 does (gain sqrt 2 inside, ``out_gain``
    on the last layer, zero biases); without, torch's own initialisation stands."""
    layers: list[nn.Module] = []
    sizes = [inputs, *hidden]
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(sizes[-1], outputs))
    if out_gain is not None:
        linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
        for k, layer in enumerate(linears):
            nn.init.orthogonal_(layer.weight, gain=out_gain if k == len(linears) - 1 else math.sqrt(2))
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)
