"""Which store to use. No SQLAlchemy here: the CLI decides this before importing it."""

from __future__ import annotations

import os

DEFAULT_URL = "sqlite:///arl.db"
URL_ENV_VAR = "ARL_STORE_URL"


def store_url(explicit: str | None) -> str:
    """The store to use: the one given, else ``$ARL_STORE_URL``, else ``sqlite:///arl.db``."""
    return explicit or os.environ.get(URL_ENV_VAR) or DEFAULT_URL
