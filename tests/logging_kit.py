"""Log records caught in the test's own process, and a LogServer for a test."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from arl.proc.logs import LogConfig, LogServer


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, label: str | None = None) -> list[str]:
        return [r.getMessage() for r in list(self.records) if label is None or getattr(r, "arl_process", None) == label]


@contextmanager
def collect(name: str, level: int = logging.DEBUG) -> Iterator[ListHandler]:
    """Collect what reaches logger ``name`` in this process (set to ``level`` meanwhile)."""
    logger = logging.getLogger(name)
    handler = ListHandler()
    old_level = logger.level
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@dataclass
class Logs:
    server: LogServer
    config: LogConfig


@contextmanager
def log_server(rundir: str) -> Iterator[Logs]:
    """A LogServer on ``rundir``'s ipc endpoint, closed after the block."""
    server = LogServer(f"ipc://{rundir}/log")
    server.start()
    try:
        yield Logs(server, LogConfig(server.endpoint, logging.DEBUG))
    finally:
        server.close()
