"""Running `arl-run` for `make bench`: the experiment text for N agents in a layout, one run
(timed, and sampled or not), and what the run's store says about its episodes."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

# processes.environments in the experiment file: in the worker's controller process (the
# default) or each in its own process. NO_KEY writes no `processes:` key at all: whatever
# the default is (before the setting existed, that was environments in their own processes).
LAYOUTS = ("in_controller", "own")
NO_KEY = "none"
REFUSED = 2  # arl-run's exit code for a problem in the file: nothing was run


def experiment(agents: int, steps: int, layout: str) -> str:
    """One DummyEnvironment, ``agents`` dummy agents on their own slices of it, one train
    episode of ``steps`` steps. Two agents see 5 sensors each (as in experiments/dummy.yml,
    the figure the issue's table gives); more agents 2 each."""
    per = max(2, 10 // agents)
    lines = [f"uid: steady-{agents}", "seed: 1"]
    if layout != NO_KEY:
        lines += ["processes:", f"  environments: {layout}"]
    lines += [
        "schedule:",
        "  - steady:",
        "      environments:",
        "        - environment:",
        "            name: arl.dummy:DummyEnvironment",
        "            uid: env",
        f"            params: {{sensors: {agents * per}, actuators: {agents * per}, episode_length: {steps}}}",
        "      agents:",
    ]
    for i in range(agents):
        ids = range(i * per, (i + 1) * per)
        lines += [
            f"        - name: agent{i:02d}",
            "          brain: {name: arl.dummy:DummyBrain}",
            "          muscle: {name: arl.dummy:DummyMuscle}",
            f"          objective: {{name: arl.dummy:DummyObjective, params: {{sign: {1 if i % 2 == 0 else -1}}}}}",
            f"          sensors: [{', '.join(f'env.s{j}' for j in ids)}]",
            f"          actuators: [{', '.join(f'env.a{j}' for j in ids)}]",
        ]
    lines += ["      simulation: {name: vanilla}", "      phase_config: {mode: train, episodes: 1}"]
    return "\n".join(lines) + "\n"


@dataclass
class Sampled:
    launched: float  # time.time() just before arl-run was started
    wall: float  # seconds from launching arl-run to its exit
    returncode: int
    problem: str  # the first line of what arl-run said went wrong; "" when it exited 0
    peak_processes: int  # 0 when not sampled
    peak_rss: int  # bytes, summed over the run's processes at the worst moment; 0 when not sampled
    peak_pss: int  # the same of PSS: a page shared by n processes counts 1/n in each


def _arl_run() -> list[str]:
    """The `arl-run` users run, from this interpreter's environment."""
    script = Path(sys.executable).parent / "arl-run"
    return [str(script)] if script.exists() else [sys.executable, "-m", "arl.cli"]


def _first_problem(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or ["(nothing on stderr)"])[0]


def run_arl(args: list[str], cwd: Path, *, sample: bool) -> Sampled:
    """Run arl-run in ``cwd`` (its store ``cwd/arl.db``), and when ``sample``, its process
    tree's count and summed RSS every 20 ms. Timed runs are not sampled: sampling 7 processes
    costs CPU the run needs on 2 cores (8% of steps/s, measured alternated)."""
    env = {**os.environ, "ARL_STORE_URL": f"sqlite:///{cwd / 'arl.db'}"}
    with open(cwd / "stderr.txt", "w+b") as stderr:  # a file, not a pipe nobody reads while it runs
        launched, started = time.time(), time.perf_counter()
        proc = subprocess.Popen(
            [*_arl_run(), *args, "--checkpoint-dir", str(cwd / "ckpt")],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        peak_n = peak_rss = peak_pss = 0
        root = psutil.Process(proc.pid)
        while sample and proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                tree = [root, *root.children(recursive=True)]
                rss = pss = 0
                for p in tree:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        memory = p.memory_full_info()
                        rss, pss = rss + memory.rss, pss + memory.pss
                peak_n, peak_rss, peak_pss = max(peak_n, len(tree)), max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.02)
        proc.wait()
        wall = time.perf_counter() - started
        stderr.seek(0)
        said = stderr.read().decode(errors="replace")
    problem = "" if proc.returncode == 0 else _first_problem(said)
    if proc.returncode not in (0, REFUSED):
        print(said, file=sys.stderr)
    return Sampled(launched, wall, proc.returncode, problem, peak_n, peak_rss, peak_pss)


@dataclass
class Episode:
    started: float  # epoch seconds, as the controller stamped it when the episode began
    ended: float
    steps: int


def _epoch(text: str) -> float:
    """A time as SQLite holds it (UTC text, no zone) in epoch seconds."""
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def episodes(db: Path) -> list[Episode]:
    """The run's episodes in the order they began."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("select started_at, ended_at, steps from episodes order by started_at, id").fetchall()
    return [Episode(_epoch(started), _epoch(ended), steps) for started, ended, steps in rows]
