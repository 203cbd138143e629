"""Components the end-to-end tests name in their experiment files (on PYTHONPATH there)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from arl.api import ActuatorInfo, Environment, SensorInfo, StepResult
from arl.conditions import RunView, TerminationCondition
from arl.dummy import DummyBrain, DummyEnvironment, DummyMuscle, DummyObjective
from arl.simulation import Simulation


class CrashingEnvironment(DummyEnvironment):
    """Raises in the step numbered ``crash_at`` (counting from 1, over the whole phase)."""

    def __init__(self, crash_at: int, **params: Any) -> None:
        super().__init__(**params)
        self.crash_at = crash_at
        self.steps = 0

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        self.steps += 1
        if self.steps == self.crash_at:
            raise RuntimeError(f"boom at step {self.steps}")
        return super().step(setpoints)


class DiesOnce(DummyEnvironment):
    """Kills its own process (SIGKILL) in its step numbered ``die_at`` (counting from 1
    over the phase), unless a process of the run already did: the first to create the
    file ``marker`` dies, so the restarted one lives.

    ``then``: what one built once ``marker`` exists (a restart's) does while it is
    built: ``lives`` (nothing), ``stalls`` (creates ``<marker>.stalled``, then sleeps
    ``stall`` seconds) or ``dies`` (kills its process)."""

    def __init__(self, die_at: int, marker: str, then: str = "lives", stall: float = 30.0, **params: Any) -> None:
        super().__init__(**params)
        self.die_at, self.marker = die_at, marker
        self.steps = 0
        if then not in ("lives", "stalls", "dies"):
            raise ValueError(f"then: {then!r} is not one of lives, stalls, dies")
        if then == "dies" and os.path.exists(marker):
            os.kill(os.getpid(), signal.SIGKILL)
        if then == "stalls" and os.path.exists(marker):
            open(f"{marker}.stalled", "w").close()
            time.sleep(stall)

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        self.steps += 1
        if self.steps == self.die_at:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().step(setpoints)


class EnvironmentRecorder(DummyEnvironment):
    """Writes the process's ``OPENBLAS_NUM_THREADS`` (or "unset") to the file ``record``
    when it is built."""

    def __init__(self, record: str, **params: Any) -> None:
        super().__init__(**params)
        with open(record, "w") as file:
            file.write(os.environ.get("OPENBLAS_NUM_THREADS", "unset"))


class SlowEnvironment(DummyEnvironment):
    """Takes ``delay`` seconds a step, so a test can act on a run in progress."""

    def __init__(self, delay: float, **params: Any) -> None:
        super().__init__(**params)
        self.delay = delay

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        time.sleep(self.delay)
        return super().step(setpoints)


class CrashingMuscle(DummyMuscle):
    """Raises on its ``crash_at``-th call."""

    def __init__(self, crash_at: int) -> None:
        self.crash_at = crash_at
        self.calls = 0

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls += 1
        if self.calls == self.crash_at:
            raise ValueError("the muscle cannot decide")
        return super().act(sensors)


class SlowMuscle(DummyMuscle):
    """Takes ``delay`` seconds to act, so a stop lands while agents act."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        time.sleep(self.delay)
        return super().act(sensors)


class LearnRaisingBrain(DummyBrain):
    """Raises when asked to learn: fine in a test phase, fatal in a train phase."""

    def learn(self, experience: Any) -> Any:
        raise RuntimeError("this brain cannot learn")


class RaisingObjective(DummyObjective):
    """Raises on its first evaluation."""

    def evaluate(self, rewards: Mapping[str, float]) -> float:
        raise ArithmeticError("no objective today")


class AttackerEveryThirdStep(Simulation):
    """The defender acts every step; the attacker joins it every ``period``-th step."""

    def __init__(self, period: int = 3) -> None:
        self.period = period

    def actors(self, step: int, episode: int) -> Sequence[str]:
        return self.agents if step % self.period == 0 else [a for a in self.agents if a != "attacker"]


class NobodyActs(Simulation):
    def actors(self, step: int, episode: int) -> Sequence[str]:
        return []


class EndsRunAfterFirstEpisode(TerminationCondition):
    """A user's run-level condition: the run ends once any phase has run an episode."""

    def run_over(self, view: RunView) -> str | None:
        if view.current is not None and view.current.episodes >= 1:
            return "enough"
        return None


class UnresettableEnvironment(DummyEnvironment):
    """Cannot start an episode: what ``arl-run check --probe`` is for."""

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        raise ConnectionError("the simulator at localhost:9999 does not answer")


class MetricBrain(DummyBrain):
    """Logs one metric a learn call (``objective``, its step the count of experiences), and
    hands its muscles a new policy version every ``every`` experiences."""

    def __init__(self, every: int = 3) -> None:
        super().__init__()
        self.every = every

    def learn(self, experience: Any) -> Any:
        super().learn(experience)
        self.log_metric("objective", experience.objective, step=self.experiences)
        return self.experiences // self.every if self.experiences % self.every == 0 else None


class VersionedMuscle(DummyMuscle):
    """A DummyMuscle whose policy version is the last one its brain sent; logs each one."""

    def update(self, update: Any) -> None:
        self.policy_version = int(update)
        self.log_metric("policy_version", self.policy_version)


class ChainEnvironment(Environment):
    """Seven states in a row, the goal in the middle: ``action`` 1 moves right, 0 left;
    the goal pays 1 and ends the episode. The observation is the state, one-hot. Episodes
    start in every other state in turn; none is cut here (the file's max_steps does that)."""

    def __init__(self, states: int = 7) -> None:
        self.states, self.goal = states, states // 2
        self._starts = [s for s in range(states) if s != self.goal]
        self._episode = -1
        self.state = 0

    def sensors(self) -> Sequence[SensorInfo]:
        return [SensorInfo("obs", spaces.Box(0.0, 1.0, shape=(self.states,), dtype=np.float32))]

    def actuators(self) -> Sequence[ActuatorInfo]:
        return [ActuatorInfo("action", spaces.Discrete(2))]

    def _obs(self) -> dict[str, Any]:
        obs = np.zeros(self.states, np.float32)
        obs[self.state] = 1.0
        return {"obs": obs}

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        self._episode += 1
        self.state = self._starts[self._episode % len(self._starts)]
        return self._obs()

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        move = 1 if int(setpoints.get("action", 0)) == 1 else -1
        self.state = min(self.states - 1, max(0, self.state + move))
        done = self.state == self.goal
        return StepResult(sensors=self._obs(), rewards={"reward": 1.0 if done else 0.0}, terminated=done)
