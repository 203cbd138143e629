"""`make bench`: arl's performance figures, with the floors they stand on measured in the same run.

Prints: the floors (a REQ/REP round trip between two processes, direct and through a broker
process; the step pattern of each layout in bare ZeroMQ; a fresh Python importing zmq); the
dummy experiment's wall time, time to first step, processes and summed peak RSS; steady-state
steps per second for 2, 8 and 16 agents on 1 environment with every step stored, in each
layout (environments in the controller's process, the default, or in their own processes),
with the processes and RSS of the 2-agent runs; each figure's ratio to its floor; the cost of
storing every step; and the StoreWriter's rows per second into SQLite and into a temporary
PostgreSQL server (bench_store.py). The issue's targets are printed beside the figures.
Never a pass/fail test: the machines are noisy, so compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import arlruns
import floors
from arlruns import LAYOUTS, NO_KEY, REFUSED, Sampled

ROOT = Path(__file__).resolve().parents[2]
TARGET_STEPS = {2: 3_000, 8: 1_500, 16: 1_000}  # steps/s, issue 10
PALAESTRAI_STEPS = {2: "26-30", 8: "14.6"}  # palaestrAI 3.5.18 on this machine, issue 10
MB = 1e6


@dataclass
class Floors:
    direct: float  # seconds a round trip
    brokered: float
    patterns: dict[str, float]  # seconds a step, by layout (and "before")
    startup: float  # seconds
    startup_rss: int  # bytes

    def pattern(self, layout: str) -> float:
        return self.patterns["before" if layout == NO_KEY else layout]


def measure_floors(round_trips: int) -> Floors:
    direct = floors.round_trip(round_trips, through_broker=False)
    brokered = floors.round_trip(round_trips, through_broker=True)
    print(f"floor   ZeroMQ REQ/REP round trip, 2 processes:     {direct * 1e6:8.1f} us")
    print(f"floor   ... through a broker process:               {brokered * 1e6:8.1f} us")
    patterns = {name: floors.pattern_floor(round_trips, groups) for name, groups in floors.PATTERNS.items()}
    print(
        "floor   each layout's step pattern in bare ZeroMQ (peers asked at once, then the next group; 300 B):\n"
        f"floor     in_controller (the agents' process):          {patterns['in_controller'] * 1e6:6.0f} us a step\n"
        f"floor     own (the agents' process, then the env's):    {patterns['own'] * 1e6:6.0f} us a step\n"
        f"floor     before (2 agents' processes at once, then the env's): "
        f"{patterns['before'] * 1e6:.0f} us = {1 / patterns['before']:.0f} steps/s"
    )
    startup, rss = floors.startup_floor()
    print(
        f"floor   a fresh python that imports zmq, launch to its first message: {startup * 1e3:.0f} ms "
        f"(best of 3); its RSS then: {rss / MB:.0f} MB"
    )
    return Floors(direct, brokered, patterns, startup, rss)


def dummy_figures(best_of: int, floor: Floors) -> None:
    """experiments/dummy.yml as it is (its default layout): best wall and first step of
    ``best_of`` runs, then one more run, sampled, for processes and memory."""
    walls, firsts, lasts = [], [], []
    for _ in range(best_of):
        with tempfile.TemporaryDirectory(prefix="arl-bench-") as tmp:
            run = arlruns.run_arl([str(ROOT / "experiments" / "dummy.yml")], Path(tmp), sample=False)
            if run.returncode != 0:
                print(f"dummy   failed, exit code {run.returncode} ({run.problem})")
                return
            stored = arlruns.episodes(Path(tmp) / "arl.db")
            if not stored:
                print("dummy   failed: the run exited 0 but stored no episode")
                return
            first = stored[0]
        walls.append(run.wall)
        firsts.append(first.started - run.launched)
        lasts.append(first.ended - run.launched)
    with tempfile.TemporaryDirectory(prefix="arl-bench-") as tmp:
        sampled = arlruns.run_arl([str(ROOT / "experiments" / "dummy.yml")], Path(tmp), sample=True)
    best = firsts.index(min(firsts))
    print(f"dummy   experiments/dummy.yml as it is (2 phases x 10 steps, the default layout), best of {best_of}:")
    print(
        f"dummy     wall time, launch of arl-run to its exit: {min(walls):5.2f} s "
        f"= {min(walls) / floor.startup:3.0f} x the start-up floor   (target <= 1.5 s; palaestrAI 3.5.18: 55.6 s)"
    )
    print(
        f"dummy     time to first step:                       {firsts[best]:5.2f} s "
        f"= {firsts[best] / floor.startup:3.0f} x the start-up floor   (target <= 0.8 s; palaestrAI: 18.3 s)"
    )
    print(
        "dummy       measured from launching arl-run to its first episode's start as stored (episodes.started_at,\n"
        "dummy       stamped by the controller as the episode begins, before its reset and step 1); "
        f"that 10-step episode\ndummy       had ended {lasts[best]:.2f} s after launch"
    )
    print(f"dummy     one more run, sampled: {usage(sampled, floor)}")


def usage(run: Sampled, floor: Floors) -> str:
    """A sampled run's processes and memory, beside their targets and floor."""
    if run.returncode != 0:
        return f"failed, exit code {run.returncode} ({run.problem})"
    # The run's processes are forked from one fork server: each one's RSS counts the pages
    # it shares with it (and the others) again; PSS splits every shared page among its sharers,
    # so the summed PSS is the memory the run really holds. The target is that.
    return (
        f"{run.peak_processes} processes at peak, incl. arl-run (target <= 6); summed peak PSS "
        f"{run.peak_pss / MB:.0f} MB = {run.peak_pss / floor.startup_rss:.1f} x a bare python's RSS "
        f"(the 300 MB target, held to PSS); summed peak RSS {run.peak_rss / MB:.0f} MB "
        "(pages shared with the fork server counted once per process)"
    )


@dataclass
class Steady:
    """The steady runs: steps/s of each (agents, layout, stored), and why a layout gave none."""

    refused: dict[str, str] = field(default_factory=dict)  # layout -> arl-run's first line
    rates: dict[tuple[int, str, bool], list[float]] = field(default_factory=dict)
    failed: dict[tuple[int, str], str] = field(default_factory=dict)

    def run(self, agents: int, steps: int, layout: str, *, stored: bool = True, sample: bool = False) -> Sampled | None:
        """One steady run; its rate goes to ``rates``, a refusal or failure where it is said."""
        if layout in self.refused:
            return None
        with tempfile.TemporaryDirectory(prefix="arl-bench-") as tmp:
            (Path(tmp) / "steady.yml").write_text(arlruns.experiment(agents, steps, layout))
            run = arlruns.run_arl(["steady.yml", *([] if stored else ["--no-store-steps"])], Path(tmp), sample=sample)
            if run.returncode == REFUSED:
                self.refused[layout] = run.problem
            elif run.returncode != 0:
                self.failed[(agents, layout)] = f"exit code {run.returncode}: {run.problem}"
            elif not sample:
                self._rate(Path(tmp) / "arl.db", (agents, layout, stored))
        return run

    def _rate(self, db: Path, key: tuple[int, str, bool]) -> None:
        stored = arlruns.episodes(db)
        if not stored or stored[0].steps == 0:
            self.failed[(key[0], key[1])] = "the run exited 0 but stored no episode with steps"
            return
        self.rates.setdefault(key, []).append(stored[0].steps / (stored[0].ended - stored[0].started))

    def missing(self, agents: int, layout: str) -> str:
        if layout in self.refused:
            return f"layout {layout}: not available ({self.refused[layout]})"
        return f"layout {layout}: failed ({self.failed.get((agents, layout), 'no run finished')})"


def steady_figures(args: argparse.Namespace, layouts: list[str], floor: Floors) -> None:
    steady = Steady()
    counts = {2: args.steps, 8: args.many_steps, 16: args.many_steps}
    for agents, steps in counts.items():
        for _ in range(args.best_of):  # the layouts alternated, so a slow spell of the machine hits both
            for layout in layouts:
                steady.run(agents, steps, layout)
                if agents == 2 and layout == layouts[0]:
                    steady.run(agents, steps, layout, stored=False)
    sampled = {layout: steady.run(2, args.steps, layout, sample=True) for layout in layouts}

    print(
        f"steady  1 env, every step stored: the stepping loop's steps/s (the episode's steps over its stored\n"
        f"steady  start to end), best of {args.best_of}, layouts alternated; ratios: one step in direct round trips,\n"
        f"steady  and in steps of the layout's bare-ZeroMQ pattern (a layout without its key: the 'before' one)"
    )
    print("steady    agents  layout           steps   steps/s  us/step  round trips  x pattern  target    palaestrAI")
    for agents, steps in counts.items():
        for layout in layouts:
            rates = steady.rates.get((agents, layout, True))
            if not rates:
                print(f"steady    {agents:6d}  {steady.missing(agents, layout)}")
                continue
            step = 1 / max(rates)
            print(
                f"steady    {agents:6d}  {layout:14s} {steps:7d}  {1 / step:8.0f}  {step * 1e6:7.0f}  "
                f"{step / floor.direct:11.1f}  {step / floor.pattern(layout):9.1f}  "
                f">= {TARGET_STEPS[agents]:<6,d} {PALAESTRAI_STEPS.get(agents, '-')}"
            )
    for layout, run in sampled.items():
        said = usage(run, floor) if run else steady.missing(2, layout)
        print(f"steady  2 agents, {layout}, one more run, sampled: {said}")
    on, off = steady.rates.get((2, layouts[0], True)), steady.rates.get((2, layouts[0], False))
    if on and off:
        print(
            f"store   steps/s, 2 agents, {layouts[0]}: every step stored {max(on):.0f}, with --no-store-steps "
            f"{max(off):.0f} (best of {args.best_of} each, alternated): storing costs "
            f"{(1 - max(on) / max(off)) * 100:.0f}% (target <= 25%)"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="steps of the 2-agent runs")
    parser.add_argument("--many-steps", type=int, default=3_000, help="steps of the 8- and 16-agent runs")
    parser.add_argument("--best-of", type=int, default=2, help="timed runs of each figure")
    parser.add_argument("--round-trips", type=int, default=5_000)
    parser.add_argument("--store-rows", type=int, default=100_000)
    parser.add_argument(
        "--layouts",
        default=",".join(LAYOUTS),
        help=f"comma-separated, of {', '.join((*LAYOUTS, NO_KEY))} ({NO_KEY}: no `processes:` key in the file)",
    )
    parser.add_argument("--quick", action="store_true", help="few steps, rows and runs: to try the bench out")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.many_steps, args.best_of, args.round_trips, args.store_rows = 1_000, 300, 1, 500, 10_000
    return args


def main() -> None:
    args = parse_args()
    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    unknown = set(layouts) - {*LAYOUTS, NO_KEY}
    if unknown or not layouts:
        sys.exit(f"--layouts: {', '.join(sorted(unknown)) or 'none given'}: not one of {', '.join((*LAYOUTS, NO_KEY))}")
    quick = " (--quick: few steps and runs, rough figures)" if args.quick else ""
    print(f"arl bench on {os.cpu_count()} cores, python {sys.version.split()[0]}{quick}")
    floor = measure_floors(args.round_trips)
    dummy_figures(args.best_of, floor)
    steady_figures(args, layouts, floor)

    import bench_state  # beside this file, which Python runs as a script
    import bench_store

    bench_store.report(args.store_rows)
    bench_state.report(3 if args.quick else 10)


if __name__ == "__main__":
    main()
