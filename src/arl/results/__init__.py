"""What runs stored, as pandas DataFrames; the Python side of ``arl-run results``.

::

    import arl.results as results

    results.runs(status="finished")            # one row per run
    results.episodes("dummy-run")              # one row per episode, return.<agent> columns
    results.returns("dummy-run")               # tidy: phase, worker, episode, agent, return
    results.steps("dummy-run", phase="phase_0")  # sensors.<id>, rewards.<id> columns
    results.plot_returns("dummy-run", "returns.png")

A run is named by its uid (the newest run with that uid) or its database id. ``store`` is a
SQLAlchemy URL, the path of a SQLite file, an open engine, or None for
``$ARL_STORE_URL``, else ``sqlite:///arl.db``. Needs pandas (DataFrames), pyarrow
(Parquet) and matplotlib (plots): ``pip install 'arl-core[results]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arl.results.files import export
    from arl.results.frames import actions, episodes, events, phases, returns, runs, steps
    from arl.results.plot import plot_returns
    from arl.results.queries import RunNotFound, Store, StoreNotFound

# `arl-run` imports arl.results.commands, and so this package, whenever it starts: this
# module must not import SQLAlchemy or pandas. Each name is imported from its module the
# first time it is used.
_MODULES = {
    "runs": "arl.results.frames",
    "phases": "arl.results.frames",
    "episodes": "arl.results.frames",
    "returns": "arl.results.frames",
    "steps": "arl.results.frames",
    "actions": "arl.results.frames",
    "events": "arl.results.frames",
    "export": "arl.results.files",
    "plot_returns": "arl.results.plot",
    "RunNotFound": "arl.results.queries",
    "StoreNotFound": "arl.results.queries",
    "Store": "arl.results.queries",
}

__all__ = [
    "RunNotFound",
    "Store",
    "StoreNotFound",
    "actions",
    "episodes",
    "events",
    "export",
    "phases",
    "plot_returns",
    "returns",
    "runs",
    "steps",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
