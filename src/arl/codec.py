"""The one wire codec: typed, frozen message dataclasses encoded with msgpack.

A message is encoded as ``[CODEC_VERSION, tag, field_1, ..., field_n]``, its fields in
declaration order. Numpy arrays travel as (dtype, shape, raw bytes); numpy scalars as
(dtype, raw bytes). Nothing is ever pickled, so decoding a hostile frame can at worst
raise :class:`~arl.errors.ProtocolError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

import msgpack
import numpy as np

from arl.errors import ProtocolError

CODEC_VERSION = 1
_EXT_NDARRAY = 1
_EXT_NPSCALAR = 2

_registry: dict[str, type[Any]] = {}
_layouts: dict[type[Any], tuple[str, tuple[str, ...]]] = {}  # class -> (tag, field names)

M = TypeVar("M")


@dataclass_transform(frozen_default=True)
def message(tag: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: make a frozen, slotted dataclass and register it under ``tag``."""

    def register(cls: type[M]) -> type[M]:
        if tag in _registry:
            raise ValueError(f"message tag {tag!r} is registered twice")
        data_cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
        _registry[tag] = data_cls
        _layouts[data_cls] = (tag, tuple(f.name for f in dataclasses.fields(data_cls)))  # type: ignore[arg-type]
        return data_cls

    return register


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        if array.dtype.hasobject:
            raise TypeError("numpy arrays of Python objects cannot be sent; use a numeric dtype")
        payload = msgpack.packb([array.dtype.str, list(array.shape), array.tobytes()])
        return msgpack.ExtType(_EXT_NDARRAY, payload)
    if isinstance(obj, np.generic):
        return msgpack.ExtType(_EXT_NPSCALAR, msgpack.packb([obj.dtype.str, obj.tobytes()]))
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"cannot encode a value of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_NDARRAY:
        dtype, shape, raw = msgpack.unpackb(data)
        return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
    if code == _EXT_NPSCALAR:
        dtype, raw = msgpack.unpackb(data)
        return np.frombuffer(raw, dtype=np.dtype(dtype))[0]
    raise ProtocolError(f"unknown msgpack extension type {code}")


def pack(value: Any) -> bytes:
    """Encode a plain value (dicts, lists, numbers, strings, bytes, numpy data)."""
    return msgpack.packb(value, default=_default, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    """Decode what :func:`pack` made."""
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from exc


def encode(msg: Any) -> bytes:
    """Encode a registered message."""
    try:
        tag, names = _layouts[type(msg)]
    except KeyError:
        raise TypeError(f"{type(msg).__name__} is not a registered message") from None
    return pack([CODEC_VERSION, tag, *[getattr(msg, name) for name in names]])


def decode(data: bytes) -> Any:
    """Decode a message frame; raises :class:`ProtocolError` on anything malformed."""
    frame = unpack(data)
    if not isinstance(frame, list) or len(frame) < 2:
        raise ProtocolError("a message frame must be a list [version, tag, fields...]")
    version, tag, *values = frame
    if version != CODEC_VERSION:
        raise ProtocolError(f"codec version {version!r} is not supported (this is {CODEC_VERSION})")
    cls = _registry.get(tag)
    if cls is None:
        raise ProtocolError(f"unknown message type {tag!r}")
    try:
        return cls(*values)
    except TypeError as exc:
        raise ProtocolError(f"message {tag!r} has the wrong fields: {exc}") from exc


def to_jsonable(value: Any) -> Any:
    """Turn sensor readings, setpoints and rewards into plain JSON values for the store."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value
