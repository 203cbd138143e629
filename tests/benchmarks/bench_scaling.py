"""`make bench-scaling` (and the end of `make bench`): aggregate steps/s against the number of workers.

Runs, for each worker count (1, 2, 4, ... up to the cores this process may use, and
cores - 2), one short arl-run per variant and environment, every step stored (arl's
default; ``--no-store-steps`` passes that flag on):

* ``burn``: arl's dummy environment burning 1 ms of CPU a step (scalekit.BurnEnvironment),
  a trivial agent (arl.dummy's random muscle and counting brain); aggregate steps/s
  against the ideal, 1,000 x workers;
* ``dummy``: arl.dummy's environment, no burn: the aggregate steps/s arl's own machinery
  gives;
* ``dqn``: arl's DQN muscle acting greedily (a test phase, a fresh network of ``--hidden``
  layers) on scalekit.VectorEnvironment: the inference benchmark, with the stored
  ``arl/inference_*`` metrics.

Two variants per count: ``default`` (today's: one agent process serves every worker) and
``central`` (``inference: {servers: K, device: ...}`` on the agent, K = max(1, workers // 4)
unless ``--servers`` says). A run that fails is printed as ``n/a: <why>`` and the bench
goes on. The aggregate is the steps of all the run's episodes over the span from the
first episode's stored start to the last one's end. Never a pass/fail test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arlruns
from benchfiles import dump, importable_by_runs

ENVS = ("burn", "dummy", "dqn")
VARIANTS = ("default", "central")
SENSORS = 4  # of the burn and dummy environments, all seen by the one agent


def worker_counts(cores: int) -> list[int]:
    """1, 2, 4, ... up to ``cores``, and ``cores - 2`` (the issue's goal holds up to there)."""
    counts = {cores, max(1, cores - 2)}
    n = 1
    while n <= cores:
        counts.add(n)
        n *= 2
    return sorted(counts)


def _environment(env: str, args: argparse.Namespace) -> dict[str, Any]:
    if env == "dqn":
        params = {"obs_size": args.obs_size, "actions": 8, "episode_length": 200}
        return {"name": "scalekit:VectorEnvironment", "uid": "env", "params": params}
    params = {"sensors": SENSORS, "actuators": 1, "episode_length": 200}
    if env == "burn":
        return {"name": "scalekit:BurnEnvironment", "uid": "env", "params": {**params, "burn_ms": 1.0}}
    return {"name": "arl.dummy:DummyEnvironment", "uid": "env", "params": params}


def _agent(env: str, args: argparse.Namespace) -> dict[str, Any]:
    if env == "dqn":
        return {
            "name": "agent",
            "brain": {"name": "arl.agents.dqn:DQNBrain", "params": {"hidden": args.hidden}},
            "muscle": {"name": "arl.agents.dqn:DQNMuscle", "params": {"epsilon": 0.0}},
            "objective": {"name": "arl.dummy:DummyObjective"},
            "sensors": ["env.obs"],
            "actuators": ["env.action"],
        }
    return {
        "name": "agent",
        "brain": {"name": "arl.dummy:DummyBrain"},
        "muscle": {"name": "arl.dummy:DummyMuscle"},
        "objective": {"name": "arl.dummy:DummyObjective"},
        "sensors": [f"env.s{i}" for i in range(SENSORS)],
        "actuators": ["env.a0"],
    }


def servers(workers: int, args: argparse.Namespace) -> int:
    return args.servers or max(1, workers // 4)


def experiment(env: str, workers: int, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """One phase of ``args.seconds`` on every worker (a test phase for the DQN: acting only)."""
    agent = _agent(env, args)
    if variant == "central":
        agent["inference"] = {"servers": servers(workers, args), "device": args.device}
    conditions = [
        {"name": "arl.conditions:EnvironmentDone"},
        {"name": "arl.conditions:WallClock", "params": {"seconds": args.seconds}},
    ]
    mode = "test" if env == "dqn" else "train"
    config: dict[str, Any] = {"mode": mode, "episodes": 1_000_000, "workers": workers}
    if args.envs_per_worker > 1:  # several copies a controller: one batch of their readings a round
        config["envs_per_worker"] = args.envs_per_worker
    phase = {
        "environments": [{"environment": _environment(env, args)}],
        "agents": [agent],
        "simulation": {"name": "vanilla", "conditions": conditions},
        "phase_config": config,
    }
    return {"uid": f"scale-{env}-{variant}-{workers}", "seed": 1, "schedule": [{"run": phase}]}


@dataclass
class Result:
    rate: float | None = None  # aggregate steps/s
    problem: str = ""
    metrics: dict[str, list[float]] = field(default_factory=dict)  # arl/inference_* values


def measure(env: str, workers: int, variant: str, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="arl-bench-scaling-") as tmp:
        (Path(tmp) / "scale.yml").write_text(dump(experiment(env, workers, variant, args)))
        flags = [] if args.store_steps else ["--no-store-steps"]
        ran = arlruns.run_arl(["scale.yml", *flags], Path(tmp), sample=False)
        if ran.returncode != 0:
            return Result(problem=f"exit code {ran.returncode}: {ran.problem}")
        episodes = arlruns.episodes(Path(tmp) / "arl.db")
        steps = sum(e.steps for e in episodes)
        if not episodes or steps == 0:
            return Result(problem="the run stored no steps")
        span = max(e.ended for e in episodes) - min(e.started for e in episodes)
        return Result(rate=steps / span, metrics=inference_metrics(Path(tmp) / "arl.db"))


def inference_metrics(db: Path) -> dict[str, list[float]]:
    """The stored arl/inference_* values by name, every server's together (arl logs each
    server's mean batch size and latency over each of its intervals, ``/server<k>``
    appended to the name when there are several)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("select name, value from metrics where name like 'arl/inference%'").fetchall()
    found: dict[str, list[float]] = {}
    for name, value in rows:
        found.setdefault(name.split("/")[1], []).append(float(value))
    return found


def describe_metrics(metrics: dict[str, list[float]]) -> str:
    if not metrics:
        return "no arl/inference_* metrics stored"
    return "; ".join(
        f"{name} {statistics.fmean(values):.2f} (mean of {len(values)} intervals' means, "
        f"{min(values):.2f} to {max(values):.2f})"
        for name, values in sorted(metrics.items())
    )


def variant_label(variant: str, workers: int, args: argparse.Namespace) -> str:
    if variant == "default":
        return "default (1 agent process)"
    return f"central ({servers(workers, args)} server{'s' * (servers(workers, args) > 1)}, {args.device})"


def report_env(env: str, counts: list[int], variants: list[str], args: argparse.Namespace) -> None:
    what = {
        "burn": "1 ms of CPU a step, a trivial agent; ideal = 1,000 steps/s a worker",
        "dummy": "arl.dummy's environment, no burn, a trivial agent",
        "dqn": f"arl's DQN muscle, greedy, hidden {args.hidden}, on {args.obs_size} inputs (test phase)",
    }[env]
    print(f"scaling  {env}: {what}")
    print(f"scaling    workers  variant                          steps/s  per worker{'  of ideal' * (env == 'burn')}")
    for workers in counts:
        for variant in variants:
            result = measure(env, workers, variant, args)
            label = variant_label(variant, workers, args)
            if result.rate is None:
                print(f"scaling    {workers:7d}  {label:30s}  n/a: {result.problem}")
                continue
            ideal = f"{result.rate / (1_000 * workers) * 100:7.0f}%" if env == "burn" else ""
            print(f"scaling    {workers:7d}  {label:30s} {result.rate:8.0f}  {result.rate / workers:10.0f}  {ideal}")
            if result.metrics or env == "dqn":
                print(f"scaling               {describe_metrics(result.metrics)}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="burn,dummy", help=f"comma-separated, of {', '.join(ENVS)}")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--workers", default="", help="comma-separated counts (default: 1, 2, 4, ... cores)")
    parser.add_argument("--seconds", type=float, default=3.0, help="of each run's phase")
    parser.add_argument("--servers", type=int, default=0, help="inference servers (default: max(1, workers // 4))")
    parser.add_argument("--device", default="cpu", help="the central variant's inference device: cpu, cuda")
    parser.add_argument("--hidden", default="256,256", help="the DQN's hidden layers")
    parser.add_argument("--obs-size", type=int, default=64, help="the DQN's inputs")
    parser.add_argument(
        "--envs-per-worker", type=int, default=1, help="environment copies each worker steps (phase_config)"
    )
    parser.add_argument("--no-store-steps", dest="store_steps", action="store_false", help="pass it to arl-run")
    args = parser.parse_args()
    args.hidden = [int(n) for n in args.hidden.split(",")]
    return args


def main() -> None:
    args = parse_args()
    cores = len(os.sched_getaffinity(0))
    counts = [int(n) for n in args.workers.split(",")] if args.workers else worker_counts(cores)
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(envs) - set(ENVS) or set(variants) - set(VARIANTS):
        raise SystemExit(f"--envs of {', '.join(ENVS)}; --variants of {', '.join(VARIANTS)}")
    importable_by_runs()  # the files name scalekit's environments
    stored = "every step stored" if args.store_steps else "--no-store-steps"
    print(f"scaling  {cores} cores, {args.seconds:g} s a run, {stored}; workers {', '.join(map(str, counts))}")
    for env in envs:
        report_env(env, counts, variants, args)


if __name__ == "__main__":
    main()
