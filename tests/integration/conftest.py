"""The StoreWriter's fixtures: every test that uses the store runs on SQLite and on
PostgreSQL (``store_url``), the writer bound to an ipc endpoint as in a run."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from arl.errors import ArlError
from arl.store.engine import open_store
from arl.store.writer import StoreWriter
from store_writing import Producer


@pytest.fixture
def url(store_url: str) -> str:
    """Every test that uses the store runs on SQLite and on PostgreSQL."""
    return store_url


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    """The writer's endpoint, in a directory short enough for the ipc path limit."""
    if len(str(tmp_path)) < 80:
        yield f"ipc://{tmp_path}/store"
        return
    short = tempfile.mkdtemp(prefix="arl-")
    try:
        yield f"ipc://{short}/store"
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def make_writer(url: str, endpoint: str) -> Iterator[Callable[..., StoreWriter]]:
    """Started writers, all closed at the end (close is idempotent)."""
    writers: list[StoreWriter] = []

    def make(**options: Any) -> StoreWriter:
        writer = StoreWriter(url, endpoint, **options)
        writers.append(writer)
        writer.start()
        return writer

    yield make
    for writer in writers:
        with contextlib.suppress(ArlError):  # a failure the test provoked, and checked
            writer.close()


@pytest.fixture
def connect(endpoint: str) -> Iterator[Callable[[], Producer]]:
    """Producers, connected once called: after the writer has bound, so that no first
    connect fails and waits out zmq's reconnect interval."""
    producers: list[Producer] = []

    def make() -> Producer:
        producers.append(Producer(endpoint))
        return producers[-1]

    yield make
    for p in producers:
        p.close()


@pytest.fixture
def reader(url: str) -> Iterator[Engine]:
    """A second engine on the same file, as a dashboard or a query would have."""
    engine = open_store(url)
    yield engine
    engine.dispose()
