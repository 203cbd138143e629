"""``WorkerLost``: a restarted worker's open episode is ended ``worker-died`` by the
writer, which says where the worker stood (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, select

from arl.governor.restart import SETTLE, end_episodes
from arl.messages.store import EnvironmentStep, EpisodeStarted, WorkerLost
from arl.status import Ending
from arl.store.recorder import WorkerProgress
from arl.store.schema import EpisodeRow
from arl.store.writer import StoreWriter
from store_writing import T0, Producer, begin_run, episode


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


def _cut(worker: int, steps: int) -> list[object]:
    """A dead controller's last records: an episode started and ``steps`` steps of it."""
    started = EpisodeStarted(0, worker, 0, T0 + 1)
    return [
        started,
        *(EnvironmentStep(0, worker, 0, s, "grid", {"s": 1.0}, {}, False, False) for s in range(1, steps + 1)),
    ]


def test_a_restart_ends_the_episode_whose_records_cross_the_socket_after_its_barrier(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer], reader: Engine
) -> None:
    """The dead process's last records (sent on the ipc socket) can reach the writer
    after the restart's barrier (sent on the in-process pipe); taken before its
    WorkerLost, they are the cut episode that ends ``worker-died`` (a flush alone left
    the episode open and the worker's progress at nothing)."""
    writer = make_writer()
    begin_run(writer)
    producer = connect()
    late = threading.Timer(0.02, producer.send, (_cut(0, 3),))
    late.start()
    try:
        [progress] = asyncio.run(end_episodes(writer, 0, [0]))
    finally:
        late.join()
    assert progress == WorkerProgress(next_episode=1, episodes=0, steps=3)
    assert _episodes(reader) == {(0, 0): (3, "worker-died", True)}


def test_a_restart_s_drain_ends_while_other_workers_keep_sending(
    make_writer: Callable[..., StoreWriter], connect: Callable[[], Producer]
) -> None:
    """Quiet never comes while other workers step: the restart's drain takes records for
    SETTLE seconds at most, not until most of the store's patience is spent."""
    writer = make_writer()
    begin_run(writer)
    producer = connect()
    stop = threading.Event()

    def keep_sending() -> None:
        step = 0
        while not stop.is_set():
            step += 1
            producer.send([EnvironmentStep(0, 1, 0, step, "grid", {"s": 1.0}, {}, False, False)])
            time.sleep(0.005)

    sender = threading.Thread(target=keep_sending)
    producer.send([EpisodeStarted(0, 1, 0, T0)])
    sender.start()
    try:
        began = time.monotonic()
        [progress] = asyncio.run(end_episodes(writer, 0, [0]))
        took = time.monotonic() - began
    finally:
        stop.set()
        sender.join()
    assert progress == WorkerProgress(0, 0, 0)
    assert took < SETTLE + 1.0, took
