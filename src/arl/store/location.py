"""Which store to use, and how long it may keep arl waiting. No SQLAlchemy here: the CLI
decides this before importing it."""

from __future__ import annotations

import os

DEFAULT_URL = "sqlite:///arl.db"
URL_ENV_VAR = "ARL_STORE_URL"

PATIENCE = 60.0
"""Seconds a store may stay busy (SQLite locked by another writer) before the operation
waiting on it fails: SQLite's busy timeout on every connection arl opens, and the writer's
retries in all. As long as a control request may take
(:attr:`arl.governor.options.Timeouts.request`): a store shared by many runs on a loaded
machine is slow, not broken, and the run waits for it as it waits for a component."""


def store_url(explicit: str | None) -> str:
    """The store to use: the one given, else ``$ARL_STORE_URL``, else ``sqlite:///arl.db``.

    A given URL is returned as it is, even empty: ``--store ""`` is a mistake that opening
    the store reports, not a request for the default. An empty ``$ARL_STORE_URL`` counts
    as unset, as shells treat empty variables."""
    if explicit is not None:
        return explicit
    return os.environ.get(URL_ENV_VAR) or DEFAULT_URL
