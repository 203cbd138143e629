"""What a live run's status reads from the store (``arl.governor.livestate``), on SQLite
and PostgreSQL, at 10,000 episodes: each worker's newest episode, and the phase's tally of
ended episodes with the returns of the newest, read on from one status to the next.
The progress display asks a status every half second, so these must cost the same at
the 10,000th episode as at the first."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from arl.governor.control import PhaseTally
from arl.governor.livestate import read_tally, stored_progress
from arl.store.engine import open_store
from arl.store.schema import AgentActionRow, EnvironmentStepRow, EpisodeRow, PhaseRow, RunRow

EPISODES = 10_000  # 5,000 on each of 2 workers
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _run(engine: Engine, uid: str, episodes: int) -> tuple[int, list[int]]:
    """A run whose phase 0 has ``episodes`` of 10 steps on workers 0 and 1, in turn, each
    with one action of each agent (red's objective the episode's id, blue's minus it),
    but for worker 0's newest, still open with 3 steps stored. Its id, and its episodes'
    ids in order."""
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(RunRow).values(uid=uid, status="RUNNING", seed=1, document={}, arl_version="t", host="h",
                                  started_at=T0)
        ).inserted_primary_key[0]  # fmt: skip
        phase_id = conn.execute(
            insert(PhaseRow).values(run_id=run_id, index=0, name="train", mode="train", started_at=T0)
        ).inserted_primary_key[0]
        rows = [
            {"phase_id": phase_id, "worker": i % 2, "index": i // 2, "started_at": T0, "ended_at": T0, "steps": 10,
             "end_reason": "terminated"}
            for i in range(episodes)
        ]  # fmt: skip
        conn.execute(insert(EpisodeRow), rows)
        ids = list(conn.execute(select(EpisodeRow.id).where(EpisodeRow.phase_id == phase_id).order_by(EpisodeRow.id)))
        ids = [int(i) for (i,) in ids]
        open_one = ids[-2]  # worker 0's newest
        conn.execute(update(EpisodeRow).where(EpisodeRow.id == open_one).values(ended_at=None, steps=None))
        actions = [
            {"episode_id": e, "step": 0, "agent": agent, "inputs": {}, "setpoints": {}, "rewards": {},
             "objective": sign * e}
            for e in ids[-12:] for agent, sign in (("red", 1.0), ("blue", -1.0))
        ]  # fmt: skip
        conn.execute(insert(AgentActionRow), actions)
        steps = [
            {"episode_id": open_one, "step": s, "env_uid": "env", "sensors": {}, "rewards": {}, "terminated": False,
             "truncated": False}
            for s in range(3)
        ]  # fmt: skip
        conn.execute(insert(EnvironmentStepRow), steps)
    return int(run_id), ids


def test_a_status_reads_a_phase_of_10000_episodes_by_index_and_reads_on_from_there(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        run_id, ids = _run(engine, "big", EPISODES)
        _run(engine, "other", 6)  # (another run's episodes are not this one's)
        started = time.perf_counter()
        tally = read_tally(engine, run_id, PhaseTally(0), 10)
        newest = stored_progress(engine, run_id, 0)
        took = time.perf_counter() - started
        assert took < 1.0, f"a status's queries took {took:.2f} s at {EPISODES:,} episodes"  # (7 s before on SQLite)
        assert newest == {0: (4999, 2), 1: (4999, 0)}  # worker 0's open episode is at its step 2
        open_one, last = ids[-2], ids[-1]
        assert (tally.episodes, tally.steps) == (EPISODES - 1, 10 * (EPISODES - 1))
        assert tally.counted == ids[-3]  # counted on up to the open episode; the one after it only this time
        ended = [last, *ids[-12:-2][::-1]][:10]
        assert sorted(tally.returns) == sorted(ended)
        assert tally.returns[last] == {"red": float(last), "blue": -float(last)}
        with engine.begin() as conn:
            conn.execute(update(EpisodeRow).where(EpisodeRow.id == open_one).values(ended_at=T0, steps=3))
        again = read_tally(engine, run_id, tally, 10)
        assert (again.episodes, again.steps, again.counted) == (EPISODES, 10 * (EPISODES - 1) + 3, last)
        assert open_one in again.returns
        assert min(again.returns) == ids[-10]
    finally:
        engine.dispose()


def test_a_tally_before_the_phase_has_its_row_stays_empty(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        run_id, _ = _run(engine, "small", 2)
        empty: Any = read_tally(engine, run_id, PhaseTally(1), 10)
        assert empty == PhaseTally(1)
    finally:
        engine.dispose()
