"""Gymnasium spaces as plain data, so they can cross the wire and sit in the store; and
the ids an environment adapter gives the parts of a space."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from arl.errors import ProtocolError


def describe(space: spaces.Space[Any]) -> dict[str, Any]:
    """A plain-data description of ``space`` that :func:`build` turns back into it."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).str,
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [describe(s) for s in space.spaces]}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: describe(s) for k, s in space.spaces.items()}}
    raise TypeError(f"spaces of type {type(space).__name__} are not supported yet")


def build(description: dict[str, Any]) -> spaces.Space[Any]:
    """The space :func:`describe` described."""
    kind = description.get("type")
    if kind == "Box":
        dtype = np.dtype(description["dtype"])
        low = np.asarray(description["low"], dtype=dtype)
        high = np.asarray(description["high"], dtype=dtype)
        return spaces.Box(low=low, high=high, shape=tuple(description["shape"]), dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(description["n"], start=description.get("start", 0))
    if kind == "MultiBinary":
        return spaces.MultiBinary(description["n"])
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(description["nvec"])
    if kind == "Tuple":
        return spaces.Tuple([build(d) for d in description["spaces"]])
    if kind == "Dict":
        return spaces.Dict({k: build(d) for k, d in description["spaces"].items()})
    raise ProtocolError(f"unknown space description {kind!r}")


def keys(space: spaces.Space[Any]) -> list[str] | None:
    """The keys of a ``Dict`` space, whose parts become ids of their own; None for any other."""
    return list(space.spaces) if isinstance(space, spaces.Dict) else None


def parts(space: spaces.Space[Any], single: str) -> list[tuple[str, spaces.Space[Any]]]:
    """``(id, space)`` of each sensor or actuator ``space`` gives: one per key of a ``Dict``
    space, else the whole space under the id ``single``."""
    if isinstance(space, spaces.Dict):
        return list(space.spaces.items())
    return [(single, space)]
