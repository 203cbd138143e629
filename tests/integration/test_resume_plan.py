"""Which runs `arl-run run --resume` continues, skips or starts anew (arl.resume.plan),
against a real SQLite store and real snapshots on disk: a sweep whose runs ended
differently."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import insert

from arl.errors import ArlError
from arl.resume import plan
from arl.state import snapshot
from arl.store.engine import open_store
from arl.store.schema import RunRow


def _spec(uid: str, state_dir: Path) -> Any:
    """What plan reads of a RunSpec: its uid and its state dir."""
    return SimpleNamespace(uid=uid, state=SimpleNamespace(dir=str(state_dir)))


def _run(engine: Any, uid: str, status: str) -> int:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(
            insert(RunRow).values(
                uid=uid, status=status, seed=1, document={}, arl_version="0", host="h", started_at=now
            )
        )
        return int(row.inserted_primary_key[0])


def _snapshot(state_dir: Path, uid: str, run_id: int) -> Path:
    staging = snapshot.begin(state_dir, uid)
    (staging.path / "workers").mkdir()
    return staging.commit({"run_uid": uid, "run_id": run_id})


def test_a_sweep_resumes_its_interrupted_runs_skips_finished_ones_and_starts_the_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'arl.db'}"
    engine = open_store(url)
    states = tmp_path / "states"
    finished = _run(engine, "sweep-a", "FINISHED")
    _snapshot(states, "sweep-a", finished)  # (a finished run's snapshots do not bring it back)
    cut = _run(engine, "sweep-b", "INTERRUPTED")
    _snapshot(states, "sweep-b", cut)
    newest = _snapshot(states, "sweep-b", cut)
    _run(engine, "sweep-c", "FAILED")  # failed before its first snapshot
    engine.dispose()
    specs = [_spec(uid, states) for uid in ("sweep-a", "sweep-b", "sweep-c", "sweep-d")]

    chosen = plan(specs, url, None)

    assert [s.uid for s in chosen.specs] == ["sweep-b", "sweep-c", "sweep-d"]
    assert chosen.resume == {"sweep-b": str(newest)}  # the newest complete snapshot
    assert chosen.notes == [
        "run sweep-a: FINISHED already; skipped",
        f"run sweep-b: goes on from snapshot {newest}",
        f"run sweep-c: FAILED with no snapshot in {states}; starts anew",
    ]  # (sweep-d never started: it just starts)

    older = snapshot.snapshots(states, "sweep-b")[0].path
    picked = plan(specs, url, str(older))
    assert ([s.uid for s in picked.specs], picked.resume) == (["sweep-b"], {"sweep-b": str(older)})
    with pytest.raises(ArlError, match="FINISHED"):
        plan(specs, url, str(snapshot.snapshots(states, "sweep-a")[0].path))
    with pytest.raises(ArlError, match="which the file does not have"):
        plan(specs[:1], url, str(older))


def test_a_snapshot_is_not_resumed_against_another_runs_store(tmp_path: Path) -> None:
    """Another store may hold a run of the same id: it is never taken for the snapshot's."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = open_store(url)
    other = _run(engine, "victim", "INTERRUPTED")
    engine.dispose()
    states = tmp_path / "states"
    path = _snapshot(states, "mine", other)  # the same id, in the store it was taken with
    with pytest.raises(ArlError, match="is not the one run 'mine' was stored in"):
        plan([_spec("mine", states)], url, None)
    with pytest.raises(ArlError, match="is not the one run 'mine' was stored in"):
        plan([_spec("mine", states)], url, str(path))
    with pytest.raises(ArlError, match="does not exist"):
        plan([_spec("mine", states)], f"sqlite:///{tmp_path / 'none.db'}", None)
