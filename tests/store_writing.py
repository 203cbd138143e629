"""What the StoreWriter's tests share: a producer as a controller's link, the records of a
run, and waiting on the writer (its fixtures are in tests/integration/conftest.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import zmq
from sqlalchemy import Engine

from arl.codec import encode
from arl.messages.store import AgentAction, EnvironmentStep, EpisodeEnded, EpisodeStarted, PhaseStarted, RunStarted
from arl.store.engine import open_store
from arl.store.query import run_counts
from arl.store.recorder import COUNTED, Recorder
from arl.store.writer import StoreWriter

T0 = 1_700_000_000.0
STEPS = 10
AGENTS = ("attacker", "defender")
DEADLINE = 5.0


class Producer:
    """A controller's link to the store: a PUSH socket with its own context."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.sock.connect(endpoint)

    def send(self, records: list[Any]) -> int:
        for record in records:
            self.sock.send(encode(record))
        return len(records)

    def send_raw(self, frames: list[bytes]) -> int:
        for frame in frames:
            self.sock.send(frame)
        return len(frames)

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def wait_received(writer: StoreWriter, count: int) -> None:
    """Wait until the writer has taken ``count`` frames off its socket (and processed them)."""
    wait_until(lambda: writer.received >= count, f"{count} frames to reach the writer")


# -- records ------------------------------------------------------------------------------


def run_started(uid: str = "exp-1") -> RunStarted:
    document = {"uid": uid, "phases": [{"name": "train"}], "weights": np.array([1, 2, 3])}
    return RunStarted(uid, "file-1", 42, document, "0.1.0", "testhost", T0)


def sensors(step: int) -> dict[str, Any]:
    return {"grid.obs": np.array([step, step + 0.25]), "grid.voltage": np.float32(0.5)}


def env_rewards(step: int) -> dict[str, Any]:
    return {"attacker": np.float64(-0.25 * step), "defender": 0.25 * step}


def episode(phase: int, worker: int, index: int, steps: int = STEPS) -> list[Any]:
    """An episode as a controller records it: each step one env step and two actions."""
    records: list[Any] = [EpisodeStarted(phase, worker, index, T0 + 1)]
    for step in range(steps):
        last = step == steps - 1
        records.append(
            EnvironmentStep(phase, worker, index, step, "grid", sensors(step), env_rewards(step), last, False)
        )
        for agent in AGENTS:
            records.append(
                AgentAction(
                    phase, worker, index, step, agent, {"grid.voltage": 0.5},
                    {"grid.switch": np.int64(step % 2), "grid.level": np.float32(0.75)},
                    {agent: np.float32(0.5)}, np.float64(step),
                )
            )  # fmt: skip
    records.append(EpisodeEnded(phase, worker, index, steps, "terminated", T0 + 2))
    return records


def begin_run(writer: StoreWriter, phases: int = 1) -> int:
    """The governor's part: the run and its phases, committed; returns the run's id."""
    writer.submit(run_started())
    for index in range(phases):
        writer.submit(PhaseStarted(index, f"phase-{index}", "train", T0 + index))
    writer.flush()
    assert writer.run_id is not None
    return writer.run_id


def count_steps(engine: Engine, run_id: int) -> int:
    counts = run_counts(engine, run_id)
    return counts["environment_steps"] + counts["agent_actions"]


@contextlib.contextmanager
def begun_recorder(store_url: str) -> Iterator[Recorder]:
    """A Recorder on a new store, without the writer's thread or sockets: its run, phase 0
    and episode 0 of worker 0 begun."""
    engine = open_store(store_url)
    with engine.connect() as conn:
        recorder = Recorder(conn, dict.fromkeys(COUNTED, 0))
        for record in (run_started(), PhaseStarted(0, "train", "train", T0), EpisodeStarted(0, 0, 0, T0)):
            assert recorder.handle(encode(record)) is None
        yield recorder
    engine.dispose()
