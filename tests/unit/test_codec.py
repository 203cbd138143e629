"""The wire codec: round trips, numpy data, and refusal of anything malformed."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from arl import codec
from arl.errors import ProtocolError
from arl.messages import agent, control, environment, store
from arl.messages.common import ErrorReply


def test_message_round_trip_keeps_type_and_fields() -> None:
    msg = agent.Act(worker=1, sensors={"env.s0": 0.5}, rewards=None, terminated=False, truncated=True, final=False)
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
