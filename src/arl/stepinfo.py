"""What an environment says of a step besides its readings (gymnasium's ``info``), made
fit for the store: JSON text, or None when there is nothing to keep.

Made where the environment runs, once a step, before the reply crosses the codec (which
would refuse what it cannot send):

* numpy arrays become lists, numpy scalars numbers, NaN and infinity null (as the
  store's other JSON columns have them), sets lists, bytes hex text;
* any other value JSON cannot hold (an object of the environment's, a complex number)
  is stored as its ``repr``, cut to :data:`REPR_LIMIT` characters; a key that is not
  text becomes its ``str`` (or repr, as a value would);
* nesting deeper than :data:`MAX_DEPTH` is stored as the repr of what lies below;
* an info whose text is longer than :data:`MAX_BYTES` is stored as
  ``{"_truncated": <its length in bytes>}``: the step is kept, its info is not;
* an empty or missing info is None (the column is NULL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def info_text(info: Any) -> str | None:
    """``info`` as the JSON text the store keeps (see the module's doc); None if empty."""
    if info is None:
        return None
    if not isinstance(info, Mapping):
        info = {"info": info}  # the column holds an object: say what came, under a key
    elif not info:
        return None
    try:
        data = orjson.dumps(info, default=_plain, option=_OPTIONS)
    except TypeError:  # keys orjson refuses, circular or too deep nesting: the slow, careful way
        data = orjson.dumps(_walk(info, 0), option=_OPTIONS)
    if len(data) > MAX_BYTES:
        return orjson.dumps({TRUNCATED: len(data)}).decode()
    return data.decode()


def _plain(value: Any) -> Any:
    """orjson's hook for what it cannot encode: numpy data made plain, the rest its repr."""
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    converted = to_jsonable(value)
    if converted is not value:
        return converted
    return _repr(value)


def _walk(value: Any, depth: int) -> Any:
    """``value`` as plain JSON data, keys made text, nesting cut at :data:`MAX_DEPTH`."""
    if depth >= MAX_DEPTH:
        return _repr(value)
    if isinstance(value, Mapping):
        return {_key(k): _walk(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_walk(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, int) or -(2**63) <= value < 2**64 else str(value)
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
