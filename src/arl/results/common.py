"""What the ``arl-run results`` commands and the library share, importable at the CLI's
start: no SQLAlchemy, pandas or matplotlib here."""

from __future__ import annotations

import importlib
from types import ModuleType

from arl.errors import ArlError

TABLES = ("steps", "actions", "episodes")
"""The tables of a run that can be exported."""

FORMATS = ("csv", "parquet")
"""The file formats they can be exported as."""

EXTRA = "arl-core[results]"
"""The install extra that brings pandas, pyarrow and matplotlib."""


def require(module: str, purpose: str) -> ModuleType:
    """``module``, imported; or an :class:`ArlError` saying how to install it for ``purpose``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.partition(".")[0]
        raise ArlError(f"{purpose} need {package}: pip install '{EXTRA}' (or pip install {package})") from exc
