"""The one wire codec: typed, frozen message dataclasses encoded with msgpack.

A message is encoded as ``[CODEC_VERSION, tag, field_1, ..., field_n]``, its fields in
declaration order. Numpy arrays travel as (dtype, shape, raw bytes); numpy scalars as
(dtype, raw bytes). Nothing is ever pickled, so decoding a hostile frame can at worst
raise :class:`~arl.errors.ProtocolError`.

What a frame may hold is bounded, so that a malformed or hostile frame is refused here
rather than crashing whoever handles what it decoded to: at most :data:`MAX_FRAME_BYTES`,
containers nested at most :data:`MAX_DEPTH` deep (far below Python's recursion limit, so
code that walks a decoded value recursively, such as a JSON encoder, cannot overflow),
and no length in a frame can exceed the frame itself (msgpack's own check).
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

MAX_FRAME_BYTES = 64 * 2**20
"""The largest frame arl sends or takes (64 MiB); the sockets refuse larger ones too."""

MAX_DEPTH = 100
"""How deeply lists and maps may nest in a frame; a message itself is one level. Above
the experiment file's own limit (64, ``arl.config.parse.MAX_DEPTH``), so that a file's
document fits inside the messages that carry it (``RunStarted``, the params of a setup)."""

_NESTED = frozenset((list, dict))  # what msgpack makes of arrays and maps

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
        if obj.dtype.hasobject:
            raise TypeError("numpy arrays of Python objects cannot be sent; use a numeric dtype")
        # tobytes() is C order for any layout; np.ascontiguousarray would make a 0-d array 1-d.
        payload = msgpack.packb([obj.dtype.str, list(obj.shape), obj.tobytes()])
        return msgpack.ExtType(_EXT_NDARRAY, payload)
    if isinstance(obj, np.generic):
        return msgpack.ExtType(_EXT_NPSCALAR, msgpack.packb([obj.dtype.str, obj.tobytes()]))
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"cannot encode a value of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_NDARRAY:
        dtype, shape, raw = msgpack.unpackb(data)
        return np.frombuffer(raw, dtype=_dtype(dtype)).reshape(tuple(shape)).copy()  # () for 0-d
    if code == _EXT_NPSCALAR:
        dtype, raw = msgpack.unpackb(data)
        return np.frombuffer(raw, dtype=_dtype(dtype))[0]
    raise ProtocolError(f"unknown msgpack extension type {code}")


def _dtype(name: Any) -> np.dtype[Any]:
    """Only what :func:`_default` sends: a dtype's string form, never objects."""
    if not isinstance(name, str):
        raise ProtocolError(f"a numpy dtype must be sent as its name, got {type(name).__name__}")
    dtype = np.dtype(name)
    if dtype.hasobject:
        raise ProtocolError(f"numpy dtype {name!r} holds Python objects")
    return dtype


# Every list or map in a frame starts with one of these bytes (fixmap, fixarray, map and
# array 16/32). A frame holding at most MAX_DEPTH of them, wherever they stand, cannot
# nest deeper, so most frames skip the walk below for one pass of C over their bytes.
_CONTAINER_HEADERS = frozenset(range(0x80, 0xA0)) | {0xDC, 0xDD, 0xDE, 0xDF}
_NOT_CONTAINER_HEADERS = bytes(b for b in range(256) if b not in _CONTAINER_HEADERS)


def _check_depth(data: bytes, value: Any) -> None:
    """Refuse a value whose lists and maps nest deeper than :data:`MAX_DEPTH`.

    One level at a time, without recursion, and only for a frame with more container
    headers than that (a step's message rarely has): about a microsecond when it walks.
    """
    if len(data.translate(None, _NOT_CONTAINER_HEADERS)) <= MAX_DEPTH:
        return
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [
            item
            for node in level
            for item in (node.values() if type(node) is dict else node if type(node) is list else ())
            if type(item) in _NESTED
        ]
        if not level:
            return
    raise ProtocolError(f"a frame nests lists or maps deeper than {MAX_DEPTH} levels")


def pack(value: Any) -> bytes:
    """Encode a plain value (dicts, lists, numbers, strings, bytes, numpy data)."""
    return msgpack.packb(value, default=_default, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    """Decode what :func:`pack` made; anything else raises :class:`ProtocolError`."""
    if len(data) > MAX_FRAME_BYTES:
        raise ProtocolError(f"a frame of {len(data):,} bytes is over the {MAX_FRAME_BYTES:,}-byte limit")
    try:
        value = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack and numpy raise many kinds; a frame is malformed either way
        raise ProtocolError(f"undecodable frame: {type(exc).__name__}: {exc}") from exc
    _check_depth(data, value)
    return value


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
    if type(version) is not int or version != CODEC_VERSION:
        raise ProtocolError(f"codec version {version!r} is not supported (this is {CODEC_VERSION})")
    cls = _registry.get(tag) if type(tag) is str else None
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
