"""AgentConductor: hosts an agent's brain, objective and one muscle per worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arl import spaces
from arl.api import ActuatorInfo, Brain, Experience, Muscle, Objective, SensorInfo
from arl.checkpoints import Saved, directory_digest, make_folder, verify
from arl.classref import build
from arl.messages import agent as msg
from arl.messages import control
from arl.proc.child import ChildContext
from arl.seeding import derive_seed

from .service import Service

log = logging.getLogger("arl.agent")


@dataclass
class _Pending:
    """The transition a muscle started: completed when the next rewards arrive."""

    inputs: dict[str, Any]
    setpoints: dict[str, Any]


class AgentConductor:
    """Serves the agent's muscles to the controllers and feeds the brain in train mode."""

    def __init__(self) -> None:
        self.name = ""
        self.brain: Brain | None = None
        self.objective: Objective | None = None
        self.muscles: list[Muscle] = []
        self.train = False
        self._actuators: frozenset[str] = frozenset()
        self._pending: dict[int, _Pending] = {}

    def handle(self, message: Any) -> Any:
        if isinstance(message, msg.Act):
            return self.act(message)
        if isinstance(message, control.SetupAgent):
            return self.setup(message)
        if isinstance(message, control.SaveBrain):
            return self.save(message)
        raise TypeError(f"an agent conductor cannot handle {type(message).__name__}")

    def setup(self, request: control.SetupAgent) -> control.AgentReady:
        sensors = [SensorInfo(sid, spaces.build(desc)) for sid, desc in request.sensors]
        actuators = [ActuatorInfo(aid, spaces.build(desc)) for aid, desc in request.actuators]
        brain: Brain = build(request.brain[0], request.brain[1], Brain, "brain")
        brain.setup(sensors, actuators, derive_seed(request.seed, "brain"))
        if request.load_from is not None:
            path, sha256 = request.load_from
            directory = verify(Saved(path, sha256))  # before user code reads a byte of it
            brain.load(directory)
            log.info("agent %s loaded its brain from %s", request.name, directory)
        muscles: list[Muscle] = []
        for worker in range(request.workers):
            muscle: Muscle = build(request.muscle[0], request.muscle[1], Muscle, "muscle")
            muscle.setup(sensors, actuators, derive_seed(request.seed, "muscle", worker))
            muscles.append(muscle)
        policy = brain.policy()
        if policy is not None:
            for muscle in muscles:
                muscle.update(policy)
        self.objective = build(request.objective[0], request.objective[1], Objective, "objective")
        self.name, self.brain, self.muscles, self.train = request.name, brain, muscles, request.train
        self._actuators = frozenset(a.id for a in actuators)
        self._pending.clear()
        return control.AgentReady(request.name)

    def act(self, request: msg.Act) -> msg.Acted:
        if self.brain is None or self.objective is None:
            raise RuntimeError(f"agent {self.name!r} is not set up for a phase")
        objective = None
        pending = self._pending.pop(request.worker, None)
        if request.rewards is not None and pending is not None:
            objective = float(self.objective.evaluate(request.rewards))
            if self.train:
                self._learn(request, pending, objective)
        if request.final:
            return msg.Acted({}, objective)
        setpoints = dict(self.muscles[request.worker].act(request.sensors))
        if not setpoints.keys() <= self._actuators:
            unknown = sorted(setpoints.keys() - self._actuators)
            raise ValueError(f"agent {self.name!r}'s muscle set actuators it does not have: {unknown}")
        self._pending[request.worker] = _Pending(request.sensors, setpoints)
        return msg.Acted(setpoints, objective)

    def _learn(self, request: msg.Act, pending: _Pending, objective: float) -> None:
        assert self.brain is not None
        assert request.rewards is not None
        experience = Experience(
            worker=request.worker,
            inputs=pending.inputs,
            setpoints=pending.setpoints,
            rewards=request.rewards,
            objective=objective,
            next_inputs=request.sensors,
            terminated=request.terminated,
            truncated=request.truncated,
        )
        update = self.brain.learn(experience)
        if update is not None:
            for muscle in self.muscles:
                muscle.update(update)

    def save(self, request: control.SaveBrain) -> control.BrainSaved:
        if self.brain is None:
            raise RuntimeError(f"agent {self.name!r} has no brain to save")
        # New, or an error: whatever is there already is not this run's to replace.
        directory = make_folder(Path(request.directory), f"agent {self.name}'s brain")
        self.brain.save(directory)
        return control.BrainSaved(self.name, str(directory), directory_digest(directory))


def main(ctx: ChildContext) -> None:
    """Entry point of an ``arl[agent:...]`` process."""
    Service(ctx, AgentConductor().handle).serve()
