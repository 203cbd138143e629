"""MajorDomo (MDP/0.2-style) wire format: constants and pure frame builders and parsers.

Every function here works on the frames a DEALER sends or receives, i.e. *without* the
routing identity a ROUTER adds in front; the broker peels that off with
:func:`split_envelope` and puts it back when it replies. Keeping the helpers pure (no
sockets) is what lets the framing be unit-tested in isolation.

Client (DEALER) <-> broker (ROUTER)::

    client -> broker   [b"", b"MDPC02", 0x01 REQUEST, service, correlation_id, body]
    broker -> client   [b"", b"MDPC02", 0x02 REPORT,  service, correlation_id, body]

Worker (DEALER) <-> broker (ROUTER)::

    worker -> broker   [b"", b"MDPW02", 0x01 READY, service, metadata]
                       [b"", b"MDPW02", 0x04 REPORT (final), client_address, b"",
                        correlation_id, body]
                       [b"", b"MDPW02", 0x05 HEARTBEAT]
                       [b"", b"MDPW02", 0x06 DISCONNECT]
    broker -> worker   [b"", b"MDPW02", 0x02 REQUEST, client_address, b"",
                        correlation_id, body]
                       [b"", b"MDPW02", 0x05 HEARTBEAT]
                       [b"", b"MDPW02", 0x06 DISCONNECT]

``service`` is UTF-8 text and never empty. ``metadata`` is a dict packed with
:func:`arl.codec.pack`; workers use it to advertise their direct hot-path endpoint.
The ``correlation_id`` is chosen by the client and echoed untouched by the worker, which
is what lets one client keep several requests in flight, even to the same service.

The broker answers the internal service ``mmi.lookup`` itself: the request body is a
service name, the reply body ``pack({"found": bool, "metadata": dict})``.

Every ``parse_*`` function raises :class:`~arl.errors.ProtocolError` on anything that does
not fit, never another exception, so callers need to handle exactly one error type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arl.codec import pack, unpack
from arl.errors import ProtocolError

CLIENT = b"MDPC02"
WORKER = b"MDPW02"

# Client sub-protocol commands.
C_REQUEST = b"\x01"
C_REPORT = b"\x02"

# Worker sub-protocol commands.
W_READY = b"\x01"
W_REQUEST = b"\x02"
W_REPORT = b"\x04"
W_HEARTBEAT = b"\x05"
W_DISCONNECT = b"\x06"

MMI_LOOKUP = "mmi.lookup"
"""The broker-internal service that returns the metadata a service's worker registered."""

MMI_PREFIX = "mmi."
"""Service names the broker reserves for itself; workers may not register under them."""

Frames = list[bytes]


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A client asks ``service`` to handle ``body``."""

    service: str
    correlation: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class ClientReport:
    """The broker hands a client the reply to the request tagged ``correlation``."""

    service: str
    correlation: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """A worker offers ``service`` and advertises ``metadata`` (e.g. its direct endpoint)."""

    service: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkerRequest:
    """The broker passes a client's request to a worker (broker -> worker REQUEST)."""

    client: bytes
    correlation: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """A worker's final reply to a request (worker -> broker REPORT)."""

    client: bytes
    correlation: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Either side is alive; sent in both directions."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Either side is going away (worker) or wants the worker to re-register (broker)."""


WorkerMessage = Ready | WorkerReport | Heartbeat | Disconnect
BrokerMessage = WorkerRequest | Heartbeat | Disconnect


# -- building ---------------------------------------------------------------------------


def client_request(service: str, correlation: bytes, body: bytes) -> Frames:
    """Frames a client sends to ask ``service`` for something."""
    return [b"", CLIENT, C_REQUEST, _service_bytes(service), correlation, body]


def client_report(service: str, correlation: bytes, body: bytes) -> Frames:
    """Frames the broker sends a client with a reply (prefix the client's identity)."""
    return [b"", CLIENT, C_REPORT, _service_bytes(service), correlation, body]


def worker_ready(service: str, metadata: dict[str, Any]) -> Frames:
    """Frames a worker sends to register; ``metadata`` must be packable by arl.codec."""
    return [b"", WORKER, W_READY, _service_bytes(service), pack(metadata)]


def worker_report(client: bytes, correlation: bytes, body: bytes) -> Frames:
    """Frames a worker sends with its final reply to one request."""
    return [b"", WORKER, W_REPORT, client, b"", correlation, body]


def worker_request(client: bytes, correlation: bytes, body: bytes) -> Frames:
    """Frames the broker sends a worker to hand it a request (prefix the worker identity)."""
    return [b"", WORKER, W_REQUEST, client, b"", correlation, body]


def heartbeat() -> Frames:
    """A HEARTBEAT; the same frames in both directions."""
    return [b"", WORKER, W_HEARTBEAT]


def disconnect() -> Frames:
    """A DISCONNECT; the same frames in both directions."""
    return [b"", WORKER, W_DISCONNECT]


def _service_bytes(service: str) -> bytes:
    if not service:
        raise ValueError("a service name must not be empty")
    return service.encode("utf-8")


# -- parsing ----------------------------------------------------------------------------


def split_envelope(frames: Sequence[bytes]) -> tuple[bytes, Frames]:
    """Split what a ROUTER received into the sender's identity and the DEALER-side frames."""
    if len(frames) < 2:
        raise ProtocolError(f"a routed message needs at least 2 frames, got {len(frames)}")
    return frames[0], list(frames[1:])


def header(frames: Sequence[bytes]) -> bytes:
    """The sub-protocol header (``CLIENT`` or ``WORKER``) after the empty delimiter."""
    if len(frames) < 2:
        raise ProtocolError(f"an MDP message needs at least 2 frames, got {len(frames)}")
    if frames[0] != b"":
        raise ProtocolError("an MDP message must start with an empty delimiter frame")
    return frames[1]


def parse_client_request(frames: Sequence[bytes]) -> ClientRequest:
    """Parse what the broker got from a client (identity already split off)."""
    service, correlation, body = _client_fields(frames, C_REQUEST, "REQUEST")
    return ClientRequest(service, correlation, body)


def parse_client_report(frames: Sequence[bytes]) -> ClientReport:
    """Parse what a client got from the broker."""
    service, correlation, body = _client_fields(frames, C_REPORT, "REPORT")
    return ClientReport(service, correlation, body)


def _client_fields(frames: Sequence[bytes], command: bytes, name: str) -> tuple[str, bytes, bytes]:
    _expect_header(frames, CLIENT)
    if len(frames) != 6:
        raise ProtocolError(f"a client {name} has 6 frames, got {len(frames)}")
    if frames[2] != command:
        raise ProtocolError(f"expected client command {command!r} ({name}), got {frames[2]!r}")
    return _service_text(frames[3]), frames[4], frames[5]


def parse_worker_message(frames: Sequence[bytes]) -> WorkerMessage:
    """Parse what the broker got from a worker (identity already split off)."""
    command = _worker_command(frames)
    if command == W_READY:
        _expect_length(frames, 5, "READY")
        return Ready(_service_text(frames[3]), _metadata(frames[4]))
    if command == W_REPORT:
        client, correlation, body = _addressed(frames, "REPORT")
        return WorkerReport(client, correlation, body)
    return _heartbeat_or_disconnect(frames, command)


def parse_broker_message(frames: Sequence[bytes]) -> BrokerMessage:
    """Parse what a worker got from the broker."""
    command = _worker_command(frames)
    if command == W_REQUEST:
        client, correlation, body = _addressed(frames, "REQUEST")
        return WorkerRequest(client, correlation, body)
    return _heartbeat_or_disconnect(frames, command)


def _worker_command(frames: Sequence[bytes]) -> bytes:
    _expect_header(frames, WORKER)
    if len(frames) < 3:
        raise ProtocolError("a worker message needs a command frame")
    return frames[2]


def _heartbeat_or_disconnect(frames: Sequence[bytes], command: bytes) -> Heartbeat | Disconnect:
    if command == W_HEARTBEAT:
        _expect_length(frames, 3, "HEARTBEAT")
        return Heartbeat()
    if command == W_DISCONNECT:
        _expect_length(frames, 3, "DISCONNECT")
        return Disconnect()
    raise ProtocolError(f"unexpected worker command {command!r}")


def _addressed(frames: Sequence[bytes], name: str) -> tuple[bytes, bytes, bytes]:
    _expect_length(frames, 7, name)
    if frames[4] != b"":
        raise ProtocolError(f"a worker {name} needs an empty frame after the client address")
    if not frames[3]:
        raise ProtocolError(f"a worker {name} has an empty client address")
    return frames[3], frames[5], frames[6]


def _expect_header(frames: Sequence[bytes], expected: bytes) -> None:
    got = header(frames)
    if got != expected:
        raise ProtocolError(f"expected protocol header {expected!r}, got {got!r}")


def _expect_length(frames: Sequence[bytes], length: int, name: str) -> None:
    if len(frames) != length:
        raise ProtocolError(f"a worker {name} has {length} frames, got {len(frames)}")


def _service_text(raw: bytes) -> str:
    if not raw:
        raise ProtocolError("the service name is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"the service name is not UTF-8: {raw!r}") from exc


def _metadata(raw: bytes) -> dict[str, Any]:
    value = unpack(raw)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ProtocolError("READY metadata must be a map with string keys")
    return value


def lookup_reply(metadata: dict[str, Any] | None) -> bytes:
    """The body the broker sends back for ``mmi.lookup``; ``None`` means no live worker."""
    return pack({"found": metadata is not None, "metadata": metadata or {}})


def parse_lookup_reply(body: bytes) -> dict[str, Any] | None:
    """The metadata from an ``mmi.lookup`` reply body, or ``None`` if nothing is registered."""
    value = unpack(body)
    if not isinstance(value, dict):
        raise ProtocolError("an mmi.lookup reply must be a map")
    found, metadata = value.get("found"), value.get("metadata")
    if not isinstance(found, bool) or not isinstance(metadata, dict):
        raise ProtocolError("an mmi.lookup reply needs a bool 'found' and a map 'metadata'")
    return metadata if found else None
