"""The store's JSON text (arl.store.jsontext): orjson's output, what it keeps identical to
the standard library's encoder, and where it differs without changing a value."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arl.codec import decode, encode
from arl.messages.store import EnvironmentStep
from arl.store.jsontext import column_text, to_json_text


def stdlib(value: Any) -> str:
    """What the store wrote before orjson, for plain values without NaN."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def test_plain_values_are_written_as_the_standard_library_writes_them() -> None:
    value = {
        "grid.voltage": 0.5780439448487174,
        "load": [1, -2, 0.1 + 0.2, 100.0, -0.0, 123456789012345.0, 1e-4],
        "flags": {"on": True, "off": False, "none": None},
        "text": 'a "quoted"\\ line\nwith\ttabs and \x00\x1f control',
        "bounds": [2**63 - 1, -(2**63), 2**64 - 1],
        "empty": [{}, []],
    }
    assert to_json_text(value) == stdlib(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_reads_back_as_the_same_float(x: float) -> None:
    text = to_json_text([x])
    back = json.loads(text)[0]
    assert back == x
    assert math.copysign(1.0, back) == math.copysign(1.0, x)
    if "e" not in repr(x):  # only a float in exponent notation may be spelled otherwise
        assert text == f"[{x!r}]"


def test_exponents_may_be_spelled_otherwise_but_keep_their_value() -> None:
    value = [1.5e-7, 1e-5, 2.5e-10, 5e-324, 1e16, 1e300]
    assert json.loads(to_json_text(value)) == value
    assert to_json_text([1.5e-7, 1e-5]) == "[1.5e-7,0.00001]"  # the standard library: 1.5e-07, 1e-05


def test_text_outside_ascii_is_written_as_utf8() -> None:
    value = {"é ü": "\u2028 😀"}
    assert to_json_text(value) == '{"é ü":"\u2028 😀"}'  # the standard library escaped each as \\uXXXX
    assert json.loads(to_json_text(value)) == value


def test_nan_and_infinity_become_null_wherever_they_are() -> None:
    value = {
        "nan": math.nan,
        "inf": np.float32(np.inf),
        "obs": np.array([0.5, -np.inf]),
        "deep": [{"x": [math.nan, 1.5]}],
        "r": np.float64(np.nan),
    }
    assert to_json_text(value) == '{"nan":null,"inf":null,"obs":[0.5,null],"deep":[{"x":[null,1.5]}],"r":null}'


def test_numpy_data_becomes_plain_json_with_the_values_it_had() -> None:
    value = {
        "f32": np.float32(0.1),  # widened to the float64 of the same value, not re-rounded
        "f64": np.float64(0.25),
        "i64": np.int64(3),
        "b": np.bool_(True),
        "m": np.eye(2, dtype=np.float32),
        "u8": np.arange(3, dtype=np.uint8),
        "0d": np.array(2.5),
        "raw": b"\x01\xff",
    }
    assert to_json_text(value) == (
        '{"f32":0.10000000149011612,"f64":0.25,"i64":3,"b":true,"m":[[1.0,0.0],[0.0,1.0]],'
        '"u8":[0,1,2],"0d":2.5,"raw":"01ff"}'
    )


def test_keys_that_are_not_text_are_written_as_the_standard_library_writes_them() -> None:
    value = {2: "int", True: "bool", None: "none", 1.5: "float", -0.5: "negative"}
    assert to_json_text(value) == json.dumps(value, separators=(",", ":"))
    assert to_json_text({np.int64(3): 1.0, b"k": 2}) == '{"3":1.0,"b\'k\'":2}'  # as str() writes them


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    assert to_json_text({"big": 2**70, "x": 1e-7}) == '{"big":1180591620717411303424,"x":1e-07}'
    assert to_json_text({"s": "\ud800"}) == '{"s":"\\ud800"}'


def test_a_value_gives_the_same_text_before_and_after_crossing_a_socket() -> None:
    # Sets and tuples travel as lists; so the sender's text (JSON made at the source) and
    # the writer's (made from the decoded record) are the same.
    sensors = {"set": {3}, "tuple": (1, 2.5), "frozen": frozenset({"a"}), "buffer": bytearray(b"\x02")}
    crossed = decode(encode(EnvironmentStep(0, 0, 0, 0, "env", sensors, {}, False, False))).sensors
    assert to_json_text(sensors) == to_json_text(crossed) == '{"set":[3],"tuple":[1,2.5],"frozen":["a"],"buffer":"02"}'


@dataclasses.dataclass
class Point:
    x: float


@pytest.mark.parametrize("value", [object(), datetime(2024, 1, 1, tzinfo=UTC), Point(1.0), {"nested": [object()]}])
def test_what_json_cannot_hold_is_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        to_json_text(value)


def test_a_column_takes_a_dict_or_json_text_made_at_the_source() -> None:
    sensors = {"grid.voltage": np.float32(0.5), "nan": math.nan}
    text = to_json_text(sensors)
    assert column_text(sensors) == text == '{"grid.voltage":0.5,"nan":null}'
    assert column_text(text) is text  # taken as it is: encoded once, where it arose
    assert column_text("{}") == "{}"


@pytest.mark.parametrize("value", ["grid.voltage", "[1, 2]", "", b"{}", None, [1.0], 0.5])
def test_a_column_refuses_anything_else(value: Any) -> None:
    with pytest.raises(TypeError, match="a JSON column takes a dict or the JSON text of one"):
        column_text(value)
