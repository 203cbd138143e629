"""Store fixtures (a pytest plugin, registered in conftest.py): a real PostgreSQL server
for the session, a fresh database for each test, and ``store_url`` to run a test on
SQLite and on PostgreSQL.

Without PostgreSQL binaries the PostgreSQL cases are skipped, saying why; with
``ARL_REQUIRE_POSTGRES=1`` (for CI) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from postgres import PostgresServer, PostgresUnavailable

REQUIRE_ENV_VAR = "ARL_REQUIRE_POSTGRES"
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this session, stopped and removed at its end."""
    try:
        server = PostgresServer.start_new()
    except PostgresUnavailable as exc:
        if os.environ.get(REQUIRE_ENV_VAR) == "1":
            pytest.fail(f"PostgreSQL is required (${REQUIRE_ENV_VAR}=1) but unavailable: {exc}")
        pytest.skip(f"no PostgreSQL server for the store tests: {exc}")
    with server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database of its own for each test, dropped after it."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a SQLite file in the test's directory, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
