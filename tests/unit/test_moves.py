"""Which snapshot a run whose machine was lost goes on from elsewhere
(:meth:`arl.executor.Executor._goes_on_from`): the newest of this run's own, never one an
earlier ``arl-run`` of the same file left in the same folder (its uid is the same)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from arl.config.loader import load_experiment
from arl.config.spec import RunSpec, StateSpec
from arl.executor import MAX_MOVES, Executor, ExecutorOptions, _Governor
from arl.state import snapshot

DUMMY = Path(__file__).resolve().parents[2] / "experiments" / "dummy.yml"


class _EveryMachineLost:
    """The part of a backend the decision asks: whether the governor died with its machine."""

    start_at_once = 0

    def __init__(self, lost: bool) -> None:
        self._lost = lost

    def lost(self, governor: _Governor) -> bool:
        return self._lost


def _spec(states: Path) -> RunSpec:
    return dataclasses.replace(load_experiment(DUMMY), state=StateSpec(dir=str(states)))


def _goes_on_from(spec: RunSpec, run_id: int | None, *, lost: bool = True, moves: int = 0) -> str | None:
    async def decide() -> str | None:
        executor = Executor(ExecutorOptions("sqlite://", "/nowhere"))
        executor.backend = _EveryMachineLost(lost)  # type: ignore[assignment]
        governor = _Governor(0, spec, run_id=run_id, moves=moves)
        return await executor._goes_on_from(governor)

    return asyncio.run(decide())


def test_a_lost_run_goes_on_from_its_own_newest_snapshot_only(tmp_path: Path) -> None:
    spec = _spec(tmp_path / "states")
    assert _goes_on_from(spec, 7) is None  # no snapshot yet: it fails
    snapshot.begin(tmp_path / "states", spec.uid).commit({"run_id": 7})
    newest = snapshot.begin(tmp_path / "states", spec.uid).commit({"run_id": 7})
    assert _goes_on_from(spec, 7) == str(newest)
    # The newest is an earlier arl-run's (another row of the store): not this run's to take.
    assert _goes_on_from(spec, 8) is None
    assert _goes_on_from(spec, None) is None  # (a run with no row yet has no snapshot)
    assert _goes_on_from(spec, 7, lost=False) is None  # a governor that died of itself fails
    assert _goes_on_from(spec, 7, moves=MAX_MOVES) is None
    assert _goes_on_from(dataclasses.replace(spec, state=None), 7) is None  # no state saving
