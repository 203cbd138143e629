"""`make bench`: arl's performance figures, with the raw ZeroMQ floor measured in the same run.

Prints: the dummy experiment's wall time; steady-state steps per second for 2 agents and
1 environment over 10,000 steps with every step stored; the processes and summed peak
RSS of that run; a REQ/REP round trip between two processes, direct and through a
broker process; arl's step pattern in bare ZeroMQ; arl's per-step time as ratios to
those floors; and the StoreWriter's rows per second into SQLite and into a temporary
PostgreSQL server (bench_store.py). Never a pass/fail test: the machines are noisy, so
compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
import zmq

ROOT = Path(__file__).resolve().parents[2]
STEADY = """\
uid: steady
seed: 1
schedule:
  - steady:
      environments:
        - environment:
            name: arl.dummy:DummyEnvironment
            uid: env
            params: {{sensors: 10, actuators: 10, episode_length: {steps}}}
      agents:
        - name: defender
          brain: {{name: arl.dummy:DummyBrain}}
          muscle: {{name: arl.dummy:DummyMuscle}}
          objective: {{name: arl.dummy:DummyObjective}}
          sensors: [env.s0, env.s1, env.s2, env.s3, env.s4]
          actuators: [env.a0, env.a1, env.a2, env.a3, env.a4]
        - name: attacker
          brain: {{name: arl.dummy:DummyBrain}}
          muscle: {{name: arl.dummy:DummyMuscle}}
          objective: {{name: arl.dummy:DummyObjective, params: {{sign: -1}}}}
          sensors: [env.s5, env.s6, env.s7, env.s8, env.s9]
          actuators: [env.a5, env.a6, env.a7, env.a8, env.a9]
      simulation: {{name: vanilla}}
      phase_config: {{mode: train, episodes: 1}}
"""


@dataclass
class Sampled:
    wall: float
    returncode: int
    peak_processes: int
    peak_rss: int  # bytes, summed over the run's processes at the worst moment


def run_arl(args: list[str], cwd: Path, *, sample: bool = True) -> Sampled:
    """Run arl-run, sampling its process tree's count and summed RSS every 20 ms (or not:
    sampling 7 processes costs CPU the run needs on 2 cores: 8% of steps/s, measured alternated)."""
    env = {**os.environ, "ARL_STORE_URL": f"sqlite:///{cwd / 'arl.db'}"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "arl.cli", *args, "--checkpoint-dir", str(cwd / "ckpt")],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    root = psutil.Process(proc.pid)
    peak_n = peak_rss = 0
    while sample and proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            rss = 0
            for p in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    rss += p.memory_info().rss
            peak_n, peak_rss = max(peak_n, len(tree)), max(peak_rss, rss)
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    proc.wait()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stderr.read().decode() if proc.stderr else "", file=sys.stderr)
    return Sampled(wall, proc.returncode, peak_n, peak_rss)


def _echo(endpoint: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.connect(endpoint)
    while True:
        msg = sock.recv()
        sock.send(msg)
        if msg == b"quit":
            break
    sock.close()
    ctx.term()


def _broker(front: str, back: str) -> None:
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    router.bind(front)
    dealer.bind(back)
    try:
        zmq.proxy(router, dealer)
    finally:
        router.close()
        dealer.close()
        ctx.term()


def round_trip(n: int, *, through_broker: bool) -> float:
    """Seconds per REQ/REP round trip between two processes (optionally via a broker process)."""
    workdir = tempfile.mkdtemp(prefix="arl-b-")
    spawn = multiprocessing.get_context("spawn")
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    procs = []
    if through_broker:
        front, back = f"ipc://{workdir}/front", f"ipc://{workdir}/back"
        procs.append(spawn.Process(target=_broker, args=(front, back), daemon=True))
        procs.append(spawn.Process(target=_echo, args=(back,), daemon=True))
        req.connect(front)
    else:
        endpoint = f"ipc://{workdir}/echo"
        req.bind(endpoint)
        procs.append(spawn.Process(target=_echo, args=(endpoint,), daemon=True))
    for p in procs:
        p.start()
    payload = b"x" * 200
    for _ in range(200):  # warm up
        req.send(payload)
        req.recv()
    started = time.perf_counter()
    for _ in range(n):
        req.send(payload)
        req.recv()
    elapsed = (time.perf_counter() - started) / n
    req.send(b"quit")
    req.recv()
    for p in procs:  # the echo has quit; the broker never does
        p.kill()
        p.join()
    req.close(linger=0)
    ctx.term()
    shutil.rmtree(workdir, ignore_errors=True)
    return elapsed


def _router_echo(endpoint: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    while True:
        identity, msg = sock.recv_multipart()
        sock.send_multipart([identity, msg])
        if msg == b"quit":
            break
    sock.close()
    ctx.term()


def topology_floor(n: int) -> float:
    """Seconds per step of arl's own message pattern with nothing else in it: one process
    asks two peers at once and waits for both, then asks a third (agents, then the
    environment), four processes in all, 300-byte messages."""
    workdir = tempfile.mkdtemp(prefix="arl-b-")
    endpoints = [f"ipc://{workdir}/{name}" for name in ("a", "b", "e")]
    procs = [multiprocessing.get_context("spawn").Process(target=_router_echo, args=(e,)) for e in endpoints]
    for p in procs:
        p.start()
    ctx = zmq.Context()
    socks = []
    for endpoint in endpoints:
        sock = ctx.socket(zmq.DEALER)
        sock.connect(endpoint)
        socks.append(sock)
    agent_a, agent_b, env = socks
    poller = zmq.Poller()
    for sock in (agent_a, agent_b):
        poller.register(sock, zmq.POLLIN)
    payload = b"x" * 300

    def step() -> None:
        agent_a.send(payload)
        agent_b.send(payload)
        waiting = {agent_a, agent_b}
        while waiting:
            for sock, _ in poller.poll(1000):
                sock.recv()
                waiting.discard(sock)
        env.send(payload)
        env.recv()

    for _ in range(300):
        step()
    started = time.perf_counter()
    for _ in range(n):
        step()
    elapsed = (time.perf_counter() - started) / n
    for sock in socks:
        sock.send(b"quit")
    for p in procs:
        p.join(5)
    for sock in socks:
        sock.close(linger=0)
    ctx.term()
    shutil.rmtree(workdir, ignore_errors=True)
    return elapsed


def loop_rate(db: Path) -> tuple[int, float]:
    """Steps and seconds of the stepping loop itself, from the stored episode times."""
    with sqlite3.connect(db) as conn:
        steps, started, ended = conn.execute("select steps, started_at, ended_at from episodes").fetchone()
    seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    return steps, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--round-trips", type=int, default=5_000)
    parser.add_argument("--store-rows", type=int, default=100_000)
    args = parser.parse_args()
    print(f"arl bench on {os.cpu_count()} cores, python {sys.version.split()[0]}")

    direct = round_trip(args.round_trips, through_broker=False)
    brokered = round_trip(args.round_trips, through_broker=True)
    print(f"floor   ZeroMQ REQ/REP round trip, 2 processes:     {direct * 1e6:8.1f} us")
    print(f"floor   ... through a broker process:               {brokered * 1e6:8.1f} us")
    topology = topology_floor(args.round_trips)
    print(
        f"floor   arl's step pattern in bare ZeroMQ (2 peers at once, then 1; 4 processes): "
        f"{topology * 1e6:.0f} us = {1 / topology:.0f} steps/s"
    )

    with tempfile.TemporaryDirectory(prefix="arl-bench-") as tmp:
        dummy = run_arl([str(ROOT / "experiments" / "dummy.yml")], Path(tmp))
    print(
        f"dummy   experiment wall time (arl-run, 2 phases x 10 steps): {dummy.wall:6.2f} s "
        f"(target <= 5 s; palaestrAI 3.5.18: ~55 s)"
    )

    def steady_run(*extra: str, sample: bool = False) -> tuple[Sampled, float]:
        """One steady run: what sampling saw, and the stepping loop's steps/s."""
        with tempfile.TemporaryDirectory(prefix="arl-bench-") as tmp:
            file = Path(tmp) / "steady.yml"
            file.write_text(STEADY.format(steps=args.steps))
            sampled = run_arl([str(file), *extra], Path(tmp), sample=sample)
            steps, seconds = loop_rate(Path(tmp) / "arl.db")
        return sampled, steps / seconds

    # Throughput from unsampled runs, every step stored and --no-store-steps alternated,
    # twice each; processes and memory from one more run, sampled.
    rates: dict[bool, list[float]] = {True: [], False: []}
    for stored in (True, False, True, False):
        rates[stored].append(steady_run(*([] if stored else ["--no-store-steps"]))[1])
    on, off = max(rates[True]), max(rates[False])
    per_step = 1 / on
    steady, _ = steady_run(sample=True)
    print(
        f"steady  {args.steps} steps, 2 agents, 1 env, every step stored: {on:8.0f} steps/s "
        f"({per_step * 1e6:.0f} us/step; best of 2; target >= 1,000/s; palaestrAI: ~30/s)"
    )
    print(f"steady  whole run wall time (sampled run): {steady.wall:.2f} s, exit code {steady.returncode}")
    print(
        f"steady  processes (peak, incl. arl-run): {steady.peak_processes}   "
        f"summed peak RSS: {steady.peak_rss / 2**20:.0f} MiB (target <= 500 MiB; palaestrAI: 15, ~1.8 GB)"
    )
    print(
        f"ratio   one arl step = {per_step / direct:.1f} direct round trips "
        f"= {per_step / brokered:.1f} brokered round trips "
        f"(a step makes 2 round trips in sequence: agents in parallel, then the environment)"
    )
    print(f"ratio   one arl step = {per_step / topology:.1f} x the bare-ZeroMQ step pattern")
    print(
        f"store   steps/s with every step stored: {on:.0f}, with --no-store-steps: {off:.0f} "
        f"(best of 2 each, alternated): storing costs {(1 - on / off) * 100:.0f}% (target <= 25%)"
    )

    import bench_store  # beside this file, which Python runs as a script

    bench_store.report(args.store_rows)


if __name__ == "__main__":
    main()
