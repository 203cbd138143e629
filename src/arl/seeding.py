"""Seeds for every component, derived from the run's seed by hashing, all here.

Hashing (rather than ``seed + i``) keeps neighbouring seeds uncorrelated, and the same
names always give the same seed, whatever the order components are started in. Each
component's seed has one function below; the paths hashed are part of what a run
stores (the same seed must give the same trajectory), so they never change.

::

    run seed ─┬─ phase, "agent", name ─── agent seed ─┬─ "brain"            brain.setup
              │                                       └─ "muscle", worker   muscle.setup
              ├─ phase, "worker", worker ─ worker seed ── "episode", i, uid  env.reset
              └─ "probe", uid                             the check's probe reset
"""

from __future__ import annotations

import hashlib


def derive_seed(root: int, *names: object) -> int:
    """A stable 63-bit seed for the component named by ``names`` in a run seeded ``root``."""
    text = "/".join([str(root), *map(str, names)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


def agent_seed(run_seed: int, phase: str, agent: str) -> int:
    """An agent's seed in a phase (``SetupAgent.seed``): its brain's and muscles' come from it."""
    return derive_seed(run_seed, phase, "agent", agent)


def brain_seed(agent: int) -> int:
    return derive_seed(agent, "brain")


def muscle_seed(agent: int, worker: int) -> int:
    return derive_seed(agent, "muscle", worker)


def worker_seed(run_seed: int, phase: str, worker: int) -> int:
    """A worker's seed in a phase (``RunPhase.seed``): its episodes' come from it."""
    return derive_seed(run_seed, phase, "worker", worker)


def episode_seed(worker: int, episode: int, env_uid: str) -> int:
    """The seed an environment is reset with at the start of an episode."""
    return derive_seed(worker, "episode", episode, env_uid)


def probe_seed(run_seed: int, env_uid: str) -> int:
    """The seed of the check's one reset of each environment (``arl-run check --probe``)."""
    return derive_seed(run_seed, "probe", env_uid)
