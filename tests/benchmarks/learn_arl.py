"""arl's side of `make bench-learning`: an example file's learner (experiments/cartpole-dqn.yml,
cartpole-ppo.yml) trained in phases of ``eval_every`` environment steps, each followed by a
test phase of ``episodes`` episodes with the brain just saved; every train phase after
the first loads the one before it (DQN with its replay buffer). One `arl-run` of one
generated file, every step stored (arl's default), stopped by ``learnstop.TestedThreshold``
once a test phase reaches the last threshold, or by ``WallClock`` at the time budget.

Figures come from the run's store (arl.results): the train phases' environment steps
(their episodes' steps) and stored durations (phase set-up, stepping, saving the brain),
each test phase's returns, and its end against the launch of `arl-run`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import arlruns
from benchfiles import dump, importable_by_runs
from learn_sb3 import Evaluation, Outcome
from ruamel.yaml import YAML

from arl.agents.dqn import decayed

EXAMPLES = Path(__file__).resolve().parents[2] / "experiments"
EXAMPLE = {"dqn": "cartpole-dqn.yml", "ppo": "cartpole-ppo.yml"}

# The same algorithm as stable-baselines3's DQN with rl-baselines3-zoo's CartPole-v1
# settings: one worker, the brain in the agent's process, training 128 gradient steps
# every 256 transitions from 1,000 on, the target synced after each round, epsilon from
# 1.0 to 0.04 over 8,000 steps, lr 2.3e-3. The example file itself is SEED-style (two
# workers, a central learner), which trades samples for workers: that is not the
# comparison the bench makes.
ZOO_DQN = {
    "brain": {"learning_rate": 2.3e-3, "train_every": 256, "gradient_steps": 128, "target_update": 128,
              "broadcast_every": 256, "minimum_buffer_size": 1000},
    "muscle": {"epsilon": 0.04, "epsilon_start": 1.0, "decay_steps": 8000},
}  # fmt: skip


def _as_zoo(agent: dict[str, Any]) -> dict[str, Any]:
    """The example's DQN agent, set up as ZOO_DQN says (in process, one worker)."""
    agent = {k: v for k, v in agent.items() if k not in ("learner", "inference")}
    brain = {**agent["brain"], "params": {**agent["brain"].get("params", {}), **ZOO_DQN["brain"]}}
    params = {k: v for k, v in agent["muscle"].get("params", {}).items() if k != "apex_epsilon"}
    muscle = {**agent["muscle"], "params": {**params, **ZOO_DQN["muscle"]}}
    return {**agent, "brain": brain, "muscle": muscle}


def _phases(example: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The example's train phase and test phase, each ``{name: body}`` in its schedule."""
    (train,) = example["schedule"][0].values()
    (test,) = example["schedule"][1].values()
    return train, test


def _train_muscle(muscle: dict[str, Any], done: int, workers: int) -> dict[str, Any]:
    """The muscle of a train phase that starts after ``done`` steps (all workers). arl
    rebuilds muscles every phase, so a decaying epsilon (DQN: each worker's own steps,
    from ``epsilon_start`` to its final epsilon) would start over: each phase starts
    where one long train phase would be by then. With several workers the start is
    reckoned for worker 0, whose final epsilon is the largest: the others start at most
    ``apex_epsilon * done / workers / decay_steps`` higher than they would have."""
    params = dict(muscle.get("params") or {})
    decay = int(params.get("decay_steps", 0))
    if decay <= 0:
        return muscle
    final = float(params.get("epsilon", 0.04))
    if workers > 1 and final > 0:
        final = float(params.get("apex_epsilon", 0.4))  # DQNMuscle's worker 0 of several
    start = max(float(params.get("epsilon_start", 1.0)), final)
    own = done // workers  # MaxEnvironmentSteps splits a phase's steps evenly
    params["epsilon_start"] = decayed(own, start, final, decay)
    params["decay_steps"] = max(0, decay - own)
    return {**muscle, "params": params}


def experiment(
    algo: str, seed: int, *, steps: int, seconds: float, eval_every: int, episodes: int, stop_at: float
) -> dict[str, Any]:
    """The generated experiment: train/test phase pairs until ``steps`` are trained."""
    example = YAML(typ="safe", pure=True).load((EXAMPLES / EXAMPLE[algo]).read_text())
    train, test = _phases(example)
    environments = train["environments"]
    (agent,) = train["agents"]
    (tester,) = test["agents"]
    workers = int(train.get("phase_config", {}).get("workers", 1))
    if algo == "dqn":
        agent, workers = _as_zoo(agent), 1
    brain = copy.deepcopy(agent["brain"])
    if algo == "dqn":  # the replay buffer goes on into the next train phase
        brain.setdefault("params", {})["save_buffer"] = True
    schedule: list[dict[str, Any]] = []
    for k in range(math.ceil(steps / eval_every)):
        chunk = min(eval_every, steps - k * eval_every)
        load = {"load": {"phase": f"train_{k - 1:03d}"}} if k else {}
        learner = {**agent, **load, "brain": brain, "muscle": _train_muscle(agent["muscle"], k * eval_every, workers)}
        conditions = [
            {"name": "arl.conditions:EnvironmentDone"},
            {"name": "arl.conditions:MaxEnvironmentSteps", "params": {"steps": chunk}},
        ]
        schedule.append(
            {
                f"train_{k:03d}": {
                    "environments": environments,
                    "agents": [learner],
                    "simulation": {"name": "vanilla", "conditions": conditions},
                    "phase_config": {"mode": "train", "episodes": chunk, "workers": workers},
                }
            }
        )
        schedule.append(
            {
                f"test_{k:03d}": {
                    "environments": environments,
                    "agents": [{**tester, "brain": brain, "load": {"phase": f"train_{k:03d}"}}],
                    "simulation": {"name": "vanilla", "conditions": [{"name": "arl.conditions:EnvironmentDone"}]},
                    "phase_config": {"mode": "test", "episodes": episodes, "workers": 1},
                }
            }
        )
    stop = {"agent": agent["name"], "threshold": stop_at, "episodes": episodes}
    return {
        "uid": f"bench-{algo}-{seed}",
        "experiment_uid": "bench-learning",
        "seed": seed,
        "conditions": [
            {"name": "learnstop:TestedThreshold", "params": stop},
            {"name": "arl.conditions:WallClock", "params": {"seconds": seconds}},
        ],
        "schedule": schedule,
    }


def run(algo: str, seed: int, *, steps: int, seconds: float, eval_every: int, episodes: int, stop_at: float) -> Outcome:
    """One arl-run of the generated file in a temporary folder, read back from its store."""
    document = experiment(
        algo, seed, steps=steps, seconds=seconds, eval_every=eval_every, episodes=episodes, stop_at=stop_at
    )
    importable_by_runs()  # the file names learnstop:TestedThreshold
    with tempfile.TemporaryDirectory(prefix="arl-bench-learning-") as tmp:
        (Path(tmp) / "learn.yml").write_text(dump(document))
        ran = arlruns.run_arl(["learn.yml"], Path(tmp), sample=False)
        if ran.returncode != 0:
            return Outcome("arl", algo, seed, problem=f"exit code {ran.returncode}: {ran.problem}")
        return read_outcome(algo, seed, Path(tmp) / "arl.db", ran.launched, episodes)


def read_outcome(algo: str, seed: int, db: Path, launched: float, episodes: int) -> Outcome:
    """Each test phase as an evaluation: the steps and train seconds before it, its mean return."""
    import arl.results as results

    uid = f"bench-{algo}-{seed}"
    phases = results.phases(uid, store=db)
    stored = results.episodes(uid, store=db, rewards=False)
    returns = results.returns(uid, store=db)
    outcome = Outcome("arl", algo, seed)
    for phase in phases.itertuples():
        if phase.mode == "train":
            outcome.steps += int(stored.loc[stored["phase"] == phase.phase, "steps"].sum())
            outcome.train_s += float(phase.duration_s)
            continue
        tested = returns.loc[returns["phase"] == phase.phase, "return"]
        if len(tested) < episodes:  # cut short by the time budget
            continue
        ended = phase.ended_at.timestamp()
        outcome.evaluations.append(
            Evaluation(outcome.steps, outcome.train_s, ended - launched, float(tested.mean()), len(tested))
        )
    run = results.runs(store=db, uid=uid).iloc[-1]
    outcome.total_s = run["ended_at"].timestamp() - launched
    # The brain's own count, which it saves and loads (DQN: gradient steps; PPO: updates),
    # as the step of its last logged loss; arl's policy versions start over every phase.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (updates,) = conn.execute("select max(step) from metrics where name = 'loss' and worker is null").fetchone()
    outcome.note = f"{updates or 0} updates (its last loss's step); ended: {run['end_reason']}"
    return outcome
