"""`make bench-ray`: a sweep of dummy runs on a local Ray cluster of two nodes, against the same sweep run locally.

Issue 14's figure: what ``--backend ray`` adds to each run. In one run of this script:

* **local**: ``arl-run run experiments/dummy.yml --sweep seed=1,...,8 --parallel 2``;
* **ray**: the same sweep with ``--backend ray --ray-address ADDR`` on a cluster of two
  nodes on this machine (``ray.cluster_utils.Cluster``: each node its own raylet), each
  node with the CPUs of ``--room`` dummy runs (a dummy run takes 3: a CPU for each of its
  processes, ``arl.backends.raycheck.need_of``). With one run a node the cluster runs two
  at a time, as ``--parallel 2`` does; the next ``--room`` value (2: 6 CPUs a node, four
  at a time) shows the throughput with more room.

The cluster is started before any sweep is timed; its start-up (and shutdown) is printed
apart, as is the connect a driver makes: ``import ray`` and ``ray.init(address=...)`` in a
fresh Python, and, from arl-run's ``-v`` lines as they arrive, the time from launching
``arl-run --backend ray`` to its "Ray cluster: ..." line (its start, the file check, and
the connect). Each sweep gets a store of its own: a fresh SQLite file, or a fresh database
on a temporary PostgreSQL server (``tests/postgres.py``, durable settings; skipped, saying
why, without PostgreSQL binaries), which is what a cluster of several machines needs
(docs/cluster.md). The local sweeps run while the cluster idles beside them, so its
processes share the cores with both. Local and ray sweeps are alternated ``--repeat`` times and the medians
printed: wall seconds of the sweep, seconds a run (wall / runs), Ray's added seconds a run
((ray wall - local wall) / runs; the issue's goal: <= 1 s) and the ratio ray / local.

Every sweep must exit 0 with all its runs FINISHED in its store; else the script says
which sweep failed and how, and exits non-zero. Never a pass/fail test of the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"  # where postgres.py is
DUMMY = ROOT / "experiments" / "dummy.yml"
STORES = ("sqlite", "postgresql")
CONNECTED = "arl.executor: Ray cluster:"  # arl-run's -v line once ray.init has returned
GOAL_ADDED = 1.0  # seconds Ray may add to a run, issue 14
SWEEP_TIMEOUT = 600.0  # seconds: a sweep still going then is killed and reported as failed
CONNECT = """\
import json, sys, time
started = time.perf_counter()
import ray
imported = time.perf_counter()
ray.init(address=sys.argv[1], logging_level="WARNING")
connected = time.perf_counter()
ray.shutdown()
print(json.dumps({"import": imported - started, "init": connected - imported}))
"""


class Failed(Exception):
    """A sweep that did not end with every run FINISHED: what went wrong, to print."""


@dataclass
class Sweep:
    wall: float  # seconds from launching arl-run to its exit
    connected: float | None  # seconds from launch to the "Ray cluster:" line; None when local
    cpu: float  # CPU seconds of arl-run and the processes it waited for (with Ray: the executor's side alone)


@dataclass
class Figures:
    """The sweeps' walls and arl-run's CPU seconds by (store, where), and arl-run's
    launch-to-connected seconds."""

    walls: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    cpus: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    connected: list[float] = field(default_factory=list)

    def add(self, store: str, where: str, sweep: Sweep) -> None:
        self.walls.setdefault((store, where), []).append(sweep.wall)
        self.cpus.setdefault((store, where), []).append(sweep.cpu)
        if sweep.connected is not None:
            self.connected.append(sweep.connected)

    def median(self, store: str, where: str) -> float:
        return statistics.median(self.walls[(store, where)])

    def cpu(self, store: str, where: str) -> float:
        return statistics.median(self.cpus[(store, where)])


def _arl_run() -> list[str]:
    """The `arl-run` users run, from this interpreter's environment."""
    script = Path(sys.executable).parent / "arl-run"
    return [str(script)] if script.exists() else [sys.executable, "-m", "arl.cli"]


def sweep_args(runs: int) -> list[str]:
    return ["run", str(DUMMY), "--sweep", "seed=" + ",".join(str(seed) for seed in range(1, runs + 1)), "-v"]


def run_sweep(runs: int, backend: list[str], url: str, what: str) -> Sweep:
    """One sweep by arl-run in a temporary folder (its checkpoints there: every node of a
    cluster on this machine sees it), timed; its -v lines stamped as they arrive. Raises
    :class:`Failed` unless it exits 0 with ``runs`` runs FINISHED in the store ``url``."""
    with tempfile.TemporaryDirectory(prefix="arl-bench-ray-") as tmp:
        command = [
            *_arl_run(),
            *sweep_args(runs),
            *backend,
            "--store",
            url,
            "--checkpoint-dir",
            str(Path(tmp) / "ckpt"),
        ]
        lines: list[str] = []
        connected: float | None = None
        with open(Path(tmp) / "stdout.txt", "w+b") as stdout:  # the summary: read only when it failed
            before = _children_cpu()
            started = time.perf_counter()
            proc = subprocess.Popen(command, cwd=tmp, stdout=stdout, stderr=subprocess.PIPE, text=True)
            assert proc.stderr is not None
            killer = threading.Timer(SWEEP_TIMEOUT, proc.kill)  # the lines end when it does
            killer.start()
            for line in proc.stderr:
                if connected is None and CONNECTED in line:
                    connected = time.perf_counter() - started
                lines.append(line)
            proc.wait()
            killer.cancel()
            wall = time.perf_counter() - started
            cpu = _children_cpu() - before
            stdout.seek(0)
            said = stdout.read().decode(errors="replace")
    if proc.returncode != 0:
        how = f"was killed after {SWEEP_TIMEOUT:g} s" if wall >= SWEEP_TIMEOUT else f"exited {proc.returncode}"
        raise Failed(f"{what}: arl-run {how}. Its last lines:\n{_tail(said, lines)}")
    statuses = run_statuses(url)
    if statuses != {"FINISHED": runs}:
        raise Failed(f"{what}: arl-run exited 0 but the store holds runs {statuses}, not {runs} FINISHED")
    return Sweep(wall, connected, cpu)


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended and been waited for: an
    arl-run, and what it waited for (locally every process of its runs; with Ray only its
    own fork server, the runs' processes being the nodes' children)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _tail(stdout: str, stderr: list[str], keep: int = 20) -> str:
    return "".join(stderr[-keep:]) + "\n".join(stdout.splitlines()[-keep:])


def run_statuses(url: str) -> dict[str, int]:
    """How many runs the store holds in each status."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select status, count(*) from experiment_runs group by status"))
            return {status: count for status, count in rows}
    finally:
        engine.dispose()


@contextlib.contextmanager
def store_urls(kinds: list[str]) -> Iterator[dict[str, Callable[[], str]]]:
    """For each store kind that can be had here, a function giving the URL of a new empty
    store each call. A PostgreSQL server lives as long as the block."""
    with tempfile.TemporaryDirectory(prefix="arl-bench-ray-stores-") as tmp, contextlib.ExitStack() as stack:
        names = itertools.count()
        found: dict[str, Callable[[], str]] = {}
        if "sqlite" in kinds:
            found["sqlite"] = lambda: f"sqlite:///{Path(tmp) / f'sweep-{next(names)}.db'}"
        if "postgresql" in kinds:
            server = _postgres(stack)
            if server is not None:
                found["postgresql"] = lambda: server.url(server.create_database())
        yield found


def _postgres(stack: contextlib.ExitStack) -> Any:
    sys.path.insert(0, str(TESTS))
    from postgres import PostgresServer, PostgresUnavailable

    try:
        server = stack.enter_context(PostgresServer.start_new(fast=False))
    except PostgresUnavailable as exc:
        print(f"ray     postgresql: skipped: {exc}")
        return None
    return server


def dummy_cpus() -> int:
    """The CPUs a dummy run takes of a node, as --backend ray reckons them."""
    from arl.backends.raycheck import need_of
    from arl.config.loader import load_experiment

    return need_of(load_experiment(DUMMY)).cpus


@contextlib.contextmanager
def cluster(cpus: int) -> Iterator[str]:
    """A head node and a second node of ``cpus`` CPUs each; yields the address. Its
    start-up and shutdown are timed and printed, apart from the sweeps."""
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        sys.exit("bench_ray.py needs Ray: pip install -e '.[ray]' (`make` installs the dev extra, which has it)")
    started = time.perf_counter()
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
    try:
        head = time.perf_counter() - started
        nodes.add_node(num_cpus=cpus)
        nodes.wait_for_nodes()
        total = time.perf_counter() - started
        print(f"ray     cluster of 2 nodes, {cpus} CPUs each: started in {total:.1f} s (head node {head:.1f} s)")
        yield nodes.address
    finally:
        stopping = time.perf_counter()
        nodes.shutdown()
        print(f"ray     cluster shut down in {time.perf_counter() - stopping:.1f} s")


def connect_times(address: str, repeat: int) -> None:
    """``import ray`` and ``ray.init(address)`` in a fresh Python, the medians of ``repeat``."""
    imports, inits = [], []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", CONNECT, address], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise Failed(f"ray.init(address={address!r}) in a fresh python exited {done.returncode}:\n{done.stderr}")
        times = json.loads(done.stdout.strip().splitlines()[-1])
        imports.append(times["import"])
        inits.append(times["init"])
    print(
        f"ray     a driver's connect, in a fresh python (median of {repeat}): import ray "
        f"{statistics.median(imports):.2f} s, ray.init(address) {statistics.median(inits):.2f} s"
    )


def measure(room: int, kinds: list[str], urls: dict[str, Callable[[], str]], args: argparse.Namespace) -> Figures:
    """On a cluster with room for ``room`` dummy runs a node: local and ray sweeps of each
    store kind, alternated, ``args.repeat`` times."""
    figures = Figures()
    with cluster(args.cpus_per_run * room) as address:
        connect_times(address, args.repeat)
        on_ray = ["--backend", "ray", "--ray-address", address]
        local = ["--parallel", str(args.parallel)]
        for _ in range(args.repeat):  # alternated, so a slow spell of the machine hits both
            for kind in kinds:
                figures.add(kind, "local", run_sweep(args.runs, local, urls[kind](), f"{kind}, local"))
                figures.add(kind, "ray", run_sweep(args.runs, on_ray, urls[kind](), f"{kind}, ray ({room} a node)"))
    return figures


def report(room: int, kinds: list[str], figures: Figures, args: argparse.Namespace) -> None:
    runs, at_once = args.runs, 2 * room
    print(
        f"ray     {runs} dummy runs (experiments/dummy.yml, --sweep seed=1,...,{runs}), median of {args.repeat}, "
        f"local and ray alternated; ray: {room} run{'s' * (room > 1)} a node, {at_once} at a time"
    )
    if figures.connected:
        print(
            f"ray     arl-run --backend ray -v, launch to its 'Ray cluster:' line (its start, the check, the "
            f"connect): {statistics.median(figures.connected):.2f} s (median of {len(figures.connected)})"
        )
    print(
        "ray       store       where                       wall s  s a run  added s a run  ray/local  "
        "arl-run CPU s a run"
    )
    on_ray = f"ray, 2 nodes x {room} run{'s' * (room > 1)}"
    for kind in kinds:
        local, ray = figures.median(kind, "local"), figures.median(kind, "ray")
        added = (ray - local) / runs
        local_cpu, ray_cpu = figures.cpu(kind, "local") / runs, figures.cpu(kind, "ray") / runs
        print(
            f"ray       {kind:10s}  {f'local, --parallel {args.parallel}':26s} {local:7.2f}  {local / runs:7.2f}"
            f"  {'':13s}  {'':9s}  {local_cpu:6.2f} (all its processes)"
        )
        print(
            f"ray       {kind:10s}  {on_ray:26s} {ray:7.2f}  {ray / runs:7.2f}  {added:13.2f}  {ray / local:9.2f}"
            f"  {ray_cpu:6.2f} (the executor alone)   (goal: added <= {GOAL_ADDED:g} s)"
        )


def more_room(walls: dict[int, float], kind: str, runs: int) -> None:
    """The throughput of each cluster against the first's, on the first store."""
    if len(walls) < 2:
        return
    first, base = next(iter(walls.items()))
    said = ", ".join(
        f"{2 * room} at a time {runs / wall:.2f} runs/s (x {base / wall:.2f})" for room, wall in walls.items()
    )
    print(f"ray     throughput on Ray ({kind}, median walls): {said}; x: against {2 * first} at a time")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="dummy runs in each sweep (seed=1,...,N)")
    parser.add_argument("--repeat", type=int, default=2, help="sweeps of each kind, alternated; medians printed")
    parser.add_argument("--parallel", type=int, default=2, help="the local sweeps' --parallel")
    parser.add_argument(
        "--room",
        default="1,2",
        help="comma-separated: dummy runs a node has CPUs for, one cluster each (1: two at a time, as "
        "--parallel 2). The first cluster measures every store of --stores, the others only the first "
        "(to keep the bench to a few minutes)",
    )
    parser.add_argument("--stores", default=",".join(STORES), help=f"comma-separated, of {', '.join(STORES)}")
    args = parser.parse_args()
    args.rooms = [int(n) for n in args.room.split(",") if n.strip()]
    args.kinds = [kind.strip() for kind in args.stores.split(",") if kind.strip()]
    if set(args.kinds) - set(STORES) or not args.kinds:
        parser.error(f"--stores: of {', '.join(STORES)}")
    if not args.rooms or min(args.rooms) < 1 or args.runs < 1 or args.repeat < 1 or args.parallel < 1:
        parser.error("--room, --runs, --repeat and --parallel count from 1")
    return args


def main() -> None:
    args = parse_args()
    args.cpus_per_run = dummy_cpus()
    print(
        f"ray     bench on {len(os.sched_getaffinity(0))} cores; a dummy run takes "
        f"{args.cpus_per_run} CPUs of a Ray node (one for each of its processes)"
    )
    try:
        with store_urls(args.kinds) as urls:
            kinds = [kind for kind in args.kinds if kind in urls]
            if not kinds:
                sys.exit("no store to measure with: see the lines above")
            walls: dict[int, float] = {}  # room -> the first store's median ray wall
            for i, room in enumerate(args.rooms):
                measured = kinds if i == 0 else kinds[:1]
                figures = measure(room, measured, urls, args)
                report(room, measured, figures, args)
                walls[room] = figures.median(kinds[0], "ray")
            more_room(walls, kinds[0], args.runs)
    except Failed as exc:
        sys.exit(f"bench_ray.py: a sweep failed, so no figures: {exc}")


if __name__ == "__main__":
    main()
