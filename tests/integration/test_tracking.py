"""``arl-run results export --format tensorboard|mlflow`` and arl.results.to_tensorboard /
to_mlflow on a real store (SQLite and PostgreSQL), read back with the tools' own formats:
TensorBoard's event files parsed frame by frame (TFRecord framing, tensorboardX's Event
protobuf), MLflow's store through MlflowClient.

The run is written through the StoreWriter's Recorder, without processes: 2 phases, 2
workers, 2 agents, logged metrics, a sweep's values and an episode still open; then once
more, with other values (its file run again: the same uid). What each export must hold
is computed here from the records written, not through arl.

TensorBoard is tested on both backends (it reads the same series MLflow logs); MLflow on
SQLite only, as creating its own store costs a second or more each time.
"""

from __future__ import annotations

import csv
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML
from sqlalchemy.exc import SADeprecationWarning

import arl.results as results
from arl.cli import main
from arl.codec import encode
from arl.messages.store import (
    AgentAction,
    EpisodeEnded,
    EpisodeStarted,
    Metrics,
    PhaseEnded,
    PhaseStarted,
    RunEnded,
    RunStarted,
)
from arl.results.tracking import OWNER_FILE, TRUNCATED
from arl.store.engine import open_store
from arl.store.recorder import COUNTED, Recorder
from store_fixtures import BACKENDS

T0 = 1_700_000_000.0
UID = "track-run"
LONG = "x" * 7000
DOCUMENT = {
    "uid": UID,
    "experiment_uid": "tracking",
    "seed": 7,
    "schedule": [{"train": {"phase_config": {"episodes": 2, "workers": 2}, "agents": [{"name": "defender"}]}}],
    "notes": LONG,
    "layers": [64, 64],
}
SWEPT = {"schedule.train.phase_config.episodes": 2}
PHASES = ((0, "train", "train"), (1, "test", "test"))
# (phase, worker, episode, agents acting, ended): phase 1's episode 1 is still open
EPISODES = [
    *((0, w, i, ("attacker", "defender"), True) for i in range(2) for w in range(2)),
    (1, 0, 0, ("defender",), True),
    (1, 0, 1, ("defender",), False),
]
STEPS = 3
AGAIN = 100.0  # what the second run of UID adds to each value (a multiple of 1/8: sums stay exact)
METRICS = {  # (phase, agent): [worker, name, step, value, time]
    (0, "defender"): [[None, "loss", 1, 0.5, T0 + 1], [None, "loss", 2, 0.25, T0 + 2], [1, "eps", 5, 0.125, T0 + 3]],
    (1, "attacker"): [[0, "eps", 4, 0.75, T0 + 4]],
}
EXPECTED_PARAMS = {
    "uid": UID,
    "experiment_uid": "tracking",
    "seed": "7",
    "schedule.0.train.phase_config.episodes": "2",
    "schedule.0.train.phase_config.workers": "2",
    "schedule.0.train.agents.0.name": "defender",
    "notes": LONG[: 6000 - len(TRUNCATED)] + TRUNCATED,
    "layers": "[64, 64]",
}


def objective(phase: int, worker: int, episode: int, step: int, agent: str, shift: float = 0.0) -> float:
    """Multiples of 1/8, so that sums are exact in any order."""
    value = 1.0 + phase + 0.5 * worker + 0.25 * episode + 0.125 * step
    return shift + (value if agent == "defender" else -value)


def ended_at(phase: int, worker: int, episode: int) -> float:
    return T0 + 10 * phase + 2 * episode + worker + 0.5


def expected_series(shift: float = 0.0) -> dict[str, list[tuple[int, float, float]]]:
    """Each series of the run written with ``shift``: its (step, value, time) in step
    order, from the records written."""
    series: dict[str, list[tuple[int, float, float]]] = {}
    number: dict[int, int] = {}
    for phase, worker, episode, agents, ended in EPISODES:  # in (phase, episode, worker) order
        step = number[phase] = number.get(phase, -1) + 1
        if not ended:
            continue
        for agent in agents:
            value = sum(objective(phase, worker, episode, s, agent, shift) for s in range(STEPS))
            key = f"{PHASES[phase][1]}/{agent}/return"
            series.setdefault(key, []).append((step, value, ended_at(phase, worker, episode)))
    for (phase, agent), values in METRICS.items():
        for worker, name, step, value, time in values:
            suffix = "" if worker is None else f"/worker{worker}"
            key = f"{PHASES[phase][1]}/{agent}/metrics/{name}{suffix}"
            series.setdefault(key, []).append((step, value + shift, time))
    return series


def records(shift: float = 0.0) -> Iterator[Any]:
    yield RunStarted(UID, "tracking", 7, DOCUMENT, "0.1.0", "testhost", T0, swept=SWEPT)
    for index, name, mode in PHASES:
        yield PhaseStarted(index, name, mode, T0 + 10 * index)
        for phase, worker, episode, agents, ended in EPISODES:
            if phase != index:
                continue
            yield EpisodeStarted(phase, worker, episode, T0 + 10 * phase)
            for step in range(STEPS):
                for agent in agents:
                    value = objective(phase, worker, episode, step, agent, shift)
                    yield AgentAction(phase, worker, episode, step, agent, {}, {}, {}, value)
            if ended:
                yield EpisodeEnded(phase, worker, episode, STEPS, "terminated", ended_at(phase, worker, episode))
        for (phase, agent), values in METRICS.items():
            if phase == index:
                yield Metrics(
                    phase, agent, [[w, name, step, value + shift, time] for w, name, step, value, time in values]
                )
        yield PhaseEnded(index, "completed", T0 + 10 * index + 9)
    yield RunEnded("FINISHED", None, T0 + 50, "completed")


@dataclass(frozen=True)
class Stored:
    url: str


def write_runs(url: str) -> Stored:
    """Run 1 of UID, then run 2 of it with every value shifted by AGAIN, into a new store."""
    engine = open_store(url)
    with engine.connect() as conn:
        for shift in (0.0, AGAIN):
            recorder = Recorder(conn, dict.fromkeys(COUNTED, 0))
            for record in records(shift):
                assert recorder.handle(encode(record)) is None
            recorder.commit()
            assert recorder.counts["dropped"] == 0
    engine.dispose()
    return Stored(url)


@pytest.fixture(scope="module", params=BACKENDS)
def stored(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """A store holding the two runs, once per module and backend."""
    if request.param == "sqlite":
        yield write_runs(f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'arl.db'}")
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    yield write_runs(server.url(name))
    server.drop_database(name)


@pytest.fixture(scope="module")
def sqlite_stored(tmp_path_factory: pytest.TempPathFactory) -> Stored:
    """The two runs in a SQLite store (for MLflow)."""
    return write_runs(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'arl.db'}")


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- TensorBoard ------------------------------------------------------------------------------


def masked_crc32c(data: bytes) -> int:
    """TFRecord's check of a frame: CRC-32C (Castagnoli, reflected 0x82F63B78), masked."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(folder: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar in the event files of ``folder``: TFRecord frames (length, its crc, the
    data, its crc; both checked), each an Event protobuf."""
    from tensorboardX.proto import event_pb2

    series: dict[str, list[tuple[int, float, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            header, (header_crc,) = data[at : at + 8], struct.unpack("<I", data[at + 8 : at + 12])
            (length,) = struct.unpack("<Q", header)
            body = data[at + 12 : at + 12 + length]
            (body_crc,) = struct.unpack("<I", data[at + 12 + length : at + 16 + length])
            assert (header_crc, body_crc) == (masked_crc32c(header), masked_crc32c(body)), f"{path} at {at}"
            at += 16 + length
            event = event_pb2.Event.FromString(body)
            for value in event.summary.value:
                series.setdefault(value.tag, []).append((event.step, value.simple_value, event.wall_time))
    return {tag: sorted(points) for tag, points in series.items()}


def as_float32(series: dict[str, list[tuple[int, float, float]]]) -> dict[str, list[tuple[int, float, float]]]:
    """TensorBoard keeps a scalar as a 32-bit float."""
    return {key: [(s, float(np.float32(v)), t) for s, v, t in points] for key, points in series.items()}


def test_tensorboard_events_hold_each_agents_returns_and_the_logged_metrics(stored: Stored, tmp_path: Path) -> None:
    tb = tmp_path / "tb"
    done = results.to_tensorboard(1, tb, store=stored.url)
    assert done.path == (tb / UID).resolve()
    assert (done.returns, done.metrics) == (9, 4)
    assert read_events(done.path) == as_float32(expected_series())

    # The other run of the uid, from the command line: a folder of its own beside the first.
    ran = cli("results", "export", UID, "--format", "tensorboard", "-o", str(tb), "--store", stored.url)
    assert ran.exit_code == 0, ran.output
    other = (tb / f"{UID}-run2").resolve()
    assert ran.output.splitlines() == [
        f"9 returns and 4 metric values of run {UID} written to {other}",
        f"look at them: tensorboard --logdir {tb}",
    ]
    assert read_events(other) == as_float32(expected_series(AGAIN))

    # Run 1 again: its own event files replaced, not added to; run 2's left as they were.
    assert results.to_tensorboard(1, tb, store=stored.url).path == done.path
    for folder, shift in ((done.path, 0.0), (other, AGAIN)):
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
        assert read_events(folder) == as_float32(expected_series(shift))
    assert sorted(p.name for p in tb.iterdir()) == [UID, f"{UID}-run2"]  # no temporary folder left
    assert sorted(p.name for p in other.iterdir())[0] == OWNER_FILE


# -- MLflow -----------------------------------------------------------------------------------


def mlflow_client(uri: str) -> Any:
    with warnings.catch_warnings():  # MLflow's own, as in arl.results.tracking._quiet_mlflow
        warnings.filterwarnings("ignore", r"The ``noload`` loader strategy is deprecated", SADeprecationWarning)
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=uri)


def test_mlflow_run_holds_the_file_as_params_the_run_as_tags_returns_metrics_and_artifacts(
    sqlite_stored: Stored, tmp_path: Path
) -> None:
    from mlflow.entities import ViewType

    stored = sqlite_stored
    folder = tmp_path / "mlruns"
    done = results.to_mlflow(1, folder, store=stored.url)
    assert done.tracking_uri == f"sqlite:///{folder / 'mlflow.db'}"
    assert (done.experiment, done.params, done.returns, done.metrics, done.replaced) == ("tracking", 8, 9, 4, 0)
    client = mlflow_client(done.tracking_uri)
    run = client.get_run(done.run_id)
    assert run.info.run_name == UID
    assert (run.info.status, run.info.start_time, run.info.end_time) == ("FINISHED", T0 * 1000, (T0 + 50) * 1000)
    assert run.data.params == EXPECTED_PARAMS
    assert {k: v for k, v in run.data.tags.items() if k.startswith("arl.") and k != "arl.export_key"} == {
        "arl.run_uid": UID,
        "arl.run_id": "1",
        "arl.status": "FINISHED",
        "arl.version": "0.1.0",
        "arl.seed": "7",
        "arl.end_reason": "completed",
        "arl.experiment_uid": "tracking",
        "arl.store": run.data.tags["arl.store"],
        "arl.swept.schedule.train.phase_config.episodes": "2",
    }
    logged = {
        key: sorted((m.step, m.value, m.timestamp / 1000) for m in client.get_metric_history(done.run_id, key))
        for key in run.data.metrics
    }
    assert logged == expected_series()
    assert sorted(a.path for a in client.list_artifacts(done.run_id)) == ["episodes.csv", "experiment.yml"]
    fetched = Path(client.download_artifacts(done.run_id, "", str(tmp_path / "fetched")))
    assert YAML(typ="safe").load((fetched / "experiment.yml").read_text()) == DOCUMENT
    with (fetched / "episodes.csv").open(newline="") as file:
        assert len(list(csv.DictReader(file))) == len(EPISODES)

    # again, from the command line: a new MLflow run, the earlier one deleted
    ran = cli("results", "export", "1", "--format", "mlflow", "-o", str(folder), "--store", stored.url)
    assert ran.exit_code == 0, ran.output
    first, second = ran.output.splitlines()
    assert first.startswith(f"run {UID} logged to MLflow experiment 'tracking', run ")
    assert first.endswith(
        "8 params, 9 returns, 4 metric values, artifacts experiment.yml, episodes.csv; 1 earlier export of it deleted"
    )
    assert second.startswith(f"look at it: mlflow ui --backend-store-uri {done.tracking_uri}")
    experiment = client.get_experiment_by_name("tracking")
    every = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)
    stages = {r.info.run_id: r.info.lifecycle_stage for r in every}
    assert stages.pop(done.run_id) == "deleted"
    assert list(stages.values()) == ["active"]
    assert client.get_run(next(iter(stages))).data.params == EXPECTED_PARAMS
