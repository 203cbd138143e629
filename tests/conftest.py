"""Shared fixtures: experiment files written on the fly, arl-run as a subprocess, leak checks."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from arl.testing import check_process_leak
from arl_runner import ArlRun

pytest_plugins = ["store_fixtures"]  # a PostgreSQL server, and `store_url` over SQLite and PostgreSQL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``long(seconds)`` first, the longest first: with xdist's work
    stealing the other workers take the rest around them, rather than one long test,
    begun late, ending the suite alone."""

    def seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long")
        return -float(marker.args[0]) if marker is not None else 0.0

    items.sort(key=seconds)  # (a stable sort: the others keep their order)


@pytest.fixture
def rundir() -> Iterator[str]:
    """A private directory for ipc endpoints, short enough for their ~107-byte path limit."""
    path = tempfile.mkdtemp(prefix="arl-t-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves an arl[...] process behind."""
    with check_process_leak():
        yield


@pytest.fixture
def arl_run(tmp_path: Path) -> Iterator[ArlRun]:
    runner = ArlRun(tmp_path)
    yield runner
    runner.reap()
