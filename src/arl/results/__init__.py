"""What runs stored, as pandas DataFrames; the Python side of ``arl-run results``.

::

    import arl.results as results

    results.runs(status="finished")            # one row per run
    results.episodes("dummy-run")              # one row per episode, return.<agent> columns
    results.returns("dummy-run")               # tidy: phase, worker, episode, agent, return
    results.steps("dummy-run", phase="phase_0")  # sensors.<id>, rewards.<id> columns
    results.metrics("dqn-run", name="loss")    # what brains and muscles logged
    results.compare(["run-a", "run-b"])        # side by side: swept values, mean return per phase and agent
    results.plot_returns("dummy-run", "returns.png")
    results.to_tensorboard("dummy-run", "tb")  # event files in tb/dummy-run/
    results.to_mlflow("dummy-run", "mlruns")   # an MLflow run in mlruns/mlflow.db
    results.plot_runs(["run-a", "run-b"], "compared.png")  # several runs in one figure

A run is named by its uid (the newest run with that uid) or its database id. ``store`` is a
SQLAlchemy URL, a ``pathlib.Path`` to a SQLite file, an open engine, or None for
``$ARL_STORE_URL``, else ``sqlite:///arl.db``. Needs pandas (DataFrames), pyarrow
(Parquet) and matplotlib (plots): ``pip install 'arl-core[results]'``; tensorboardX and
mlflow-skinny (``to_tensorboard``, ``to_mlflow``): ``pip install 'arl-core[tracking]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `import x as x`: re-exported, for the type checker
    from arl.results.files import export as export
    from arl.results.frames import actions as actions
    from arl.results.frames import compare as compare
    from arl.results.frames import episodes as episodes
    from arl.results.frames import events as events
    from arl.results.frames import metrics as metrics
    from arl.results.frames import phases as phases
    from arl.results.frames import returns as returns
    from arl.results.frames import runs as runs
    from arl.results.frames import steps as steps
    from arl.results.plot import plot_returns as plot_returns
    from arl.results.plot import plot_runs as plot_runs
    from arl.results.queries import RunNotFound as RunNotFound
    from arl.results.queries import Store as Store
    from arl.results.queries import StoreNotFound as StoreNotFound
    from arl.results.tracking import to_mlflow as to_mlflow
    from arl.results.tracking import to_tensorboard as to_tensorboard

# `arl-run` imports arl.cli.results, and so this package, whenever it starts: this
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
    "metrics": "arl.results.frames",
    "compare": "arl.results.frames",
    "export": "arl.results.files",
    "plot_returns": "arl.results.plot",
    "plot_runs": "arl.results.plot",
    "RunNotFound": "arl.results.queries",
    "StoreNotFound": "arl.results.queries",
    "Store": "arl.results.queries",
    "to_tensorboard": "arl.results.tracking",
    "to_mlflow": "arl.results.tracking",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
