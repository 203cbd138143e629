"""stable-baselines3's side of `make bench-learning`: DQN or PPO on CartPole-v1 with
rl-baselines3-zoo's hyperparameters, evaluated every ``--eval-every`` environment steps.

Run as a script (a process of its own, as each arl run is), it prints one JSON object:
the launch-relative times of each evaluation. bench_learning.py starts it through
:func:`run`. The zoo's settings are those of hyperparams/dqn.yml and ppo.yml for
CartPole-v1 (rl-baselines3-zoo 2.x); their schedules (DQN's exploration_fraction, PPO's
lin_ learning rate and clip range) run over the zoo's n_timesteps, which is why the bench's
step budgets are those.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Zoo:
    n_envs: int
    n_timesteps: int
    kwargs: dict[str, Any]  # ("lin", x): the zoo's lin_x schedule


ZOO = {
    # hyperparams/dqn.yml, CartPole-v1 (n_envs 1, n_timesteps 5e4)
    "dqn": Zoo(
        n_envs=1,
        n_timesteps=50_000,
        kwargs={
            "learning_rate": 2.3e-3,
            "batch_size": 64,
            "buffer_size": 100_000,
            "learning_starts": 1000,
            "gamma": 0.99,
            "target_update_interval": 10,
            "train_freq": 256,
            "gradient_steps": 128,
            "exploration_fraction": 0.16,
            "exploration_final_eps": 0.04,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
    ),
    # hyperparams/ppo.yml, CartPole-v1 (n_envs 8, n_timesteps 1e5; lin_ schedules)
    "ppo": Zoo(
        n_envs=8,
        n_timesteps=100_000,
        kwargs={
            "n_steps": 32,
            "batch_size": 256,
            "gae_lambda": 0.8,
            "gamma": 0.98,
            "n_epochs": 20,
            "ent_coef": 0.0,
            "learning_rate": ("lin", 0.001),
            "clip_range": ("lin", 0.2),
        },
    ),
}


@dataclass
class Evaluation:
    steps: int  # environment steps trained before this evaluation
    train_s: float  # seconds spent training before it (evaluations not counted)
    total_s: float  # seconds from launching the process to the end of this evaluation
    mean: float  # mean return of its episodes
    episodes: int


@dataclass
class Outcome:
    system: str
    algo: str
    seed: int
    evaluations: list[Evaluation] = field(default_factory=list)
    steps: int = 0  # environment steps trained in all
    train_s: float = 0.0
    total_s: float = 0.0
    problem: str = ""  # why the run gave no figures; "" when it ran
    note: str = ""


def _linear(start: float) -> Any:
    """The zoo's ``lin_<start>``: from ``start`` down to 0 as training progresses."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * start

    return schedule


def _kwargs(algo: str) -> dict[str, Any]:
    return {name: _linear(value[1]) if isinstance(value, tuple) else value for name, value in ZOO[algo].kwargs.items()}


def train(args: argparse.Namespace, launched: float) -> Outcome:
    """Train with periodic deterministic evaluations; stop at the last threshold or a budget."""
    import torch
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    if args.threads > 0:  # arl's learners run torch on one thread; on a busy machine more can spin
        torch.set_num_threads(args.threads)
    outcome = Outcome("sb3", args.algo, args.seed, note=f"torch threads {torch.get_num_threads()}")
    env = make_vec_env("CartPole-v1", n_envs=ZOO[args.algo].n_envs, seed=args.seed)
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=args.seed + 10_000)
    model = (DQN if args.algo == "dqn" else PPO)("MlpPolicy", env, seed=args.seed, verbose=0, **_kwargs(args.algo))

    class Evaluate(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_at, self.evaluating, self.started = args.eval_every, 0.0, time.time()

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_at:
                while self.next_at <= self.num_timesteps:
                    self.next_at += args.eval_every
                began = time.time()
                mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=args.episodes, deterministic=True)
                ended = time.time()
                train_s = began - self.started - self.evaluating
                self.evaluating += ended - began
                outcome.evaluations.append(
                    Evaluation(self.num_timesteps, train_s, ended - launched, float(mean), args.episodes)  # type: ignore[arg-type]
                )
                if mean >= args.stop_at:
                    return False
            in_budget = self.num_timesteps < args.steps
            return bool(in_budget and time.time() - self.started - self.evaluating < args.seconds)

    callback = Evaluate()
    # The zoo's schedules span its n_timesteps whatever the budget (as arl's example files'
    # decay_steps and anneal_steps do); a smaller budget stops early, a larger one stretches them.
    model.learn(total_timesteps=max(args.steps, ZOO[args.algo].n_timesteps), callback=callback)
    outcome.steps = int(model.num_timesteps)
    outcome.train_s = time.time() - callback.started - callback.evaluating
    outcome.total_s = time.time() - launched
    # DQN: gradient steps; PPO: epochs over rollouts
    outcome.note += f", {model._n_updates} updates (_n_updates)"
    return outcome


def run(
    algo: str, seed: int, *, steps: int, seconds: float, eval_every: int, episodes: int, stop_at: float, threads: int
) -> Outcome:
    """This file as a script, in a fresh process, timed from its launch."""
    launched = time.time()
    command = [sys.executable, __file__, "--algo", algo, "--seed", str(seed), "--launched", repr(launched)]
    command += ["--threads", str(threads)]
    command += ["--steps", str(steps), "--seconds", str(seconds), "--eval-every", str(eval_every)]
    command += ["--episodes", str(episodes), "--stop-at", str(stop_at)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        return Outcome("sb3", algo, seed, problem=f"exit code {done.returncode}: {said[-1] if said else '(no stderr)'}")
    data = json.loads(done.stdout.splitlines()[-1])
    evaluations = [Evaluation(**e) for e in data.pop("evaluations")]
    return Outcome(**data, evaluations=evaluations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=sorted(ZOO), required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--launched", type=float, default=None, help="time.time() when the caller launched this")
    parser.add_argument("--steps", type=int, default=None, help="budget in environment steps (default: the zoo's)")
    parser.add_argument("--seconds", type=float, default=600.0, help="budget in seconds of training")
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--stop-at", type=float, default=475.0)
    parser.add_argument("--threads", type=int, default=1, help="torch's threads (0: torch's default)")
    args = parser.parse_args()
    args.steps = args.steps or ZOO[args.algo].n_timesteps
    outcome = train(args, args.launched if args.launched is not None else time.time())
    print(json.dumps(asdict(outcome)))


if __name__ == "__main__":
    main()
