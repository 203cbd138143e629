"""MDP frame builders and parsers: round trips, and every malformed shape is rejected."""

from __future__ import annotations

import pytest

from arl.codec import pack
from arl.errors import ProtocolError
from arl.mdp import protocol as p


def test_client_request_round_trip() -> None:
    frames = p.client_request("agent.defender", b"\x00\x01", b"body")
    assert frames == [b"", b"MDPC02", b"\x01", b"agent.defender", b"\x00\x01", b"body"]
    assert p.parse_client_request(frames) == p.ClientRequest("agent.defender", b"\x00\x01", b"body")


def test_client_report_round_trip() -> None:
    frames = p.client_report("env.é.0", b"c", b"")
    assert frames[:3] == [b"", b"MDPC02", b"\x02"]
    assert p.parse_client_report(frames) == p.ClientReport("env.é.0", b"c", b"")


def test_ready_round_trip_carries_metadata() -> None:
    metadata = {"endpoint": "ipc:///tmp/arl-x/direct", "pid": 42}
    frames = p.worker_ready("controller.0", metadata)
    assert frames[:4] == [b"", b"MDPW02", b"\x01", b"controller.0"]
    assert p.parse_worker_message(frames) == p.Ready("controller.0", metadata)


def test_worker_report_and_request_round_trip() -> None:
    report = p.worker_report(b"client-id", b"corr", b"reply")
    assert report == [b"", b"MDPW02", b"\x04", b"client-id", b"", b"corr", b"reply"]
    assert p.parse_worker_message(report) == p.WorkerReport(b"client-id", b"corr", b"reply")
    request = p.worker_request(b"client-id", b"corr", b"ask")
    assert request[2] == b"\x02"
    assert p.parse_broker_message(request) == p.WorkerRequest(b"client-id", b"corr", b"ask")


def test_heartbeat_and_disconnect_parse_in_both_directions() -> None:
    for parse in (p.parse_worker_message, p.parse_broker_message):
        assert parse(p.heartbeat()) == p.Heartbeat()
        assert parse(p.disconnect()) == p.Disconnect()


def test_split_envelope_peels_the_router_identity() -> None:
    identity, frames = p.split_envelope([b"id", *p.heartbeat()])
    assert identity == b"id"
    assert frames == p.heartbeat()
    assert p.header(frames) == p.WORKER


def test_lookup_reply_round_trip() -> None:
    assert p.parse_lookup_reply(p.lookup_reply({"endpoint": "ipc://x"})) == {"endpoint": "ipc://x"}
    assert p.parse_lookup_reply(p.lookup_reply(None)) is None


def test_builders_refuse_an_empty_service() -> None:
    with pytest.raises(ValueError, match="empty"):
        p.client_request("", b"c", b"b")


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b""],
        [b"x", b"MDPC02", b"\x01", b"svc", b"c", b"b"],  # delimiter not empty
        [b"", b"MDPC01", b"\x01", b"svc", b"c", b"b"],  # wrong version
        [b"", b"MDPW02", b"\x01", b"svc", b"c", b"b"],  # worker header
        [b"", b"MDPC02", b"\x02", b"svc", b"c", b"b"],  # REPORT where REQUEST is due
        [b"", b"MDPC02", b"\x01", b"svc", b"c"],  # too short
        [b"", b"MDPC02", b"\x01", b"svc", b"c", b"b", b"extra"],  # too long
        [b"", b"MDPC02", b"\x01", b"", b"c", b"b"],  # empty service
        [b"", b"MDPC02", b"\x01", b"\xff\xfe", b"c", b"b"],  # service not UTF-8
    ],
)
def test_malformed_client_requests_are_rejected(frames: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        p.parse_client_request(frames)


def test_a_request_is_not_a_report() -> None:
    with pytest.raises(ProtocolError, match="REPORT"):
        p.parse_client_report(p.client_request("svc", b"c", b"b"))


@pytest.mark.parametrize(
    "frames",
    [
        [b"", b"MDPW02"],  # no command
        [b"", b"MDPW02", b"\x09"],  # unknown command
        [b"", b"MDPW02", b"\x02", b"cl", b"", b"c", b"b"],  # REQUEST goes broker -> worker
        [b"", b"MDPW02", b"\x01", b"svc"],  # READY without metadata
        [b"", b"MDPW02", b"\x01", b"svc", b"\xc1"],  # metadata not msgpack
        [b"", b"MDPW02", b"\x01", b"svc", pack([1, 2])],  # metadata not a map
        [b"", b"MDPW02", b"\x01", b"svc", pack({1: 2})],  # metadata keys not strings
        [b"", b"MDPW02", b"\x04", b"cl", b"x", b"c", b"b"],  # no empty frame after address
        [b"", b"MDPW02", b"\x04", b"", b"", b"c", b"b"],  # empty client address
        [b"", b"MDPW02", b"\x04", b"cl", b"", b"c"],  # REPORT too short
        [b"", b"MDPW02", b"\x05", b"extra"],  # HEARTBEAT with payload
        [b"", b"MDPW02", b"\x06", b"extra"],  # DISCONNECT with payload
        [b"", b"MDPC02", b"\x05"],  # client header
    ],
)
def test_malformed_worker_messages_are_rejected(frames: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        p.parse_worker_message(frames)


@pytest.mark.parametrize(
    "frames",
    [
        [b"", b"MDPW02", b"\x01", b"svc", pack({})],  # READY goes worker -> broker
        [b"", b"MDPW02", b"\x04", b"cl", b"", b"c", b"b"],  # REPORT goes worker -> broker
        [b"", b"MDPW02", b"\x02", b"cl", b"", b"c"],  # REQUEST too short
        [b"", b"MDPW02"],
    ],
)
def test_malformed_broker_messages_are_rejected(frames: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        p.parse_broker_message(frames)


def test_split_envelope_needs_an_identity_and_a_body() -> None:
    with pytest.raises(ProtocolError):
        p.split_envelope([b"id"])


@pytest.mark.parametrize(
    "body",
    [b"\xc1", pack([True, {}]), pack({"found": 1, "metadata": {}}), pack({"found": True})],
)
def test_malformed_lookup_replies_are_rejected(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        p.parse_lookup_reply(body)
