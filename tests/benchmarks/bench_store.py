"""How many rows a second the StoreWriter puts into SQLite and into PostgreSQL. A figure,
not a test.

A producer process sends pre-encoded records over ipc, as controllers do: episodes of 100
steps, each step one environment step and two agent actions (so two thirds of the rows
are actions), in multipart messages of some 512 records. The clock runs from the first
record sent to the last row committed. A second figure, "writer alone", feeds the same
frames straight to the writer's record handling: the difference is what the sockets and
the producer beside it (on a 2-core machine) cost.

What a row holds matters: every float becomes JSON text, in the writer or, with
``--json-at-source``, in the sender (see ``SENDERS_MAKE_JSON``). So the figure is given for
three row shapes:

``lean``   3 sensor readings, 2 rewards; an action has 1 input, 1 setpoint, 1 reward
``numpy``  a float32 array of 8 and 2 scalars as sensors; numpy scalars in actions
``dummy``  the dummy experiment: 10 sensors, each agent seeing 5 and driving 5

PostgreSQL is a temporary server started for the run (``tests/postgres.py``: initdb and
pg_ctl in a temp dir, as the ``postgres`` user when run as root) with its default,
durable settings; without PostgreSQL binaries its figures are skipped, saying why.

    .venv/bin/python tests/benchmarks/bench_store.py [--rows 100000] [--shape lean] [--backend sqlite]
        [--json-at-source]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import multiprocessing as mp
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from arl.codec import encode
from arl.conductors.links import StoreLink
from arl.messages import store as rec
from arl.store.checkpoint import WalCheckpointer, keep_backstop
from arl.store.engine import open_store
from arl.store.jsontext import to_json_text
from arl.store.query import run_counts
from arl.store.recorder import COUNTED, Recorder
from arl.store.writer import StoreWriter

TESTS = Path(__file__).resolve().parents[1]  # where postgres.py is
BACKENDS = ("sqlite", "postgresql")
STEPS = 100
WORKERS = 4
AGENTS = ("attacker", "defender")
SENDERS_MAKE_JSON = True
"""Whether the controllers send the JSON columns' values as JSON text (made where they
arise, by arl.store.jsontext.to_json_text) rather than as dicts for the writer to encode.
The default figures follow what the controllers do (JSON made by the sender, conductors/links.py);
--no-json-at-source measures the writer making it."""
LAST_TOKEN = 7  # the producer's own Flush: commit the tail at once
MIN_WAIT, SLOWEST = 60.0, 1000  # the wait for the rows: seconds at least, and rows a second at worst

Values = dict[str, Any]
# (rng, agent) -> (sensors, env rewards, inputs, setpoints, action rewards)
Shape = Callable[[np.random.Generator, str], tuple[Values, Values, Values, Values, Values]]


def lean(rng: np.random.Generator, agent: str) -> tuple[Values, ...]:
    v = rng.random(4).tolist()
    sensors = {"grid.voltage": v[0], "grid.load": v[1], "grid.frequency": v[2]}
    return sensors, {"attacker": -v[3], "defender": v[3]}, {"grid.voltage": v[0]}, \
        {"grid.switch": v[1]}, {agent: v[3]}  # fmt: skip


def with_numpy(rng: np.random.Generator, agent: str) -> tuple[Values, ...]:
    obs = rng.random(8, dtype=np.float32)
    sensors = {"grid.voltage": float(obs[0]), "grid.load": np.float64(obs[1]), "grid.obs": obs}
    return sensors, {"attacker": -0.5, "defender": 0.5}, {"grid.voltage": float(obs[0])}, \
        {"grid.switch": np.float32(obs[2])}, {agent: np.float64(0.5)}  # fmt: skip


def dummy(rng: np.random.Generator, agent: str) -> tuple[Values, ...]:
    readings = rng.random(10).tolist()
    sensors = {f"env.s{i}": x for i, x in enumerate(readings)}
    half = 0 if agent == AGENTS[0] else 5
    inputs = {f"env.s{i}": readings[i] for i in range(half, half + 5)}
    setpoints = {f"env.a{i}": x for i, x in zip(range(half, half + 5), rng.random(5).tolist(), strict=True)}
    return sensors, {"reward": readings[0]}, inputs, setpoints, {"reward": readings[0]}


SHAPES: dict[str, Shape] = {"lean": lean, "numpy": with_numpy, "dummy": dummy}


def messages(rows: int, shape: Shape, *, json_at_source: bool = SENDERS_MAKE_JSON) -> list[list[bytes]]:
    """The records of enough episodes for ``rows`` step and action rows, as a controller's
    store link sends them (:class:`arl.conductors.links.StoreLink`): a message for an
    episode's start, then the steps' records (each step its environment step and every
    agent's action) in messages of ``StoreLink.FLUSH_RECORDS`` (and the step that
    reached it), the last with the episode's end. (A controller also sends what it holds every 10 ms, which at
    3,000 steps a second makes messages of some 90 records.) With ``json_at_source`` the
    values of the JSON columns travel as JSON text
    (:func:`arl.store.jsontext.to_json_text`), made by the sender instead of the writer."""
    j = to_json_text if json_at_source else (lambda value: value)
    episodes = math.ceil(rows / (3 * STEPS))
    rng = np.random.default_rng(0)
    out: list[list[bytes]] = []
    now = time.time()
    for e in range(episodes):
        worker, index = e % WORKERS, e // WORKERS
        out.append([encode(rec.EpisodeStarted(0, worker, index, now))])
        held: list[bytes] = []
        for step in range(STEPS):
            sensors, rewards, *_ = shape(rng, AGENTS[0])
            records = [encode(rec.EnvironmentStep(0, worker, index, step, "grid", j(sensors), j(rewards),
                                                  False, False))]  # fmt: skip
            for agent in AGENTS:
                _, _, inputs, setpoints, agent_rewards = shape(rng, agent)
                records.append(encode(rec.AgentAction(0, worker, index, step, agent, j(inputs), j(setpoints),
                                                      j(agent_rewards), np.float64(0.5))))  # fmt: skip
            held += records
            if len(held) >= StoreLink.FLUSH_RECORDS:
                out.append(held)
                held = []
        out.append([*held, encode(rec.EpisodeEnded(0, worker, index, STEPS, "max_steps", now))])
    out.append([encode(rec.Flush(LAST_TOKEN))])
    return out


def produce(endpoint: str, rows: int, shape: str, json_at_source: bool, pipe: Connection) -> None:
    batch = messages(rows, SHAPES[shape], json_at_source=json_at_source)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 10_000)
    push.connect(endpoint)
    pipe.send(sum(map(len, batch)))
    pipe.recv()  # go
    for message in batch:
        push.send_multipart(message)
    push.close()
    ctx.term()


@contextlib.contextmanager
def stores(backend: str) -> Iterator[Callable[[], str] | str]:
    """For ``backend``, a function giving the URL of a new empty store each call; or the
    reason there is none. A PostgreSQL server lives as long as the block."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="arl-bench-") as tmp:
            names = itertools.count()
            yield lambda: f"sqlite:///{Path(tmp) / f'bench-{next(names)}.db'}"
        return
    sys.path.insert(0, str(TESTS))
    from postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer.start_new(fast=False)
    except PostgresUnavailable as exc:
        yield f"skipped: {exc}"
        return
    with server:
        yield lambda: server.url(server.create_database())


def measure(rows: int, shape: str, url: str, *, json_at_source: bool = SENDERS_MAKE_JSON) -> float:
    """Rows a second, end to end: a producer process sends, the writer stores."""
    with tempfile.TemporaryDirectory(prefix="arl-bench-") as tmp:
        endpoint = f"ipc://{Path(tmp) / 'store'}"
        spawn = mp.get_context("spawn")
        mine, theirs = spawn.Pipe()
        producer = spawn.Process(target=produce, args=(endpoint, rows, shape, json_at_source, theirs))
        with StoreWriter(url, endpoint) as writer:
            writer.submit(rec.RunStarted("bench", None, 0, {}, "bench", "localhost", time.time()))
            writer.submit(rec.PhaseStarted(0, "train", "train", time.time()))
            writer.flush()
            producer.start()
            total = mine.recv()
            time.sleep(0.2)  # let the producer connect
            start = time.perf_counter()
            mine.send("go")
            expected = 3 * STEPS * math.ceil(rows / (3 * STEPS))
            deadline = time.monotonic() + max(MIN_WAIT, expected / SLOWEST)
            while writer.counts["environment_steps"] + writer.counts["agent_actions"] < expected:
                if writer.error is not None:
                    raise RuntimeError(f"the writer failed: {writer.error}") from writer.error
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the writer stored {writer.counts} of {expected} rows before the deadline")
                time.sleep(0.005)  # the producer's Flush, sent last, commits the tail at once
            elapsed = time.perf_counter() - start
            run_id = writer.run_id
            dropped = writer.counts["dropped"]
        producer.join()
        engine = open_store(url)
        try:
            assert run_id is not None
            stored = run_counts(engine, run_id)
        finally:
            engine.dispose()
    written = stored["environment_steps"] + stored["agent_actions"]
    backend = url.split(":", 1)[0].split("+")[0]
    source = ", JSON made by the sender" if json_at_source else ""
    print(f"{backend:10s} {shape:6s} {written} rows, end to end{source} ({stored['episodes']} episodes, "
          f"{total} records, {dropped} dropped), in {elapsed:.3f} s: {written / elapsed:,.0f} rows/s")  # fmt: skip
    return written / elapsed


def measure_alone(rows: int, shape: str, url: str, *, json_at_source: bool = SENDERS_MAKE_JSON) -> float:
    """The writer thread's own work on the same frames, no socket and no producer beside
    it: decode, JSON, insert, commit every 2000 rows (the default batch); on SQLite with
    the writer's checkpoint thread beside it."""
    batch = messages(rows, SHAPES[shape], json_at_source=json_at_source)
    engine = open_store(url)
    checkpointer = WalCheckpointer(engine) if url.startswith("sqlite") else None  # as the writer has one
    try:
        with engine.connect() as conn:
            counts = dict.fromkeys(COUNTED, 0)
            after_commit = None
            if checkpointer is not None:
                keep_backstop(conn)
                checkpointer.start()
                after_commit = checkpointer.committed
            recorder = Recorder(conn, counts, after_commit=after_commit)
            recorder.handle(encode(rec.RunStarted("bench", None, 0, {}, "bench", "h", 0.0)))
            recorder.handle(encode(rec.PhaseStarted(0, "train", "train", 0.0)))
            start = time.perf_counter()
            for message in batch:
                for frame in message:
                    recorder.handle(frame)
                if recorder.pending_rows >= 2000:
                    recorder.commit()
            recorder.commit()
            elapsed = time.perf_counter() - start
    finally:
        if checkpointer is not None:
            checkpointer.close()
        engine.dispose()
    written = counts["environment_steps"] + counts["agent_actions"]
    backend = url.split(":", 1)[0].split("+")[0]
    source = ", JSON made by the sender" if json_at_source else ""
    print(f"{backend:10s} {shape:6s} {written} rows, writer alone{source}, in {elapsed:.3f} s: "
          f"{written / elapsed:,.0f} rows/s")  # fmt: skip
    return written / elapsed


def report(rows: int = 100_000, shapes: tuple[str, ...] = ("lean", "dummy")) -> None:
    """``make bench``'s lines: the writer's rows a second on each backend, end to end and
    alone (see the module's docstring)."""
    print(f"store   StoreWriter rows/s, {rows:,} rows (target >= 100,000/s into SQLite):")
    for backend in BACKENDS:
        with stores(backend) as new_store:
            if isinstance(new_store, str):
                print(f"store     {backend:10s} {new_store}")
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                ends = [f"{shape} {measure(rows, shape, new_store()):,.0f}" for shape in shapes]
                alone = [f"{shape} {measure_alone(rows, shape, new_store()):,.0f}" for shape in shapes]
            print(f"store     {backend:10s} end to end: {', '.join(ends)};  writer alone: {', '.join(alone)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument(
        "--json-at-source",
        action=argparse.BooleanOptionalAction,
        default=SENDERS_MAKE_JSON,
        help="the sender makes the JSON columns' text (default: as the controllers do)",
    )
    args = parser.parse_args()
    for backend in BACKENDS if args.backend == "all" else [args.backend]:
        with stores(backend) as new_store:
            if isinstance(new_store, str):
                print(f"{backend:10s} {new_store}")
                continue
            for shape in SHAPES if args.shape == "all" else [args.shape]:
                measure(args.rows, shape, new_store(), json_at_source=args.json_at_source)
                measure_alone(args.rows, shape, new_store(), json_at_source=args.json_at_source)


if __name__ == "__main__":
    main()
