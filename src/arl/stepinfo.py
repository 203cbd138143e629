"""What an environment says of a step besides its readings (gymnasium's ``info``), made
fit for the store: JSON text, or None when there is nothing to keep.

Made where the environment runs, once a step, before the reply crosses the codec (which
would refuse what it cannot send):

* numpy arrays become lists, numpy scalars numbers, NaN and infinity null (as the
  store's other JSON columns have them), mappings of any kind objects, sequences (a
  deque) and sets lists, bytes hex text;
* any other value JSON cannot hold (an object of the environment's, a complex number)
  is stored as its ``repr``, cut to :data:`REPR_LIMIT` characters; a key that is not
  text becomes its ``str`` (or repr, as a value would);
* nesting deeper than :data:`MAX_DEPTH` is stored as the repr of what lies below;
* an info whose text is longer than :data:`MAX_BYTES` is stored as
  ``{"_truncated": <its length in bytes>}``: the step is kept, its info is not. An array
  or bytes too big for the cap on its own (a frame) is not encoded at all: the marker
  then holds the least its text would take;
* an empty or missing info is None (the column is NULL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any

import numpy as np
import orjson

from arl.codec import to_jsonable

MAX_BYTES = 4096
"""The most bytes of JSON text one step's info may take in the store."""

MAX_DEPTH = 16
"""Nesting kept; below it, values are stored as their repr."""

REPR_LIMIT = 200
"""Characters of a value's repr kept when it is stored as one."""

TRUNCATED = "_truncated"
"""The key of the marker stored instead of an info over :data:`MAX_BYTES`."""

_OPTIONS = orjson.OPT_NON_STR_KEYS
_BYTES = (bytes, bytearray, memoryview)  # sequences of a kind, stored as hex text


class _TooBig(Exception):
    """An array or bytes whose text alone would pass :data:`MAX_BYTES` (raised before it
    is encoded: an Atari frame would cost milliseconds a step, only to be dropped)."""

    def __init__(self, least: int) -> None:
        super().__init__(least)
        self.least = least  # the fewest bytes its text would take


def info_text(info: Any) -> str | None:
    """``info`` as the JSON text the store keeps (see the module's doc); None if empty."""
    if info is None:
        return None
    if not isinstance(info, Mapping):
        info = {"info": info}  # the column holds an object: say what came, under a key
    elif not info:
        return None
    elif not isinstance(info, dict):
        info = dict(info)  # orjson encodes dicts only; any other mapping would become its repr
    try:
        data = _dumps(info)
    except _TooBig as big:
        return _truncated(big.least)
    if len(data) > MAX_BYTES:
        return _truncated(len(data))
    return data.decode()


def _dumps(info: dict[Any, Any]) -> bytes:
    try:
        return orjson.dumps(info, default=_plain, option=_OPTIONS)
    except TypeError as exc:
        if isinstance(exc.__cause__, _TooBig):  # (orjson raises what its hook raised as the cause)
            raise exc.__cause__ from None
        # keys orjson refuses, circular or too deep nesting: the slow, careful way
        return orjson.dumps(_walk(info, 0), option=_OPTIONS)


def _truncated(size: int) -> str:
    return orjson.dumps({TRUNCATED: size}).decode()


def _plain(value: Any) -> Any:
    """orjson's hook for what it cannot encode: numpy data made plain, mappings objects,
    sequences and sets lists, the rest its repr."""
    if isinstance(value, np.ndarray) and 2 * value.size + 1 > MAX_BYTES:
        raise _TooBig(2 * value.size + 1)  # each element a character and a comma at least, and brackets
    if isinstance(value, _BYTES):
        size = value.nbytes if isinstance(value, memoryview) else len(value)
        if 2 * size + 2 > MAX_BYTES:
            raise _TooBig(2 * size + 2)  # two hex digits a byte, and quotes
        return bytes(value).hex()
    if isinstance(value, Set):
        return list(value)
    converted = to_jsonable(value)
    if converted is not value:
        return converted
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):  # a deque, a range
        return list(value)
    return _repr(value)


def _walk(value: Any, depth: int) -> Any:
    """``value`` as plain JSON data, keys made text, nesting cut at :data:`MAX_DEPTH`."""
    if depth >= MAX_DEPTH:
        return _repr(value)
    if isinstance(value, Mapping):
        return {_key(k): _walk(v, depth + 1) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, int) or -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, Sequence | Set) and not isinstance(value, _BYTES):  # (a deque, a range too)
        return [_walk(v, depth + 1) for v in value]
    plain = _plain(value)
    return plain if isinstance(plain, str) else _walk(plain, depth + 1)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a user's __repr__: whatever it raises, the step is stored
        text = f"<{type(value).__name__}: repr raised {type(exc).__name__}>"
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."
