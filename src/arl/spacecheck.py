"""Is a value in a space? Fast enough to ask of every setpoint of every step.

Gymnasium's ``space.contains`` costs 7 µs for a float in a scalar ``Box`` (it builds an
array and warns about it): ten actuators would cost a sixth of a dummy step. So
:func:`membership` builds, once per space, a test with a fast path for the values agents
send most (a Python float in a scalar ``Box``, an int in a ``Discrete``: about 0.1 µs),
falling back to a general one.

What is accepted is gymnasium's ``contains`` with one difference: a float ``Box`` takes
numbers of any float or integer dtype (a ``float64`` array in a ``float32`` Box, a
Python int), as long as the shape is the space's and every value lies within the bounds
(NaN lies within none); gymnasium refuses a ``float64`` array there, which agents send
all the time and environments take. An integer ``Box`` takes integer values only, and a
``Discrete`` an integer (``int``, a numpy integer, or a 0-d integer array), as gymnasium has it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

Test = Callable[[Any], bool]
"""True if the value lies in the space the test was made for."""

_NUMBER_KINDS = frozenset("biuf")  # numpy dtype kinds a float Box takes
_INTEGER_KINDS = frozenset("biu")


class SetpointError(ValueError):
    """A setpoint outside its actuator's space (raised where the environment is hosted)."""


def membership(space: spaces.Space[Any]) -> Test:
    """A test of whether a value lies in ``space`` (see the module's doc for what it takes)."""
    if isinstance(space, spaces.Discrete):
        return _discrete(int(space.start), int(space.start + space.n))
    if isinstance(space, spaces.Box):
        return _box(space)
    return lambda value: _contains(space, value)


def accepts(space: spaces.Space[Any]) -> str:
    """What ``space`` takes, in words (for an error message)."""
    if isinstance(space, spaces.Discrete):
        first = int(space.start)
        return f"an integer from {first} to {first + int(space.n) - 1}"
    if isinstance(space, spaces.Box):
        kind = "integer" if _integral(space) else "number"
        what = f"a {kind}" if space.shape == () else f"an array of shape {space.shape} of {kind}s"
        return f"{what} from {_bound(space.low)} to {_bound(space.high)}"
    return f"a value in {space}"


def outside_space(actuator: str, value: Any, space: spaces.Space[Any]) -> str:
    """The message for ``value`` set on ``actuator`` (its qualified id) outside ``space``."""
    what = f"actuator {actuator!r} was set to {shown(value)}"
    return f"{what}, which is not in its space {space}: it takes {accepts(space)}"


def about(message: str, actuator: str) -> bool:
    """Whether :func:`outside_space`'s ``message`` is about ``actuator``."""
    return message.startswith(f"actuator {actuator!r} ")


def shown(value: Any, limit: int = 120) -> str:
    """``value`` for an error message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _discrete(start: int, stop: int) -> Test:
    def test(value: Any) -> bool:
        if type(value) is int:
            return start <= value < stop
        if isinstance(value, int | np.integer) or (
            isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in _INTEGER_KINDS
        ):
            return start <= int(value) < stop
        return False

    return test


def _box(space: spaces.Box) -> Test:
    integral = _integral(space)
    kinds = _INTEGER_KINDS if integral else _NUMBER_KINDS
    shape, low, high = space.shape, space.low, space.high

    def general(value: Any) -> bool:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):  # a ragged nesting of lists
            return False
        # One pass of ufuncs (np.all twice costs twice as much); NaN fails both comparisons.
        return array.dtype.kind in kinds and array.shape == shape and bool(((array >= low) & (array <= high)).all())

    if shape != () or integral:
        return general
    lowest, highest = float(low), float(high)

    def scalar(value: Any) -> bool:
        if isinstance(value, float):  # what most agents send (a numpy float64 is one): no array made
            return lowest <= float(value) <= highest  # (float(): a numpy float would compare to a numpy bool)
        return general(value)

    return scalar


def _integral(space: spaces.Box) -> bool:
    return bool(np.issubdtype(space.dtype, np.integer))


def _bound(values: np.ndarray[Any, Any]) -> str:
    """A Box's low or high: one number when every element has it, else the array."""
    flat = np.asarray(values).ravel()
    if flat.size and bool(np.all(flat == flat[0])):
        return repr(flat[0].item())
    return shown(np.asarray(values).tolist(), 80)


def _contains(space: spaces.Space[Any], value: Any) -> bool:
    try:
        return bool(space.contains(value))
    except (TypeError, ValueError, AttributeError, AssertionError):  # a value of the wrong kind
        return False
