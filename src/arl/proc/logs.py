"""Logging from every process returns to the executor through one LogServer socket.

Children send each record as a msgpack map (never pickle) over a ZeroMQ PUSH socket;
the LogServer in the executor re-creates the record and hands it to the executor's
own handlers, tagged with the sending process's label (``role:name``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import zmq

from arl.codec import pack, unpack
from arl.errors import ProtocolError

_FIELDS = ("name", "levelno", "levelname", "pathname", "lineno", "funcName", "created", "msecs")
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
            fields: dict[str, Any] = {k: getattr(record, k) for k in _FIELDS}
            fields["msg"] = record.getMessage()
            fields["exc_text"] = _FORMATTER.formatException(record.exc_info) if record.exc_info else None
            fields["arl_process"] = getattr(record, "arl_process", self.label)
            data = pack(fields)
            with self._lock_send:
                self._socket.send(data, zmq.NOBLOCK)
        except zmq.Again:
            pass  # the LogServer is gone or flooded: dropping a log line beats blocking a step
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with self._lock_send:
            self._socket.close()
        super().close()


def install_child_logging(ctx: zmq.Context[Any], config: LogConfig, label: str) -> None:
    """Route this process's logging to the LogServer, replacing inherited handlers."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RemoteLogHandler(ctx, config.endpoint, label))
    root.setLevel(config.level)
    logging.captureWarnings(True)


def restore_record(fields: dict[str, Any]) -> logging.LogRecord:
    """Re-create a LogRecord from what :class:`RemoteLogHandler` sent."""
    if not isinstance(fields, dict) or not isinstance(fields.get("name"), str):
        raise ProtocolError("a log frame must be a map with a logger name")
    if not isinstance(fields.get("levelno"), int) or isinstance(fields.get("levelno"), bool):
        raise ProtocolError("a log frame must carry an integer levelno")
    record = logging.makeLogRecord(fields)
    record.args = None
    return record


class LogServer:
    """Receives records from children on ``endpoint`` and handles them in this process.

    Runs a thread; :meth:`close` drains what has arrived, then stops it.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="arl-logserver", daemon=True)
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._bound.wait(5.0):
            raise RuntimeError("the LogServer did not start")
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        socket = self._ctx.socket(zmq.PULL)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            socket.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self._error = exc
            self._bound.set()
            socket.close()
            return
        self._bound.set()
        try:
            while not self._stop.is_set():
                if socket.poll(100):
                    self._handle(socket.recv())
            while socket.poll(0):  # drain what arrived before close
                self._handle(socket.recv())
        finally:
            socket.close()

    @staticmethod
    def _handle(frame: bytes) -> None:
        try:
            record = restore_record(unpack(frame))
        except ProtocolError as exc:
            logging.getLogger("arl.logs").warning("dropped a malformed log frame: %s", exc)
            return
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)

    def close(self) -> None:
        """Stop receiving; records that had arrived are handled first. Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._ctx.term()
