"""The frozen specs a checked file turns into (only ever built when nothing was wrong)."""

from __future__ import annotations

import copy
from typing import Any

from arl.api import Brain, Environment, Muscle, Objective
from arl.conditions import TerminationCondition
from arl.config.filemodels import (
    DEFAULT_CONDITION,
    AgentFile,
    ControlFile,
    KeepFile,
    PhaseConfigFile,
    PhaseFile,
    RunFile,
    SaveFile,
    StateFile,
)
from arl.config.phases import SECTIONS, Phase
from arl.config.shorthands import class_ref
from arl.config.spec import (
    AgentSpec,
    ClassRef,
    ControlSpec,
    EnvironmentSpec,
    InferenceSpec,
    KeepSpec,
    LearnerSpec,
    LoadSpec,
    PhaseSpec,
    ProcessLayout,
    RestartSpec,
    RunSpec,
    SaveSpec,
    SimulationSpec,
    StateSpec,
)
from arl.simulation import Simulation
from arl.state.conditions import SaveCondition
from arl.state.keepers import StatesKeeper


def build_run(top: RunFile, phases: list[Phase], models: list[PhaseFile], data: dict[str, Any]) -> RunSpec:
    specs = tuple(_build_phase(p, m) for p, m in zip(phases, models, strict=True))
    document = {
        key: [{p.name: _resolved_body(p)} for p in phases] if key == "schedule" else copy.deepcopy(value)
        for key, value in data.items()
    }
    return RunSpec(
        uid=top.uid,
        experiment_uid=top.experiment_uid,
        seed=top.seed,
        version=top.version,
        phases=specs,
        document=document,
        conditions=tuple(class_ref(c, TerminationCondition) for c in top.conditions or ()),
        processes=ProcessLayout(top.processes.environments, top.processes.agents) if top.processes else ProcessLayout(),
        restart=RestartSpec(top.restart.max, float(top.restart.within)) if top.restart else None,
        state=_state(top.state) if top.state else None,
        control=_control(top.control) if top.control else ControlSpec(),
        time_scale=top.time_scale,
        max_uptime=top.max_uptime,
        statistics_interval=top.statistics_interval,
    )


def _state(state: StateFile) -> StateSpec:
    save = state.save or SaveFile()
    keep = state.keep or KeepFile()
    return StateSpec(
        dir=state.dir,
        name_format=state.name_format,
        save=SaveSpec(
            every_seconds=save.every_seconds,
            every_steps=save.every_steps,
            every_episodes=save.every_episodes,
            at_phase_end=save.at_phase_end,
            on_signal=save.on_signal,
            conditions=tuple(class_ref(c, SaveCondition) for c in save.conditions or ()),
        ),
        keep=KeepSpec(
            latest=keep.latest,
            every_hours=keep.every_hours,
            max_total_mb=keep.max_total_mb,
            keeper=class_ref(keep.keeper, StatesKeeper) if keep.keeper else None,
        ),
    )


def _control(control: ControlFile) -> ControlSpec:
    return ControlSpec(control.pause_timeout, control.pause_attempts, control.queue_size)


def _resolved_body(phase: Phase) -> dict[str, Any]:
    order = [*SECTIONS, "phase_config"]
    return {k: copy.deepcopy(phase.body[k]) for k in order if k in phase.body}


def _build_phase(phase: Phase, model: PhaseFile) -> PhaseSpec:
    config = model.phase_config or PhaseConfigFile()
    conditions = model.simulation.conditions
    return PhaseSpec(
        name=phase.name,
        index=phase.index,
        mode=config.mode,
        episodes=config.episodes,
        workers=config.workers or config.worker or 1,
        max_steps=config.max_steps,
        envs_per_worker=config.envs_per_worker,
        environments=tuple(
            EnvironmentSpec(e.environment.uid, class_ref(e.environment, Environment)) for e in model.environments
        ),
        agents=tuple(_build_agent(a) for a in model.agents),
        simulation=SimulationSpec(
            name=model.simulation.name,
            entry=class_ref(model.simulation, Simulation),
            conditions=(
                tuple(class_ref(c, TerminationCondition) for c in conditions)
                if conditions is not None
                else (ClassRef(DEFAULT_CONDITION, {}),)
            ),
        ),
    )


def _build_agent(agent: AgentFile) -> AgentSpec:
    load = None
    if agent.load is not None:
        load = LoadSpec(agent.load.phase, agent.load.agent or agent.name, agent.load.run)
    return AgentSpec(
        name=agent.name,
        brain=class_ref(agent.brain, Brain),
        muscle=class_ref(agent.muscle, Muscle),
        objective=class_ref(agent.objective, Objective),
        sensors=tuple(agent.sensors),
        actuators=tuple(agent.actuators),
        load=load,
        learner=_learner(agent),
        inference=_inference(agent),
    )


def _learner(agent: AgentFile) -> LearnerSpec | None:
    """Central when either key is there: the other then takes its defaults."""
    f = agent.learner
    if f is None:
        return LearnerSpec() if agent.inference is not None else None
    frequency = None if f.max_train_frequency is None else float(f.max_train_frequency)
    pace = None if f.max_steps_per_update is None else float(f.max_steps_per_update)
    return LearnerSpec(frequency, f.minimum_buffer_size, float(f.broadcast_period), f.device, pace)


def _inference(agent: AgentFile) -> InferenceSpec | None:
    f = agent.inference
    if f is None:
        return InferenceSpec() if agent.learner is not None else None
    return InferenceSpec(f.servers, f.batchsize, float(f.delay), f.device)
