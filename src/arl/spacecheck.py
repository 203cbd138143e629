"""Is a value in a space? Fast enough to ask of every setpoint of every step.

Gymnasium's ``space.contains`` costs 7 µs for a float in a scalar ``Box`` (it builds an
array and warns about it): ten actuators would cost a sixth of a dummy step. So
:func:`membership` builds, once per space, a test with a fast path for the values agents
send most (a Python float in a scalar ``Box``, an int in a ``Discrete``: about 0.1 µs),
falling back to a general one. A ``Dict`` or ``Tuple`` space is tested part by part with
the tests of its parts, so what follows holds inside them too.

What is accepted is gymnasium's ``contains`` with one difference: a float ``Box`` takes
numbers of any float or integer dtype (a ``float64`` array in a ``float32`` Box, a
Python int), as long as the shape is the space's and every value, cast to the space's
dtype as gymnasium casts a value it is given, lies within the bounds (so ``0.7`` lies in
a scalar ``float32`` ``Box(-0.7, 0.7)``, whose bound is 0.699999988; NaN lies in none);
gymnasium refuses a ``float64`` array there, which agents send all the time and
environments take. An integer ``Box`` takes integer values only, and a ``Discrete`` an
integer (``int``, a numpy integer, or a 0-d integer array), as gymnasium has it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    if isinstance(space, spaces.Dict):
        return _dict({key: membership(part) for key, part in space.spaces.items()})
    if isinstance(space, spaces.Tuple):
        return _tuple([membership(part) for part in space.spaces])
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


def _dict(tests: dict[str, Test]) -> Test:
    """Gymnasium's ``Dict.contains``, with each key's value tested by its part's test."""

    def test(value: Any) -> bool:
        return (
            isinstance(value, Mapping)
            and value.keys() == tests.keys()
            and all(tests[key](part) for key, part in value.items())
        )

    return test


def _tuple(tests: list[Test]) -> Test:
    """Gymnasium's ``Tuple.contains`` (a list or an array of the parts too), part by part."""

    def test(value: Any) -> bool:
        if isinstance(value, list | np.ndarray):
            value = tuple(value)
        return (
            isinstance(value, tuple)
            and len(value) == len(tests)
            and all(part_test(part) for part_test, part in zip(tests, value, strict=True))
        )

    return test


def _box(space: spaces.Box) -> Test:
    integral = _integral(space)
    kinds = _INTEGER_KINDS if integral else _NUMBER_KINDS
    shape = space.shape
    # A float Box compares what a value becomes in its dtype (gymnasium casts a value it
    # is given): the furthest float64 values that cast within the bounds compare alike,
    # with no cast of each value (a cast costs as much as the test, and warns on overflow).
    low, high = (space.low, space.high) if integral else _reach(space.low, space.high, space.dtype)

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


def _reach(low: np.ndarray[Any, Any], high: np.ndarray[Any, Any], dtype: np.dtype[Any]) -> tuple[Any, Any]:
    """For a float Box's bounds, the float64 arrays ``lo``, ``hi`` such that a float64 ``x``
    lies in ``[lo, hi]`` exactly when ``x`` cast to ``dtype`` lies in ``[low, high]``."""
    if not (dtype.kind == "f" and dtype.itemsize < 8):  # float64 (or wider): compared as they are
        return low, high
    return _furthest(low, dtype, upward=False), _furthest(high, dtype, upward=True)


_SIGN = np.uint64(1 << 63)


def _furthest(bound: np.ndarray[Any, Any], dtype: np.dtype[Any], upward: bool) -> np.ndarray[Any, Any]:
    """Elementwise, the float64 furthest from ``bound`` (up or down) that ``dtype`` casts
    to no further than ``bound``: a bisection over the float64s between the bound and the
    dtype's next value past it (a cast is monotonic), as the unsigned integers of
    :func:`_keys`, in which a float's neighbours are one key away. Done once for each
    distinct bound (a Box has one or two, mostly)."""
    distinct, where = np.unique(bound, return_inverse=True)
    start = distinct.astype(np.float64)  # exact: a narrower float is a float64
    one = np.uint64(1)
    with np.errstate(over="ignore"):  # past the dtype's range is infinity, as meant
        good = _keys(start)  # within, trivially
        # beyond: the dtype's next value past the bound (itself when the bound is infinite)
        bad = _keys(np.nextafter(distinct, np.inf if upward else -np.inf).astype(np.float64))
        while True:
            gap = bad - good if upward else good - bad
            open_ = gap > one
            if not open_.any():
                return _floats(good)[where].reshape(bound.shape)
            middle = good + gap // 2 if upward else good - gap // 2
            cast = _floats(middle).astype(dtype)
            within = cast <= start if upward else cast >= start
            good = np.where(open_ & within, middle, good)
            bad = np.where(open_ & ~within, middle, bad)


def _keys(floats: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """float64s as unsigned integers in the floats' order (-inf lowest, +inf highest)."""
    bits = np.array(floats, np.float64).view(np.uint64)  # (a copy: 0-d arrays stay 0-d)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _floats(keys: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The float64s of :func:`_keys`."""
    bits = np.where(keys & _SIGN, keys & ~_SIGN, ~keys).astype(np.uint64)
    return bits.view(np.float64)


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
