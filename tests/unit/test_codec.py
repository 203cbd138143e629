"""The wire codec: round trips, numpy data, and refusal of anything malformed."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arl import codec
from arl.errors import ProtocolError
from arl.messages import agent, common, control, environment, executor, store
from arl.messages.common import ErrorReply


def test_message_round_trip_keeps_type_and_fields() -> None:
    msg = agent.Act(worker=1, agents={"d": [{"env.s0": 0.5}, None]}, terminated=False, truncated=True, final=False)
    back = codec.decode(codec.encode(msg))
    assert back == msg
    assert type(back) is agent.Act


def test_numpy_arrays_keep_dtype_shape_and_values() -> None:
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    msg = environment.Observation({"env.grid": array, "env.f": np.float32(1.5)})
    back = codec.decode(codec.encode(msg))
    assert back.sensors["env.grid"].dtype == np.int16
    assert back.sensors["env.grid"].shape == (3, 4)
    np.testing.assert_array_equal(back.sensors["env.grid"], array)
    assert back.sensors["env.f"].dtype == np.float32
    assert back.sensors["env.f"] == np.float32(1.5)


def test_non_contiguous_arrays_are_sent_as_their_values() -> None:
    array = np.arange(16.0).reshape(4, 4)[:, ::2]
    back = codec.decode(codec.encode(environment.Observation({"x": array})))
    np.testing.assert_array_equal(back.sensors["x"], array)


def test_object_arrays_are_refused() -> None:
    with pytest.raises(TypeError, match="objects"):
        codec.encode(environment.Observation({"x": np.array([object()])}))


def test_unregistered_classes_and_values_are_refused() -> None:
    class NotAMessage:
        pass

    with pytest.raises(TypeError, match="not a registered message"):
        codec.encode(NotAMessage())
    with pytest.raises(TypeError, match="cannot encode"):
        codec.encode(environment.Observation({"x": object()}))


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (b"\xc1", "undecodable"),
        (msgpack.packb({"a": 1}), "must be a list"),
        (msgpack.packb([99, "agent.act"]), "version 99"),
        (msgpack.packb([codec.CODEC_VERSION, "no.such.type"]), "unknown message type"),
        (msgpack.packb([codec.CODEC_VERSION, "env.reset", 1, 2, 3]), "wrong fields"),
        (msgpack.packb(msgpack.ExtType(77, b"")), "extension type 77"),
    ],
)
def test_malformed_frames_raise_protocol_error(frame: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        codec.decode(frame)


def test_every_registered_message_is_a_frozen_dataclass() -> None:
    for cls in (control.RunPhase, store.EnvironmentStep, ErrorReply, environment.Stepped):
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_to_jsonable_turns_numpy_into_plain_values() -> None:
    value = {"a": np.arange(3), "b": np.float64(2.5), 3: (np.int8(1), b"\x01")}
    assert codec.to_jsonable(value) == {"a": [0, 1, 2], "b": 2.5, "3": [1, "01"]}


# -- properties (hypothesis) --------------------------------------------------------------

# Every conversation's module, so that the registry holds every message arl sends.
MESSAGE_MODULES = (agent, control, environment, executor, store, common)
MESSAGES = sorted(codec._registry.items())

NUMERIC_DTYPES = [
    np.dtype(t) for t in ("?", "i1", "<i2", ">i4", "i8", "u1", "u2", "u4", "<u8", "f2", "f4", ">f8", "c8")
]
arrays = st.sampled_from(NUMERIC_DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))
)
numpy_scalars = st.sampled_from(NUMERIC_DTYPES).flatmap(lambda dtype: hnp.from_dtype(dtype).map(dtype.type))
ints = st.integers(-(2**63), 2**64 - 1)  # what msgpack can carry
scalars = st.none() | st.booleans() | ints | st.floats() | st.text() | st.binary() | arrays | numpy_scalars
# What a message's Any fields may hold: tuples and sets travel as lists, so lists only.
plain = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20
)


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a message field's annotated type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return plain
    if hint is type(None):
        return st.none()
    if origin in (types.UnionType, typing.Union):
        return st.one_of([strategy_for(arg) for arg in args])
    if origin is dict:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=4)
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=4)
    simple = {bool: st.booleans(), int: ints, float: st.floats(), str: st.text()}
    return simple[hint]


def messages_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    return st.builds(cls, **{name: strategy_for(hint) for name, hint in typing.get_type_hints(cls).items()})


def same(a: Any, b: Any) -> bool:
    """Equal in type and value; numpy data compared bit for bit (NaN equals NaN).

    ``b`` was sent, ``a`` received: a numpy float64 is a Python float and travels as one.
    """
    if type(b) is np.float64:
        b = float(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray | np.generic):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return bool(a == b)


def test_every_message_module_is_covered() -> None:
    tags = {tag.split(".")[0] for tag, _ in MESSAGES}
    assert {"agent", "env", "store", "error"} <= tags
    assert len(MESSAGES) >= 28


@pytest.mark.parametrize(("tag", "cls"), MESSAGES, ids=[tag for tag, _ in MESSAGES])
@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_message_with_any_field_values_round_trips(tag: str, cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(messages_of(cls))
    back = codec.decode(codec.encode(msg))
    assert same(back, msg)


def decodes_or_is_refused(frame: bytes) -> None:
    """The receiver's side of the contract: a registered message, or ProtocolError."""
    try:
        msg = codec.decode(frame)
    except ProtocolError:
        return
    assert type(msg) in codec._layouts


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_byte_string_decodes_or_is_refused(frame: bytes) -> None:
    decodes_or_is_refused(frame)


def _hashable(value: Any) -> bool:
    return not isinstance(value, list | dict)


ext_types = st.builds(
    msgpack.ExtType,
    st.sampled_from([0, 1, 2, 3, 77, 127]),
    st.one_of(
        st.binary(max_size=40),
        # Ext payloads shaped like (dtype, shape, raw) and (dtype, raw), with any parts.
        st.tuples(st.text(max_size=6) | ints | st.none(), st.lists(ints, max_size=3) | st.text(), st.binary()).map(
            msgpack.packb
        ),
        st.tuples(st.sampled_from(["O", "<f8", "V3", "a1", "M8[s]", "U2", ""]), st.binary(max_size=16)).map(
            msgpack.packb
        ),
    ),
)
wire_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats() | st.text(max_size=8) | st.binary(max_size=8) | ext_types,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(inner.filter(_hashable), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150)
@given(
    version=st.sampled_from([codec.CODEC_VERSION, 0, True, 1.0, "1", None, [1]]),
    tag=st.sampled_from([tag for tag, _ in MESSAGES]) | wire_values,
    fields=st.lists(wire_values, max_size=12),
)
def test_any_msgpack_frame_decodes_or_is_refused(version: Any, tag: Any, fields: list[Any]) -> None:
    decodes_or_is_refused(msgpack.packb([version, tag, *fields]))


@settings(max_examples=60)
@given(st.data())
def test_a_valid_frame_cut_or_altered_decodes_or_is_refused(data: st.DataObject) -> None:
    _, cls = data.draw(st.sampled_from(MESSAGES))
    frame = bytearray(codec.encode(data.draw(messages_of(cls))))
    if data.draw(st.booleans()):
        frame = frame[: data.draw(st.integers(0, len(frame)))]
    for _ in range(data.draw(st.integers(0, 3))):
        if frame:
            frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    decodes_or_is_refused(bytes(frame))


def nested(depth: int) -> Any:
    value: Any = 0.0
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_nesting_is_bounded_so_a_receiver_cannot_overflow_its_stack() -> None:
    inside = codec.MAX_DEPTH - 2  # the message's list and its sensors map are two more levels
    msg = environment.Observation({"x": nested(inside)})
    assert same(codec.decode(codec.encode(msg)), msg)
    for depth in (inside + 1, 200, 1000, 100_000):
        frame = msgpack.packb([codec.CODEC_VERSION, "env.observation", {"x": nested(min(depth, 1000))}])
        if depth > 1000:  # deeper than msgpack itself can pack: built by hand
            frame = b"\x91" * depth + b"\xc0"
        with pytest.raises(ProtocolError, match=r"deeper than|undecodable"):
            codec.decode(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b"\xdd\xff\xff\xff\xff",  # an array that claims 4 billion items
        b"\xdb\xff\xff\xff\xff" + b"x" * 10,  # a string that claims 4 GiB
        b"\xc6\x7f\xff\xff\xff",  # a binary that claims 2 GiB
        msgpack.packb([codec.CODEC_VERSION, "env.observation", {}]) + b"\x00",  # extra data after the frame
        msgpack.packb([codec.CODEC_VERSION, ["env.observation"], {}]),  # an unhashable tag
        msgpack.packb([[1], "env.observation", {}]),  # a version that is not a number
        msgpack.packb(msgpack.ExtType(1, msgpack.packb(["O", [1], b"\x00" * 8]))),  # an object array
        msgpack.packb(msgpack.ExtType(2, msgpack.packb([{"names": ["a"]}, b""]))),  # a dtype given as a map
        msgpack.packb(msgpack.ExtType(1, msgpack.packb(["<f8", [2**40], b""]))),  # a shape its data cannot fill
    ],
)
def test_hostile_frames_are_refused_with_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        codec.decode(frame)


def test_a_frame_over_the_size_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(ProtocolError, match="over the"):
        codec.decode(b"\x00" * (codec.MAX_FRAME_BYTES + 1))
