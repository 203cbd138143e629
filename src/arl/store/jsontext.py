"""Values as JSON text for the store's JSON columns: compact, numpy data made plain, NaN
and infinity stored as null (JSON has neither, and PostgreSQL's JSONB refuses them).

No SQLAlchemy here: the engine hands :func:`to_json_text` to SQLAlchemy as its JSON
serializer, and the writer calls :func:`to_json_text` on its hot path.

The encoder is orjson: 10 to 15 times faster than the standard library's on a step's
small dicts of floats (0.4 against 5.4 µs for 10 readings, measured here), and it writes
NaN and infinity as null by itself. What it writes differs from ``json.dumps(value,
separators=(",", ":"))`` in two ways that keep every value: text outside ASCII is written
as UTF-8 rather than ``\\uXXXX`` escapes, and a float in exponent notation may be spelled
differently (``1.5e-7`` for ``1.5e-07``, ``0.00001`` for ``1e-05``, and, before orjson
3.13, ``1e16`` for ``1e+16``): every float is still written as the shortest text that
reads back as the same float, so every reader gets the same values back, and PostgreSQL's
JSONB, which keeps numbers as numbers, stores exactly what it did.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from arl.codec import to_jsonable

OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
"""Keys that are ints, floats, bools or None are written as JSON writes them (``"1"``,
``"true"``, ``"null"``); datetimes and dataclasses are refused, as the standard library
refuses them, rather than written in a form of orjson's own."""


def jsonable_default(value: Any) -> Any:
    """Called by the encoder only for what it cannot encode itself: numpy arrays become
    lists (a float32 array's values widened to Python floats, as ``tolist`` does), numpy
    scalars numbers, bytes hex text, sets lists (as :mod:`arl.codec` sends them, so that a
    value gives the same text here as after crossing a socket); anything else is a
    ``TypeError``."""
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value).hex()
    converted = to_jsonable(value)
    if converted is value:
        raise TypeError(f"a {type(value).__name__} cannot be stored as JSON")
    return converted


def to_json_text(value: Any) -> str:
    """``value`` as JSON text: numpy arrays and scalars made plain by :func:`to_jsonable`,
    NaN and infinity as null. Raises ``TypeError`` for what JSON cannot hold.

    One pass of orjson, which calls :func:`jsonable_default` only on the values it cannot
    encode. What orjson refuses outright takes :func:`slow_json_text`.
    """
    try:
        return orjson.dumps(value, default=jsonable_default, option=OPTIONS).decode()
    except TypeError:
        return slow_json_text(value)


def column_text(value: Any) -> str:
    """The text of a step's or an action's JSON column: a dict encoded by :func:`to_json_text`,
    or the JSON text of an object that a producer made with :func:`to_json_text`, taken as
    it is (so a record's values are turned into JSON once, where they arise). Anything else
    is a ``TypeError``: such a record is malformed.

    The text is not parsed again (that would cost more than encoding it); it must begin
    with ``{`` and end with ``}``, which catches a plain string sent by mistake.
    PostgreSQL checks the rest as it stores it; SQLite keeps what it is given.
    """
    if type(value) is dict:
        try:
            return orjson.dumps(value, default=jsonable_default, option=OPTIONS).decode()
        except TypeError:
            return slow_json_text(value)
    if type(value) is str and value[:1] == "{" and value[-1:] == "}":
        return value
    raise TypeError(f"a JSON column takes a dict or the JSON text of one, not {_what(value)}")


def _what(value: Any) -> str:
    if type(value) is str:
        return f"the text {value[:40]!r}"
    return f"a {type(value).__name__}"


def slow_json_text(value: Any) -> str:
    """For what orjson refuses: a numpy scalar or bytes as a key (made text by ``str``, as
    before orjson), an int beyond 64 bits, a string with a lone surrogate (both written by
    the standard library's encoder, exactly as before), or a value JSON cannot hold (its
    ``TypeError`` propagates). Rare, so no effort is spent on speed."""
    plain = to_jsonable(value)
    try:
        return orjson.dumps(plain, option=OPTIONS).decode()
    except TypeError:
        return json.dumps(_finite(plain), separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> Any:
    """Non-finite floats become null (strings stay as they are), in plain JSON data."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
