"""Pausing, snapshots and resume (issue 12), as `make bench` prints them:

* pause latency of a live run (the dummy components, 2 workers): the control API's
  round trip from `pause` to every worker held, and the governor's own figure (request
  to the last acknowledgement); median and worst of several pause/resume cycles;
* snapshot time and size of that run (`save` through the API);
* a DQN brain's state with a 100,000-transition replay buffer: `save_state` and the
  snapshot's commit (hashes, fsyncs, rename), and the size on disk;
* resume time to the first new step (`arl-run run --resume`), against a fresh run's
  time to its first step, measured in the same session.

Never a pass/fail test: figures to compare, each a ratio or a median of this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FILE = """\
uid: bench-state
seed: 3
state: {{dir: states}}
schedule:
  - train:
      environments:
        - environment: {{name: arl.dummy:DummyEnvironment, uid: env, params: {{episode_length: {length}}}}}
      agents:
        - {{name: defender, brain: {{name: arl.dummy:DummyBrain}}, muscle: {{name: arl.dummy:DummyMuscle}},
           objective: {{name: arl.dummy:DummyObjective}}, sensors: [env.s0, env.s1], actuators: [env.a0, env.a1]}}
        - {{name: attacker, brain: {{name: arl.dummy:DummyBrain}}, muscle: {{name: arl.dummy:DummyMuscle}},
           objective: {{name: arl.dummy:DummyObjective, params: {{sign: -1}}}},
           sensors: [env.s2, env.s3], actuators: [env.a2, env.a3]}}
      simulation: {{name: vanilla}}
      phase_config: {{mode: train, episodes: {episodes}, workers: 2}}
"""
ARL_RUN = [sys.executable, "-m", "arl.cli"]


def _poll(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.002)
    raise TimeoutError(f"gave up waiting for {what}")


def _scalar(db: Path, sql: str) -> Any:
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute(sql).fetchone()
    except sqlite3.OperationalError:  # not made yet
        return None
    return row[0] if row else None


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def live_figures(folder: Path, cycles: int) -> None:
    from arl.controlapi.client import call

    (folder / "run.yml").write_text(FILE.format(length=100000, episodes=1000))
    db = folder / "arl.db"
    env = {**os.environ, "ARL_STORE_URL": f"sqlite:///{db}"}
    proc = subprocess.Popen([*ARL_RUN, "run.yml"], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        detail = _poll(lambda: _scalar(db, "select detail from events where kind = 'control'"), 60, "the API")
        where = json.loads(detail)
        url, token = where["url"], Path(where["token_file"]).read_text().strip()
        _poll(lambda: _scalar(db, "select count(*) from environment_steps"), 60, "steps")
        trips, held = [], []
        for _ in range(cycles):
            started = time.perf_counter()
            answer = call(url, token, "POST", "/runs/bench-state/pause")
            trips.append(time.perf_counter() - started)
            held.append(answer["result"]["seconds"])
            call(url, token, "POST", "/runs/bench-state/resume")
            time.sleep(0.05)  # let it step between pauses
        print(f"state   pause of a live run (dummy, 2 workers), {cycles} pause/resume cycles:")
        for label, values in (("request to all held, as the governor counts it", held),
                              ("... through the HTTP API (arl-run ctl's way)", trips)):  # fmt: skip
            median, worst = statistics.median(values) * 1e3, max(values) * 1e3
            print(f"state     {label:48s} median {median:6.1f} ms, worst {worst:6.1f} ms")
        saves = []
        for _ in range(max(3, cycles // 2)):
            started = time.perf_counter()
            answer = call(url, token, "POST", "/runs/bench-state/save")
            saves.append((time.perf_counter() - started, Path(answer["result"]["snapshot"])))
        seconds = [s for s, _ in saves]
        size = _size(saves[-1][1])
        print(f"state   snapshot of that run (pause, save, commit, resume) through the API: median "
              f"{statistics.median(seconds) * 1e3:6.1f} ms, worst {max(seconds) * 1e3:6.1f} ms; {size / 1024:.1f} KiB, "
              f"{len(list(saves[-1][1].rglob('*')))} entries")  # fmt: skip
        call(url, token, "POST", "/runs/bench-state/stop")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    resume_figures(folder, env)


def resume_figures(folder: Path, env: dict[str, str]) -> None:
    """Time from `arl-run --resume` to its first new step, against a fresh run's first step."""
    db = folder / "arl.db"
    from arl.state import snapshot

    latest = snapshot.latest(folder / "states", "bench-state")
    assert latest is not None, "the run left no snapshot"
    mark = snapshot.load(latest).fields["store"]["environment_steps"]
    kept = _scalar(db, f"select count(*) from environment_steps where id <= {int(mark)}")
    started = time.perf_counter()
    proc = subprocess.Popen([*ARL_RUN, "run.yml", "--resume"], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:

        def going_on() -> bool:
            resumed = _scalar(db, "select count(*) from events where kind = 'resumed'")
            return bool(resumed) and (_scalar(db, "select count(*) from environment_steps") or 0) > kept

        _poll(going_on, 60, "a resumed step")
        resumed = time.perf_counter() - started
    finally:
        proc.kill()
        proc.wait()
    fresh_db = folder / "fresh.db"
    started = time.perf_counter()
    fresh_env = {**env, "ARL_STORE_URL": f"sqlite:///{fresh_db}"}
    proc = subprocess.Popen([*ARL_RUN, "run.yml"], cwd=folder, env=fresh_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _poll(lambda: _scalar(fresh_db, "select count(*) from environment_steps"), 60, "a fresh step")
        fresh = time.perf_counter() - started
    finally:
        proc.kill()
        proc.wait()
    print(f"state   resume to its first stored step: {resumed:5.2f} s; a fresh run of the file to its first: "
          f"{fresh:5.2f} s (ratio {resumed / fresh:4.2f}; the store held {mark} step rows)")  # fmt: skip


def dqn_figures(folder: Path) -> None:
    """A DQN brain whose buffer holds 100,000 transitions: its state and a snapshot of it."""
    import numpy as np

    from arl.agents.dqn import DQNBrain
    from arl.gym import GymEnvironment
    from arl.state import snapshot

    env = GymEnvironment("CartPole-v1")
    brain = DQNBrain(buffer_size=100_000)
    brain.setup(env.sensors(), env.actuators(), 1)
    buffer = brain.buffer
    rng = np.random.default_rng(0)
    buffer.obs[:] = rng.standard_normal(buffer.obs.shape, np.float32)
    buffer.next_obs[:] = rng.standard_normal(buffer.next_obs.shape, np.float32)
    buffer.action[:] = rng.integers(0, 2, buffer.capacity)
    buffer.ret[:], buffer.discount[:] = 1.0, 0.99
    buffer.size, buffer.cursor = buffer.capacity, 0
    staging = snapshot.begin(folder / "dqn-states", "dqn")
    started = time.perf_counter()
    (staging.path / "brain").mkdir()  # (arl makes a component's folder before save_state)
    brain.save_state(staging.path / "brain")
    saved = time.perf_counter()
    path = staging.commit({"run_uid": "dqn"})
    committed = time.perf_counter()
    size = _size(path)
    print(f"state   DQN brain, 100,000-transition buffer (CartPole): save_state {(saved - started) * 1e3:6.0f} ms, "
          f"commit (hash, fsync, rename) {(committed - saved) * 1e3:6.0f} ms, {size / 2**20:5.1f} MiB")  # fmt: skip


def report(cycles: int = 10) -> None:
    folder = Path(tempfile.mkdtemp(prefix="arl-bench-state-"))
    try:
        live_figures(folder, cycles)
        dqn_figures(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    report()
