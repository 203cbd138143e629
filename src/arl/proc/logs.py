"""Logging from every process returns to the executor through one LogServer socket.

Children send each record as a msgpack map (never pickle) over a ZeroMQ PUSH socket;
the LogServer in the executor re-creates the record and hands it to the executor's
own handlers, tagged with the sending process's label (``role:name``).

A frame is at most :data:`~arl.transport.MAX_LOG_BYTES` (a child shortens a long message
or traceback to fit), the LogServer queues at most :data:`~arl.transport.PEER_HWM` frames
per sender, and a frame that is not a well-formed record is dropped with a warning: a
flood or a hostile sender costs bounded memory and never stops the LogServer.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import zmq

from arl.codec import pack, unpack
from arl.errors import ProtocolError
from arl.transport import MAX_LOG_BYTES, PEER_HWM, DropLog, limit_input

_FIELDS = ("name", "levelno", "levelname", "pathname", "lineno", "funcName", "created", "msecs")
# Every field of a frame and its type: a record is rebuilt from these only, so that no
# frame can set attributes a handler would trip over (exc_info, args, a text `created`).
_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "levelno": int,
    "levelname": str,
    "pathname": str,
    "lineno": int,
    "funcName": (str, type(None)),
    "created": (int, float),
    "msecs": (int, float),
    "msg": str,
    "exc_text": (str, type(None)),
    "arl_process": str,
}
_LATEST_TIME = 2.0**40  # seconds since 1970 that time.localtime still takes
_NAME_MAX = 1000  # characters of a logger name; real ones have a few dozen
_TEXT_MAX = MAX_LOG_BYTES // 16  # characters of a message or traceback: both fit at 4 bytes each
_FORMATTER = logging.Formatter()  # formats a record's exception once, in the child
CONSOLE_FORMAT = "%(asctime)s %(arl_process)-24s %(levelname)-7s %(name)s: %(message)s"


@dataclass(frozen=True)
class LogConfig:
    """What a child needs to send its logs home."""

    endpoint: str
    level: int


class ProcessLabelFilter(logging.Filter):
    """Gives records of the local process the label remote ones carry."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "arl_process"):
            record.arl_process = self.label
        return True


class RemoteLogHandler(logging.Handler):
    """Sends records to the LogServer. Used in every child process."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, label: str) -> None:
        super().__init__()
        self.label = label
        self._lock_send = threading.Lock()
        self._socket = ctx.socket(zmq.PUSH)
        # Give queued records a moment to leave at exit, but never hang a dying child.
        self._socket.setsockopt(zmq.LINGER, 1000)
        self._socket.setsockopt(zmq.SNDHWM, 10000)
        self._socket.connect(endpoint)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = self._fields(record)
            data = pack(fields)
            if len(data) > MAX_LOG_BYTES:  # a logger name or path that long: say so rather than vanish
                data = pack(_shrunk(fields, len(data)))
            with self._lock_send:
                self._socket.send(data, zmq.NOBLOCK)
        except zmq.Again:
            pass  # the LogServer is gone or flooded: dropping a log line beats blocking a step
        except Exception:
            self.handleError(record)

    def _fields(self, record: logging.LogRecord) -> dict[str, Any]:
        fields: dict[str, Any] = {k: getattr(record, k) for k in _FIELDS}
        fields["msg"] = _clip(record.getMessage())
        fields["exc_text"] = _clip(_FORMATTER.formatException(record.exc_info)) if record.exc_info else None
        fields["arl_process"] = getattr(record, "arl_process", self.label)
        return fields

    def close(self) -> None:
        with self._lock_send:
            self._socket.close()
        super().close()


def _shrunk(fields: dict[str, Any], size: int) -> dict[str, Any]:
    short = {k: v[:200] if isinstance(v, str) else v for k, v in fields.items()}
    short["msg"] = f"a log record of {size:,} bytes was too large to send; it began: {short['msg']}"
    short["exc_text"] = None
    return short


def _clip(text: str) -> str:
    """``text`` cut to fit a log frame: its start and its end (a traceback's exception)."""
    if len(text) <= _TEXT_MAX:
        return text
    half = _TEXT_MAX // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half:,} characters cut ...]\n{text[-half:]}"


def install_child_logging(ctx: zmq.Context[Any], config: LogConfig, label: str) -> None:
    """Route this process's logging to the LogServer, replacing inherited handlers."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RemoteLogHandler(ctx, config.endpoint, label))
    root.setLevel(config.level)
    logging.captureWarnings(True)


def restore_record(fields: Any) -> logging.LogRecord:
    """Re-create a LogRecord from what :class:`RemoteLogHandler` sent; anything else
    raises :class:`ProtocolError`."""
    if not isinstance(fields, dict) or not isinstance(fields.get("name"), str):
        raise ProtocolError("a log frame must be a map with a logger name")
    if len(fields["name"]) > _NAME_MAX:
        raise ProtocolError(f"a log frame's logger name is over {_NAME_MAX} characters")
    for key, kind in _TYPES.items():
        value = fields.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise ProtocolError(f"a log frame's {key!r} is {type(value).__name__}, not {_kind_name(kind)}")
    if not all(math.isfinite(fields[k]) and 0 <= fields[k] < _LATEST_TIME for k in ("created", "msecs")):
        raise ProtocolError("a log frame's time is out of range")
    record = logging.makeLogRecord({key: fields[key] for key in _TYPES})
    record.args = None
    return record


def _existing_logger(name: str) -> logging.Logger:
    """The logger ``name`` if this process has one, else its nearest existing ancestor.

    Either handles a record alike (a logger made now would have no handlers, filters or
    level of its own), but ``logging.getLogger`` would keep a new logger for every name
    a sender makes up, for ever.
    """
    loggers = logging.Logger.manager.loggerDict
    while name:
        found = loggers.get(name)
        if isinstance(found, logging.Logger):
            return found
        name = name.rpartition(".")[0]
    return logging.getLogger()


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("None" if k is type(None) else k.__name__ for k in kinds)


def handle_frame(frame: bytes, drops: DropLog) -> None:
    """Handle a record a child sent (:class:`RemoteLogHandler`) in this process, as its
    own; a frame that is not one is dropped, and ``drops`` says so."""
    try:
        record = restore_record(unpack(frame))
    except ProtocolError as exc:
        drops.drop(exc)
        return
    logger = _existing_logger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


class LogServer:
    """Receives records from children on ``endpoint`` and handles them in this process.

    Runs a thread; :meth:`close` drains what has arrived, then stops it.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # close() wakes the thread at once, not at its next look
        self._bound = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="arl-logserver", daemon=True)
        self._error: BaseException | None = None
        self._drops = DropLog(logging.getLogger("arl.logs"), "dropped a malformed log frame")

    def start(self) -> None:
        self._thread.start()
        if not self._bound.wait(5.0):
            raise RuntimeError("the LogServer did not start")
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        socket = self._ctx.socket(zmq.PULL)
        socket.setsockopt(zmq.LINGER, 0)
        limit_input(socket, max_bytes=MAX_LOG_BYTES, rcvhwm=PEER_HWM)
        try:
            socket.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self._error = exc
            self._bound.set()
            socket.close()
            return
        self._bound.set()
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if socket in dict(poller.poll()):
                    self._handle(socket.recv())
            while socket.poll(0):  # drain what arrived before close
                self._handle(socket.recv())
        finally:
            socket.close()

    def _handle(self, frame: bytes) -> None:
        handle_frame(frame, self._drops)

    def close(self) -> None:
        """Stop receiving; records that had arrived are handled first. Idempotent."""
        self._stop.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._ctx.term()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
