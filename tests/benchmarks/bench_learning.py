"""`make bench-learning`: how fast arl's DQN and PPO learn CartPole-v1, beside stable-baselines3's.

For each algorithm and seed, in the same run on the same machine: arl's learner with the
settings of its example file (experiments/cartpole-dqn.yml, cartpole-ppo.yml; learn_arl.py)
and stable-baselines3's with rl-baselines3-zoo's CartPole-v1 hyperparameters
(learn_sb3.py). Both are tested every ``--eval-every`` environment steps on
``--episodes`` greedy/deterministic episodes; the figures are the environment steps and
the wall time until the mean test return first reaches each threshold, within a budget
of steps and seconds per run. Wall time is given twice: training only (no test episodes
counted; arl's train phases as stored, their set-up and brain saves included) and end to
end (launching the process to the end of the test that reached it). Prints the ratio arl
/ stable-baselines3 per algorithm and threshold, and whether arl reached 475 in no more
wall time (issue 11's goal). Never a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable, Sequence

import learn_arl
import learn_sb3
from learn_sb3 import Evaluation, Outcome

THRESHOLDS = (195.0, 475.0)
BUDGET_STEPS = {"dqn": 50_000, "ppo": 100_000}  # rl-baselines3-zoo's n_timesteps for CartPole-v1


def first(outcome: Outcome, threshold: float) -> Evaluation | None:
    """The first evaluation whose mean return reached ``threshold``."""
    return next((e for e in outcome.evaluations if e.mean >= threshold), None)


def curve(outcome: Outcome) -> str:
    if outcome.problem:
        return f"failed: {outcome.problem}"
    points = " ".join(f"{e.steps / 1000:g}k:{e.mean:.0f}" for e in outcome.evaluations)
    return (
        f"{points or 'no evaluation'}  (trained {outcome.steps:,} steps, {outcome.train_s:.1f} s; "
        f"{outcome.total_s:.1f} s end to end; {outcome.note})"
    )


def cell(outcome: Outcome, threshold: float) -> str:
    if outcome.problem:
        return "failed"
    reached = first(outcome, threshold)
    if reached is None:
        return f"not reached within {outcome.steps:,} steps / {outcome.train_s:.0f} s"
    return f"{reached.steps:>8,} {reached.train_s:9.1f} {reached.total_s:9.1f}"


def median_of(outcomes: Sequence[Outcome], threshold: float, value: Callable[[Evaluation], float]) -> float | None:
    """The median over seeds, or None unless every seed reached the threshold."""
    reached = [first(o, threshold) for o in outcomes]
    if not outcomes or any(e is None for e in reached):
        return None
    return statistics.median(value(e) for e in reached if e is not None)


Value = Callable[[Evaluation], float]
FIGURES: tuple[tuple[str, Value], ...] = (
    ("train wall", lambda e: e.train_s),
    ("end to end", lambda e: e.total_s),
    ("steps", lambda e: e.steps),
)


def ratio(arl: Sequence[Outcome], sb3: Sequence[Outcome], threshold: float, value: Value) -> str:
    a, s = median_of(arl, threshold, value), median_of(sb3, threshold, value)
    if a is None or s is None:
        return "n/a (" + " and ".join(name for name, v in (("arl", a), ("sb3", s)) if v is None) + ": not reached)"
    return f"{a / s:.2f}"


def report(algo: str, arl: Sequence[Outcome], sb3: Sequence[Outcome]) -> None:
    print(f"learning  {algo}: mean test return per evaluation (steps trained: return)")
    for outcome in (*arl, *sb3):
        print(f"learning    {outcome.system} seed {outcome.seed}: {curve(outcome)}")
    print(f"learning  {algo}: first reaching  system  seed     steps   train s   total s")
    for threshold in THRESHOLDS:
        for o in (*arl, *sb3):
            print(f"learning    {threshold:5.0f}        {o.system:>6}  {o.seed:4d}  {cell(o, threshold)}")
    for threshold in THRESHOLDS:
        said = ", ".join(f"{name} {ratio(arl, sb3, threshold, value)}" for name, value in FIGURES)
        print(f"learning  {algo} {threshold:.0f}: arl / sb3 (medians over seeds): {said}")
    verdict(algo, arl, sb3)


def verdict(algo: str, arl: Sequence[Outcome], sb3: Sequence[Outcome]) -> None:
    last = THRESHOLDS[-1]
    for name, value in FIGURES[:2]:
        a, s = median_of(arl, last, value), median_of(sb3, last, value)
        if a is None:
            said = "not met: arl did not reach it" + ("" if s is None else f" (sb3 did, in {s:.1f} s)")
        elif s is None:
            said = f"met: arl reached it in {a:.1f} s, sb3 did not within its budget"
        else:
            said = f"{'met' if a <= s else 'not met'}: arl {a:.1f} s, sb3 {s:.1f} s"
        print(f"learning  goal, {algo}: arl reaches {last:.0f} in no more {name} time than sb3: {said}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="dqn,ppo", help="comma-separated, of dqn, ppo")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds; each runs arl and sb3")
    parser.add_argument("--eval-every", type=int, default=2_500, help="environment steps between tests")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per test (>= 10 for the figures)")
    parser.add_argument("--seconds", type=float, default=600.0, help="budget of training seconds per run")
    parser.add_argument("--steps", type=int, default=None, help="budget of steps per run (default: the zoo's)")
    parser.add_argument(
        "--sb3-threads", type=int, default=1, help="torch threads of sb3 (arl's learners use 1; 0: torch's default)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets, to try the bench out (no figures)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.eval_every, args.episodes, args.seconds = 2_000, 1_000, 2, 60.0
    return args


def main() -> None:
    args = parse_args()
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    if not algos or set(algos) - set(BUDGET_STEPS):
        sys.exit(f"--algos: {args.algos!r}: name some of {', '.join(BUDGET_STEPS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    quick = " (--quick: tiny budgets, no figures)" if args.quick else ""
    print(
        f"learning  CartPole-v1 on {len(os.sched_getaffinity(0))} cores{quick}: tests every {args.eval_every:,} "
        f"steps, {args.episodes} greedy/deterministic episodes each; budget {args.seconds:.0f} s of training a run"
    )
    for algo in algos:
        steps = args.steps or BUDGET_STEPS[algo]
        budget = {"steps": steps, "seconds": args.seconds, "eval_every": args.eval_every, "episodes": args.episodes}
        arl, sb3 = [], []
        for seed in seeds:  # arl and sb3 alternated, so a slow spell of the machine hits both
            arl.append(learn_arl.run(algo, seed, **budget, stop_at=THRESHOLDS[-1]))
            sb3.append(learn_sb3.run(algo, seed, **budget, stop_at=THRESHOLDS[-1], threads=args.sb3_threads))
        ours = "the zoo's settings (learn_arl.ZOO_DQN)" if algo == "dqn" else f"{learn_arl.EXAMPLE[algo]}'s settings"
        print(f"learning  {algo}: budget {steps:,} steps; arl: {ours}; sb3: the zoo's")
        report(algo, arl, sb3)


if __name__ == "__main__":
    main()
