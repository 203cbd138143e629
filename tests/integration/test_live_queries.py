"""What a live run's status reads from the store (``arl.governor.livestate``), on SQLite
and PostgreSQL, at 10,000 episodes: each worker's newest episode, and the phase's tally of
ended episodes with the returns of the newest, read on from one status to the next.
The progress display asks a status every half second, so these must cost the same at
the 10,000th episode as at the first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event, insert, select, update

from arl.governor.control import PhaseTally
from arl.governor.livestate import read_tally, stored_progress
from arl.store.engine import open_store
from arl.store.schema import AgentActionRow, EnvironmentStepRow, EpisodeRow, PhaseRow, RunRow

EPISODES = 10_000  # 5,000 on each of 2 workers
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _run(engine: Engine, uid: str, episodes: int, *, actions: bool = True) -> tuple[int, list[int]]:
    """A run whose phase 0 has ``episodes`` of 10 steps on workers 0 and 1, in turn, the
    newest 12 each with one action of each agent (red's objective the episode's id, blue's
    minus it; none without ``actions``, as with --no-store-steps), but for worker 0's
    newest, still open with 3 steps stored. Its id, and its episodes' ids in order."""
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
        rows_of_actions = [
            {"episode_id": e, "step": 0, "agent": agent, "inputs": {}, "setpoints": {}, "rewards": {},
             "objective": sign * e}
            for e in ids[-12:] for agent, sign in (("red", 1.0), ("blue", -1.0))
        ]  # fmt: skip
        if actions:
            conn.execute(insert(AgentActionRow), rows_of_actions)
        steps = [
            {"episode_id": open_one, "step": s, "env_uid": "env", "sensors": {}, "rewards": {}, "terminated": False,
             "truncated": False}
            for s in range(3)
        ]  # fmt: skip
        conn.execute(insert(EnvironmentStepRow), steps)
    return int(run_id), ids


def _vm_steps(engine: Engine, work: Callable[[], object]) -> int:
    """Hundreds of SQLite virtual-machine steps ``work``'s statements took: what a query
    costs, counted rather than timed (a loaded machine changes the time, not the count)."""
    counted = [0]

    def counting(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.set_progress_handler(lambda: counted.__setitem__(0, counted[0] + 1), 100)

    engine.dispose()  # (new connections, each with the handler)
    event.listen(engine, "connect", counting)
    try:
        work()
    finally:
        event.remove(engine, "connect", counting)
        engine.dispose()
    return counted[0]


def test_a_status_reads_a_phase_of_10000_episodes_by_index_and_reads_on_from_there(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        run_id, ids = _run(engine, "big", EPISODES)
        _run(engine, "other", 6)  # (another run's episodes are not this one's)
        if engine.dialect.name == "sqlite":  # a status's cost grows with the phase, not its square
            small, _ = _run(engine, "small", EPISODES // 10)
            costs = [
                _vm_steps(engine, lambda r=r: (read_tally(engine, r, PhaseTally(0), 10), stored_progress(engine, r, 0)))
                for r in (small, run_id)
            ]
            assert costs[1] < 20 * costs[0], costs  # (10x: linear; the old worker query's 100x: 7 s a status)
        tally = read_tally(engine, run_id, PhaseTally(0), 10)
        newest = stored_progress(engine, run_id, 0)
        assert newest == {0: (4999, 2), 1: (4999, 0)}  # worker 0's open episode is at its step 2
        open_one, last = ids[-2], ids[-1]
        assert (tally.episodes, tally.steps) == (EPISODES - 1, 10 * (EPISODES - 1))
        assert (tally.seen, tally.still_open) == (last, (open_one,))  # (the open one is read again next time)
        ended = [last, *ids[-12:-2][::-1]][:10]
        assert sorted(tally.returns) == sorted(ended)
        assert tally.returns[last] == {"red": float(last), "blue": -float(last)}
        with engine.begin() as conn:
            conn.execute(update(EpisodeRow).where(EpisodeRow.id == open_one).values(ended_at=T0, steps=3))
        again = read_tally(engine, run_id, tally, 10)
        assert (again.episodes, again.steps) == (EPISODES, 10 * (EPISODES - 1) + 3)
        assert (again.seen, again.still_open) == (last, ())
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


def _ended_episodes(engine: Engine, phase_id: int, worker: int, indexes: range) -> list[int]:
    """Episodes of 10 steps that began and ended since, on ``worker``; their ids."""
    with engine.begin() as conn:
        rows = [{"phase_id": phase_id, "worker": worker, "index": i, "started_at": T0, "ended_at": T0, "steps": 10,
                 "end_reason": "terminated"} for i in indexes]  # fmt: skip
        conn.execute(insert(EpisodeRow), rows)
        found = conn.execute(
            select(EpisodeRow.id).where(EpisodeRow.phase_id == phase_id, EpisodeRow.worker == worker)
            .where(EpisodeRow.index.in_(list(indexes)))
        )  # fmt: skip
        return sorted(int(i) for (i,) in found)


def test_a_tally_of_episodes_without_actions_reads_on_with_no_returns(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        run_id, _ = _run(engine, "no-steps", 20, actions=False)  # (--no-store-steps: no action is stored)
        tally = read_tally(engine, run_id, PhaseTally(0), 10)
        assert tally.episodes == 19
        assert len(tally.returns) == 10
        assert all(r == {} for r in tally.returns.values())
        assert tally.phase_id is not None
        new = _ended_episodes(engine, tally.phase_id, 1, range(10, 12))  # (fewer than 10 ended since)
        again = read_tally(engine, run_id, tally, 10)  # (a KeyError before: {} was taken for "not read")
        assert again.episodes == 21
        assert set(new) <= set(again.returns)
        assert all(r == {} for r in again.returns.values())
    finally:
        engine.dispose()


def test_a_long_open_episode_is_read_again_alone_not_with_every_episode_after_it(store_url: str) -> None:
    engine = open_store(store_url)
    try:
        run_id, ids = _run(engine, "long-open", 40)
        first, last_open = ids[0], ids[-2]
        with engine.begin() as conn:  # the phase's first episode is open still (a worker in a long one)
            conn.execute(update(EpisodeRow).where(EpisodeRow.id == first).values(ended_at=None, steps=None))
        tally = read_tally(engine, run_id, PhaseTally(0), 10)
        assert (tally.seen, tally.still_open, tally.episodes, tally.steps) == (ids[-1], (first, last_open), 38, 380)
        assert tally.phase_id is not None
        with engine.begin() as conn:  # (an ended episode never changes: one that did would be seen if read again)
            conn.execute(update(EpisodeRow).where(EpisodeRow.id == ids[5]).values(steps=1000))
            conn.execute(update(EpisodeRow).where(EpisodeRow.id == first).values(ended_at=T0, steps=4))
        new = _ended_episodes(engine, tally.phase_id, 1, range(20, 22))
        again = read_tally(engine, run_id, tally, 10)
        assert (again.seen, again.still_open, again.episodes, again.steps) == (new[-1], (last_open,), 41, 404)
        assert first not in again.returns  # (not among the newest 10)
        assert again.returns[new[-1]] == {}  # (no actions stored of it)
    finally:
        engine.dispose()
