"""EnvironmentConductor: hosts one environment instance of one worker."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from arl import spaces
from arl.api import Environment
from arl.classref import import_class
from arl.messages import control
from arl.messages import environment as msg
from arl.proc.child import ChildContext
from arl.spacecheck import SetpointError, Test, membership, outside_space
from arl.stepinfo import info_text

from .service import Service

log = logging.getLogger("arl.environment")


class EnvironmentConductor:
    """Turns control and step messages into calls on the user's Environment."""

    def __init__(self) -> None:
        self.env: Environment | None = None
        self.uid = ""
        self._qualified: dict[str, str] = {}  # local sensor id -> "uid.id"
        self._prefix_len = 0
        self._in_space: dict[str, Test] = {}  # local actuator id -> whether a setpoint lies in its space

    def handle(self, message: Any) -> Any:
        if isinstance(message, msg.Step):
            return self.step(message)
        if isinstance(message, msg.Reset):
            return self.reset(message)
        if isinstance(message, control.SetupEnvironment):
            return self.setup(message)
        if isinstance(message, control.SaveState):  # a snapshot, while the run is paused
            folder = Path(message.directory)
            folder.mkdir(parents=True, exist_ok=False)
            self._env().save_state(folder)
            return control.StateSaved([self.uid])
        if isinstance(message, control.LoadState):
            self._env().load_state(Path(message.directory))
            return control.StateSaved([self.uid])
        raise TypeError(f"an environment conductor cannot handle {type(message).__name__}")

    def setup(self, request: control.SetupEnvironment) -> control.EnvironmentReady:
        self.close()
        cls = import_class(request.entry_point)
        env = cls(**request.params)
        if not isinstance(env, Environment):
            raise TypeError(f"{request.entry_point} is not an arl.Environment")
        self.env, self.uid = env, request.env_uid
        self._prefix_len = len(self.uid) + 1
        sensors = [[f"{self.uid}.{s.id}", spaces.describe(s.space)] for s in env.sensors()]
        actuators = [[f"{self.uid}.{a.id}", spaces.describe(a.space)] for a in env.actuators()]
        self._qualified = {s.id: f"{self.uid}.{s.id}" for s in env.sensors()}
        self._in_space = {a.id: membership(a.space) for a in env.actuators()}
        log.debug("environment %s set up for phase %d", self.uid, request.phase)
        return control.EnvironmentReady(self.uid, sensors, actuators)

    def _env(self) -> Environment:
        if self.env is None:
            raise RuntimeError("the environment is not set up for a phase")
        return self.env

    def _qualify(self, readings: Any) -> dict[str, Any]:
        """Readings keyed by qualified id; ids are qualified once, then looked up."""
        q = self._qualified
        out = {}
        for k, v in readings.items():
            key = q.get(k)
            if key is None:
                key = q[k] = f"{self.uid}.{k}"
            out[key] = v
        return out

    def reset(self, request: msg.Reset) -> msg.Observation:
        return msg.Observation(self._qualify(self._env().reset(seed=request.seed)))

    def step(self, request: msg.Step) -> msg.Stepped:
        cut, in_space = self._prefix_len, self._in_space
        setpoints = {}
        for key, value in request.setpoints.items():
            local = key[cut:]
            test = in_space.get(local)
            if test is not None and not test(value) and self._env().applies(local):  # (asked only of a misfit)
                raise self._outside(local, value)
            setpoints[local] = value
        result = self._env().step(setpoints)
        rewards = {key: float(v) for key, v in self._qualify(result.rewards).items()}
        info = result.info
        return msg.Stepped(
            self._qualify(result.sensors), rewards, bool(result.terminated), bool(result.truncated),
            None if info is None else info_text(info),
        )  # fmt: skip

    def _outside(self, local: str, value: Any) -> SetpointError:
        """The error for a setpoint outside its actuator's space (the step loop names the
        agent that set it, :func:`arl.spacecheck.outside_space`)."""
        space = next(a.space for a in self._env().actuators() if a.id == local)
        return SetpointError(outside_space(f"{self.uid}.{local}", value, space))

    def close(self) -> None:
        """Close the current environment instance, if any (at the next setup, or at exit)."""
        if self.env is not None:
            env, self.env = self.env, None
            env.close()


def main(ctx: ChildContext) -> None:
    """Entry point of an ``arl[environment:...]`` process."""
    conductor = EnvironmentConductor()
    try:
        Service(ctx, conductor.handle).serve()
    finally:
        conductor.close()
