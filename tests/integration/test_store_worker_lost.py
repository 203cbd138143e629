"""``WorkerLost``: a restarted worker's open episode is ended ``worker-died`` by the
writer, which says where the worker stood (on SQLite and on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select

from arl.messages.store import EnvironmentStep, EpisodeStarted, WorkerLost
from arl.status import Ending
from arl.store.recorder import WorkerProgress
from arl.store.schema import EpisodeRow
from arl.store.writer import StoreWriter
from store_writing import T0, begin_run, episode


def _episodes(reader: Engine) -> dict[tuple[int, int], tuple[int | None, str | None, bool]]:
    """(worker, index) -> (steps, end reason, ended)."""
    with reader.connect() as conn:
        rows = conn.execute(
            select(EpisodeRow.worker, EpisodeRow.index, EpisodeRow.steps, EpisodeRow.end_reason, EpisodeRow.ended_at)
        )
        return {(w, i): (steps, reason, ended is not None) for w, i, steps, reason, ended in rows}


def test_a_lost_worker_s_open_episode_ends_worker_died_and_its_progress_is_known(
    make_writer: Callable[..., StoreWriter], reader: Engine
) -> None:
    writer = make_writer()
    begin_run(writer)
    for record in episode(0, 0, 0, steps=3):  # worker 0: one whole episode of 3 steps,
        writer.submit(record)
    writer.submit(EpisodeStarted(0, 0, 1, T0 + 3))  # then one cut after two steps
    for step in (1, 2):
        writer.submit(EnvironmentStep(0, 0, 1, step, "grid", {"s": 1.0}, {}, False, False))
    writer.submit(EpisodeStarted(0, 1, 0, T0 + 3))  # worker 1 goes on
    writer.submit(WorkerLost(0, 0, Ending.WORKER_DIED, T0 + 4))
    writer.flush()

    # Episode 2 is next; one episode ended before the death; 3 + 2 steps stored.
    assert writer.worker_progress(0, 0) == WorkerProgress(next_episode=2, episodes=1, steps=5)
    assert _episodes(reader) == {
        (0, 0): (3, "terminated", True),
        (0, 1): (2, "worker-died", True),  # its steps: the last one it stored
        (1, 0): (None, None, False),  # another worker's episode stays open
    }

    # Died again before its next episode's start reached the store: nothing to end.
    writer.submit(WorkerLost(0, 0, Ending.WORKER_DIED, T0 + 5))
    writer.submit(WorkerLost(0, 2, Ending.WORKER_DIED, T0 + 5))  # a worker that never started one
    writer.submit(WorkerLost(5, 0, Ending.WORKER_DIED, T0 + 5))  # no phase 5: dropped
    writer.flush()
    assert writer.worker_progress(0, 0) == WorkerProgress(2, 1, 5)
    assert writer.worker_progress(0, 2) == WorkerProgress(0, 0, 0)
    assert writer.worker_progress(5, 0) is None
    assert writer.counts["dropped"] == 1
    assert _episodes(reader)[(1, 0)] == (None, None, False)
