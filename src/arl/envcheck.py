"""``arl.check_environment(env)``: does an environment keep the contract arl relies on?
In the spirit of Gymnasium's ``gymnasium.utils.env_checker.check_env``.

It declares its sensors and actuators (ids unique, spaces arl can describe), resets
and steps a few times with setpoints sampled from the actuators' spaces, and checks
what comes back: readings keyed by declared sensor ids and in their spaces, rewards
finite numbers keyed by text, ``terminated`` and ``truncated`` bools, ``info`` a mapping
or None. An environment with state of its own (it overrides ``save_state``) is saved
part-way, stepped on, loaded and stepped again with the same setpoints: both runs must
give the same results (what a resumed run relies on).

Every problem is collected, not only the first; what the environment raises is one.
``arl-run check --probe`` runs it on each environment of the files.
"""

from __future__ import annotations

import copy
import math
import numbers
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arl import spaces as arl_spaces
from arl.api import ActuatorInfo, Environment, SensorInfo, StepResult
from arl.spacecheck import Test, membership, shown

STEPS = 8
"""Steps taken with sampled setpoints (resetting after an episode's end)."""

STATE_STEPS = 3
"""Steps before the state is saved, and again after it, in the round trip."""


class EnvironmentProblems(ValueError):
    """What :func:`check_environment` found wrong: every problem, in :attr:`problems`."""

    def __init__(self, environment: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"- {p}" for p in problems)
        super().__init__(f"{environment} has {len(problems)} problem(s):\n{lines}")


def check_environment(env: Environment, *, seed: int = 0, steps: int = STEPS) -> None:
    """Check ``env`` (an :class:`arl.Environment` instance, set up as a run would make
    it); raise :class:`EnvironmentProblems` listing every problem found. It is reset and
    stepped: use an instance made for the check."""
    found = environment_problems(env, seed=seed, steps=steps)
    if found:
        raise EnvironmentProblems(type(env).__qualname__, found)


def environment_problems(env: Environment, *, seed: int = 0, steps: int = STEPS) -> list[str]:
    """What :func:`check_environment` would raise about, as a list (empty: no problem)."""
    if not isinstance(env, Environment):
        return [f"{type(env).__qualname__} is not an arl.Environment"]
    checker = _Checker(env, seed)
    try:
        checker.declared()
        if not checker.problems:
            checker.run(steps)
        if not checker.problems and type(env).save_state is not Environment.save_state:
            checker.round_trip()
    except _Raised:
        pass  # already a problem: nothing more can be checked
    return checker.problems


class _Raised(Exception):
    """The environment raised; the check ends with that as its last problem."""


class _Checker:
    def __init__(self, env: Environment, seed: int) -> None:
        self.env, self.seed = env, seed
        self.problems: list[str] = []
        self._said: set[tuple[Any, ...]] = set()
        self.sensors: dict[str, Test] = {}
        self.actuators: list[ActuatorInfo] = []

    def problem(self, message: str, once: tuple[Any, ...] | None = None) -> None:
        """Add a problem; one with a key ``once`` only the first time (a reading out of
        its space is said for the first step it happens in, not for every step)."""
        if once is not None:
            if once in self._said:
                return
            self._said.add(once)
        self.problems.append(message)

    def call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``; what it raises is a problem, and ends the check."""
        try:
            return function(*args, **kwargs)
        except Exception as exc:  # the user's code: whatever it raises is the finding
            self.problem(f"{what} raised {type(exc).__name__}: {exc}")
            raise _Raised from exc

    # -- what it declares

    def declared(self) -> None:
        sensors = self._infos("sensors", SensorInfo)
        actuators = self._infos("actuators", ActuatorInfo)
        for info in sensors:
            self.sensors[info.id] = membership(info.space)
        self.actuators = actuators

    def _infos(self, kind: str, cls: type[Any]) -> list[Any]:
        declared = self.call(f"{kind}()", getattr(self.env, kind))
        if not isinstance(declared, Sequence) or isinstance(declared, str):
            self.problem(f"{kind}() returned {shown(declared)}, not a list of {cls.__name__}")
            return []
        good, seen = [], set()
        for item in declared:
            if not isinstance(item, cls):
                self.problem(f"{kind}() returned {shown(item)}, not {cls.__name__}")
            elif not isinstance(item.id, str) or not item.id:
                self.problem(f"{kind}(): an id must be a non-empty string, not {shown(item.id)}")
            elif item.id in seen:
                self.problem(f"{kind}(): the id {item.id!r} is declared twice")
            elif (message := _space_problem(item.space)) is not None:
                self.problem(f"{kind}(): {item.id!r}: {message}")
            else:
                seen.add(item.id)
                good.append(item)
        return good

    # -- stepping

    def run(self, steps: int) -> None:
        sampler = _Sampler(self.actuators, self.seed)
        self.readings("reset()", self.call("reset()", self.env.reset, seed=self.seed))
        for step in range(1, steps + 1):
            result = self.step(f"step {step}", sampler.setpoints())
            if result is None:
                return
            if result.terminated or result.truncated:
                self.readings("reset()", self.call("reset()", self.env.reset, seed=self.seed + step))

    def step(self, what: str, setpoints: dict[str, Any]) -> StepResult | None:
        result = self.call(f"{what}: step()", self.env.step, setpoints)
        if not isinstance(result, StepResult):
            self.problem(f"{what}: step() returned {shown(result)}, not an arl.StepResult", ("result",))
            return None
        self.readings(f"{what}: step()", result.sensors)
        self._rewards(what, result.rewards)
        for flag in ("terminated", "truncated"):
            value = getattr(result, flag)
            if not isinstance(value, bool | np.bool_):
                self.problem(f"{what}: {flag} is {shown(value)}, not a bool", (flag,))
        if result.info is not None and not isinstance(result.info, Mapping):
            self.problem(f"{what}: info is {shown(result.info)}, not a mapping (or None)", ("info",))
        return result

    def readings(self, what: str, readings: Any) -> None:
        if not isinstance(readings, Mapping):
            message = f"{what} returned readings {shown(readings)}, not a mapping of sensor id to value"
            self.problem(message, ("readings",))
            return
        for key, value in readings.items():
            test = self.sensors.get(key)
            if test is None:
                self.problem(f"{what} gave a reading {key!r}, which is no sensor it declares", ("unknown", key))
            elif not test(value):
                space = next(s.space for s in self.env.sensors() if s.id == key)
                message = f"{what}: sensor {key!r} read {shown(value)}, which is not in its space {space}"
                self.problem(message, ("outside", key))

    def _rewards(self, what: str, rewards: Any) -> None:
        if not isinstance(rewards, Mapping):
            self.problem(f"{what}: rewards are {shown(rewards)}, not a mapping of name to number", ("rewards",))
            return
        for key, value in rewards.items():
            if not isinstance(key, str):
                self.problem(f"{what}: a reward's name must be a string, not {shown(key)}", ("name", key))
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                self.problem(f"{what}: reward {key!r} is {shown(value)}, not a finite number", ("reward", key))

    # -- state

    def round_trip(self) -> None:
        """Save after a few steps, step on, load, step again alike: the same results."""
        sampler = _Sampler(self.actuators, self.seed + 1)
        self.call("reset()", self.env.reset, seed=self.seed)
        for step in range(1, STATE_STEPS + 1):
            result = self.call(f"step {step}", self.env.step, sampler.setpoints())
            if result.terminated or result.truncated:
                return  # an episode this short leaves nothing to go on with
        after = [sampler.setpoints() for _ in range(STATE_STEPS)]
        with tempfile.TemporaryDirectory(prefix="arl-envcheck-") as folder:
            saved = Path(folder) / "state"
            saved.mkdir()
            self.call("save_state()", self.env.save_state, saved)
            first = self._go_on(after)
            self.call("load_state()", self.env.load_state, saved)
            second = self._go_on(after)
        for n, (one, other) in enumerate(zip(first, second, strict=True), start=STATE_STEPS + 1):
            differs = _difference(one, other)
            if differs is not None:
                self.problem(
                    f"after load_state(), step {n} gave other results than after the save_state() it loads "
                    f"({differs}): the state does not hold all the environment goes on from"
                )
                return

    def _go_on(self, setpoints: list[dict[str, Any]]) -> list[StepResult]:
        results = []
        for n, chosen in enumerate(setpoints, start=STATE_STEPS + 1):
            result = self.call(f"step {n}", self.env.step, copy.deepcopy(chosen))
            results.append(result)
            if result.terminated or result.truncated:
                break
        return results


class _Sampler:
    """Setpoints drawn from each actuator's space, repeatably (copies of the spaces, so
    the environment's own are not reseeded)."""

    def __init__(self, actuators: list[ActuatorInfo], seed: int) -> None:
        self.spaces = []
        for i, actuator in enumerate(actuators):
            space = copy.deepcopy(actuator.space)
            space.seed(seed + i)
            self.spaces.append((actuator.id, space))

    def setpoints(self) -> dict[str, Any]:
        return {key: space.sample() for key, space in self.spaces}


def _space_problem(space: Any) -> str | None:
    """Why arl cannot send values of ``space`` across its processes, or None."""
    try:
        arl_spaces.describe(space)
    except TypeError as exc:
        return str(exc)
    except AttributeError:
        return f"{shown(space)} is not a gymnasium space"
    return None


def _difference(one: StepResult, other: StepResult) -> str | None:
    for field in ("sensors", "rewards", "terminated", "truncated"):
        a, b = getattr(one, field), getattr(other, field)
        if field in ("sensors", "rewards"):
            for key in sorted(set(a) | set(b), key=str):
                if key not in a or key not in b or not _same(a[key], b[key]):
                    return f"{field[:-1]} {key!r}: {shown(a.get(key))} then {shown(b.get(key))}"
        elif bool(a) != bool(b):
            return f"{field}: {a} then {b}"
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a), np.asarray(b)
        return x.shape == y.shape and bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):  # a Tuple space's reading holds arrays
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # an == that gives no one truth (an object holding arrays): compare as shown
        return repr(a) == repr(b)
