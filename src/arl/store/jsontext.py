"""Values as JSON text for the store's JSON columns: compact, numpy data made plain, NaN
and infinity stored as null (JSON has neither, and PostgreSQL's JSONB refuses them).

No SQLAlchemy here: the engine hands :func:`to_json_text` to SQLAlchemy as its JSON
serializer, and the writer calls the encoder directly on its hot path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from arl.codec import to_jsonable

JsonChunks = Callable[[Any, int], Iterable[str]]


def _jsonable_default(value: Any) -> Any:
    """Called by the JSON encoder only for what it cannot encode itself (numpy data, bytes)."""
    converted = to_jsonable(value)
    if converted is value:
        raise TypeError(f"a {type(value).__name__} cannot be stored as JSON")
    return converted


def _make_json_encoder() -> JsonChunks:
    """The fastest exact JSON encoder at hand: compact, numpy data through
    :func:`_jsonable_default`, ``ValueError`` on NaN or infinity; it returns chunks to join.

    ``JSONEncoder.encode`` spends about as long in its Python wrappers as the C encoder
    spends on a small dict, and a step row holds two or three small dicts, so the writer
    calls CPython's C encoder directly; without circular checks, as decoded msgpack data
    cannot hold cycles. Where that encoder is missing, encodes differently or lets NaN
    through, it falls back to ``JSONEncoder.iterencode``.
    """
    plain = json.JSONEncoder(separators=(",", ":"), default=_jsonable_default, allow_nan=False)

    def fallback(value: Any, _level: int) -> Iterable[str]:
        return plain.iterencode(value, _one_shot=True)

    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return fallback
    try:
        c_encode: JsonChunks = make(
            None, _jsonable_default, json.encoder.encode_basestring_ascii, None, ":", ",",
            False, False, False,
        )  # fmt: skip
        probe = {"a": [1.5, -2, None, True, "\u00e9\n", 1e300], "b": {"c": 0.1}, "d": b"\x01"}
        same = "".join(c_encode(probe, 0)) == plain.encode(probe)
    except TypeError:  # its private signature changed
        return fallback
    return c_encode if same and _refuses_nan(c_encode) else fallback


def _refuses_nan(encode: JsonChunks) -> bool:
    try:
        "".join(encode([math.nan], 0))
    except ValueError:
        return True
    return False


json_chunks = _make_json_encoder()
"""The encoder itself: ``"".join(json_chunks(value, 0))`` is JSON text, or it raises
``TypeError`` (a numpy scalar as a key, an object JSON cannot hold) or ``ValueError``
(NaN or infinity). :func:`to_json_text` handles both; the writer inlines the call."""


def to_json_text(value: Any) -> str:
    """``value`` as JSON text: numpy arrays and scalars made plain by :func:`to_jsonable`,
    NaN and infinity as null. Raises ``TypeError`` for what JSON cannot hold.

    One pass of the C encoder, which calls :func:`to_jsonable` only on the values it cannot
    encode, instead of rebuilding every dict in Python first. Keys the encoder refuses (a
    numpy scalar as a key) and non-finite numbers (the encoder raises ``ValueError``) take
    the slow path through :func:`to_jsonable`.
    """
    try:
        return "".join(json_chunks(value, 0))
    except TypeError:
        plain = to_jsonable(value)
    except ValueError:
        return "".join(json_chunks(_finite(to_jsonable(value)), 0))
    try:
        return "".join(json_chunks(plain, 0))
    except ValueError:
        return "".join(json_chunks(_finite(plain), 0))


def _finite(value: Any) -> Any:
    """Non-finite floats become null (strings stay as they are), in plain JSON data."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
