"""What the reference agents share, numpy only (a muscle's process needs no torch): the
parameter types their files check, the spaces they accept, and the forward pass of an
MLP read back from its weights alone, on a batch of inputs (batched inference), in
numpy on the CPU or in torch on another device."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from annotated_types import Ge, Le
from gymnasium import spaces

from arl.api import ActuatorInfo, SensorInfo

Count = Annotated[int, Ge(1)]
Fraction = Annotated[float, Ge(0), Le(1)]
Activation = Literal["tanh", "relu"]
Array = np.ndarray[Any, Any]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}


def box_sensor_and_actuator(
    owner: str,
    sensors: Sequence[SensorInfo],
    actuators: Sequence[ActuatorInfo],
    kinds: tuple[type[spaces.Space[Any]], ...] = (spaces.Discrete,),
) -> tuple[str, str]:
    """The ids of the one Box sensor and the one actuator of a space in ``kinds`` that
    ``owner`` works with; a clear error naming what it got otherwise."""
    if len(sensors) != 1 or not isinstance(sensors[0].space, spaces.Box):
        got = [f"{s.id}: {s.space}" for s in sensors]
        raise ValueError(f"{owner} needs exactly one sensor with a Box space (such as gym's 'obs'); it got {got}")
    if len(actuators) != 1 or not isinstance(actuators[0].space, kinds):
        got = [f"{a.id}: {a.space}" for a in actuators]
        wanted = " or a ".join(kind.__name__ for kind in kinds)
        raise ValueError(f"{owner} needs exactly one actuator with a {wanted} space (such as 'action'); it got {got}")
    return sensors[0].id, actuators[0].id


class Network(Protocol):
    """A policy's forward pass: a batch of inputs (rows) in, a batch of outputs out, numpy
    both (where it runs is its own business)."""

    def __call__(self, x: Array) -> Array: ...


def linear_layers(weights: Mapping[str, Array], prefix: str) -> list[tuple[Array, Array]]:
    """``(weight, bias)`` of each linear layer ``<prefix><i>`` of a torch ``nn.Sequential``
    in order of ``i``: the layout the agents' torch modules build."""
    layers = sorted(int(name[len(prefix) : -len(".weight")]) for name in weights if _is_weight(name, prefix))
    return [(np.asarray(weights[f"{prefix}{i}.weight"]), np.asarray(weights[f"{prefix}{i}.bias"])) for i in layers]


class NumpyMLP:
    """The forward pass of a torch ``nn.Sequential`` of linear layers from its weights:
    ``<prefix><i>.weight`` and ``<prefix><i>.bias`` of each linear layer ``i``,
    ``activation`` between them (the layout the agents' torch modules build). Takes one
    input (a vector) or a batch of them (a matrix, one a row)."""

    def __init__(self, weights: Mapping[str, Array], *, prefix: str = "", activation: str = "relu") -> None:
        self.layers = linear_layers(weights, prefix)
        self.activation = ACTIVATIONS[activation]

    def __call__(self, x: Array) -> Array:
        for k, (w, b) in enumerate(self.layers):
            x = x @ w.T + b
            if k < len(self.layers) - 1:
                x = self.activation(x)
        return x


def network_on(device: str, weights: Mapping[str, Array], *, prefix: str = "", activation: str = "relu") -> Network:
    """The network of ``weights`` where a muscle acts: ``cpu`` in numpy (for the small
    batches of acting it beats torch's per-call overhead, and needs no torch), another
    device (``cuda``, ``cuda:1``) in torch, imported here, the weights copied there once.

    The muscles of one process get the same update object from arl: the last network
    built is kept and handed to the next muscle that asks for the same weights on the
    same device, so a broadcast costs one copy to a GPU, not one per worker."""
    global _last_network
    key = (weights, device, prefix, activation)
    last = _last_network
    if last is not None and last[0][0] is weights and last[0][1:] == key[1:]:
        return last[1]
    network: Network
    if device == "cpu":
        network = NumpyMLP(weights, prefix=prefix, activation=activation)
    else:
        from arl.agents.torchnet import TorchMLP  # torch: only where a muscle acts on another device

        network = TorchMLP(weights, prefix=prefix, activation=activation, device=device)
    _last_network = (key, network)
    return network


_last_network: tuple[tuple[Mapping[str, Array], str, str, str], Network] | None = None


def _is_weight(name: str, prefix: str) -> bool:
    """``<prefix><i>.weight``: a linear layer's weight (not ``log_std``, not another net's)."""
    return name.startswith(prefix) and name.endswith(".weight") and name[len(prefix) : -len(".weight")].isdigit()
