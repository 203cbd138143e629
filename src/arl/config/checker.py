"""Every check of an experiment file, run over the raw data with type guards, so one broken
key does not hide the mistakes elsewhere: the strict pydantic file schema (whose ``loc``
is a path, hence a position), and what pydantic cannot express (names that become paths,
integers the store cannot hold, references between sections, classes, the probe, runs in
the store)."""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Callable, Iterator
from typing import Any

from arl.api import Brain, Environment, Muscle, Objective
from arl.classref import qualname
from arl.conditions import TerminationCondition
from arl.config import modulepaths
from arl.config.build import build_run
from arl.config.classes import Classes
from arl.config.filemodels import MAX_INT, MIN_INT, PhaseFile, RunFile
from arl.config.parse import MAX_DEPTH
from arl.config.phases import Phase, inherit
from arl.config.probe import Prober
from arl.config.report import DocPath, Report, did_you_mean, render, schema_problems, shorten, show
from arl.config.spec import LoadSpec, RunSpec
from arl.config.statekeys import dir_problem, name_format_problem, signal_problem
from arl.errors import Location
from arl.names import name_problem
from arl.simulation import BUILT_IN as BUILT_IN_SIMULATIONS
from arl.simulation import Simulation
from arl.state.conditions import SaveCondition
from arl.state.keepers import StatesKeeper

SCHEMA_VERSION = 1

Progress = Callable[[Location, str, str], None]
"""Told (where, path, what) before the check runs user code: a module imported, an
environment probed, the store asked. A process that checks a file in a child of its own
can then say what the child was doing if it hangs or dies."""

Stored = Callable[[LoadSpec], str | None]
"""Whether the store has the brain a ``load: {run: ...}`` names: None if it has, else why not."""

_AGENT_ROLES: tuple[tuple[str, type], ...] = (
    ("brain", Brain),
    ("muscle", Muscle),
    ("objective", Objective),
)


class Checker:
    """Runs every check over the raw data and files what it finds with the report."""

    def __init__(
        self,
        report: Report,
        resolve_classes: bool,
        *,
        prober: Prober | None = None,
        progress: Progress | None = None,
        stored: Stored | None = None,
    ) -> None:
        self.report = report
        self.classes = Classes(resolve_classes)
        self.prober = prober
        self.progress = progress
        self.stored = stored
        self._contextual: set[tuple[DocPath, str]] = set()
        self._own_environments = False  # the file's processes.environments is "own"

    def check_run(self, data: Any) -> RunSpec | None:
        """The RunSpec, or None when a problem was found (all of them are in the report)."""
        if not isinstance(data, dict):
            got = "an empty file" if data is None else show(data)
            self.report.add((), f"expected a mapping with 'uid' and 'schedule', got {got}")
            return None
        if not self._check_values(data):
            return None  # too deep to check further without risking the stack
        top, found = schema_problems(RunFile, data)
        for loc, message, at_key in found:
            if loc != ("version",):
                self.report.add(loc, message, at_key=at_key)
        self._check_version(data)
        self._check_names(data)
        self._check_run_conditions(data)
        self._check_state(data.get("state"))
        self._check_paths(data.get(modulepaths.KEY))
        processes = data.get("processes")
        self._own_environments = isinstance(processes, dict) and processes.get("environments") == "own"
        phases = self._read_schedule(data.get("schedule"))
        names = [p.name for p in phases]
        models = [self._check_phase(p, phases[:i], names) for i, p in enumerate(phases)]
        if self.report.problems or not isinstance(top, RunFile) or not phases:
            return None
        for last_step in (self._probe, self._check_stored):
            last_step(phases, top)
            if self.report.problems:
                return None
        checked = [m for m in models if isinstance(m, PhaseFile)]
        return build_run(top, phases, checked, data)

    def add(
        self,
        phase: Phase | None,
        rel: DocPath,
        message: str,
        *,
        at_key: bool = False,
        contextual: bool = False,
    ) -> None:
        """Report at the text ``rel`` came from (``phase`` None: ``rel`` is a path from
        the top of the document, outside the schedule).

        ``contextual`` problems depend on the phase (its environments, its place in the
        schedule), so they name the phase; a phase inheriting the same text in the same
        context would only repeat its predecessor's problem, so that is reported once.
        """
        source = rel if phase is None else phase.source(rel)
        if contextual and phase is not None:
            if (source, message) in self._contextual:
                return
            self._contextual.add((source, message))
            message += phase.context(source)
        self.report.add(source, message, at_key=at_key)

    def announce(self, phase: Phase | None, rel: DocPath, what: str) -> None:
        """Tell ``progress`` that the check is about to do ``what`` for the text at ``rel``."""
        if self.progress is not None:
            source = rel if phase is None else phase.source(rel)
            self.progress(self.report.location(source), render(source), what)

    # -- the whole document

    def _check_values(self, data: dict[str, Any]) -> bool:
        """Integers the store and the wire cannot carry, and nesting too deep (values set
        with --set can add to the file's); False when the document is too deep to go on."""
        deep = False
        for path, message, too_deep in _value_problems(data):
            if path != ("seed",):  # the schema says what a seed may be
                self.report.add(path, message)
            deep = deep or too_deep
        return not deep

    def _check_paths(self, listed: Any) -> None:
        """Each folder ``paths:`` names must be there (relative ones from the file's folder)."""
        base = os.path.dirname(os.path.abspath(self.report.filename))
        for index, message in modulepaths.problems(listed, base):
            self.add(None, (modulepaths.KEY, index), message)

    def _check_version(self, data: dict[str, Any]) -> None:
        version = data.get("version", SCHEMA_VERSION)
        if type(version) is int and version == SCHEMA_VERSION:
            return
        message = f"unsupported version {show(version)}; arl reads version {SCHEMA_VERSION}"
        if not isinstance(version, int) or isinstance(version, bool):
            message += " (palaestrAI's version numbers do not apply: write 1 or leave it out)"
        self.report.add(("version",), message)

    def _check_names(self, data: dict[str, Any]) -> None:
        """The run's uids become parts of paths (checkpoint folders) and ids."""
        for key, what in (("uid", "run uid"), ("experiment_uid", "experiment uid")):
            self._check_name(None, (key,), data.get(key), what)

    def _check_name(self, phase: Phase | None, rel: DocPath, name: Any, what: str, *, at_key: bool = False) -> None:
        if isinstance(name, str) and name:  # the schema reports a missing or empty one
            problem = name_problem(name)
            if problem is not None:
                self.add(phase, rel, f"{what} {shorten(name)} {problem}", at_key=at_key)

    def _read_schedule(self, schedule: Any) -> list[Phase]:
        """The phases, inherited; malformed entries are reported and left out."""
        if not isinstance(schedule, list):
            return []
        phases: list[Phase] = []
        first: dict[str, DocPath] = {}
        for index, entry in enumerate(schedule):
            path: DocPath = ("schedule", index)
            if not isinstance(entry, dict) or len(entry) != 1:
                self.report.add(path, _bad_schedule_entry(entry))
                continue
            [(name, body)] = entry.items()
            if name in first:
                where = self.report.line(first[name])
                self.report.add((*path, name), f"duplicate phase name {name!r} (first at {where})", at_key=True)
            first.setdefault(name, (*path, name))
            self._check_name(None, (*path, name), name, "phase name", at_key=True)
            if not isinstance(body, dict | None):
                self.report.add((*path, name), f"a phase must be a mapping, got {show(body)}")
            body = body if isinstance(body, dict) else {}
            phases.append(inherit(name, index, body, phases[-1] if phases else None))
        return phases

    def _check_phase(self, phase: Phase, earlier: list[Phase], names: list[str]) -> PhaseFile | None:
        model, found = schema_problems(PhaseFile, phase.body, phase.missing_before)
        for loc, message, at_key in found:
            self.report.add(phase.source(loc), message, at_key=at_key)
        env_uids = self._check_environments(phase)
        self._check_agents(phase, env_uids, earlier, names)
        self._check_simulation(phase)
        config = phase.body.get("phase_config")
        if isinstance(config, dict) and "worker" in config and "workers" in config:
            message = "give 'workers' or palaestrAI's 'worker', not both"
            self.add(phase, ("phase_config", "worker"), message, at_key=True)
        copies = config.get("envs_per_worker") if isinstance(config, dict) else None
        if self._own_environments and isinstance(copies, int) and copies > 1:
            message = (
                "envs_per_worker steps several copies of the environments inside each controller: "
                "it needs processes.environments: in_controller (the default), not own"
            )
            self.add(phase, ("phase_config", "envs_per_worker"), message)
        return model if isinstance(model, PhaseFile) else None

    # -- environments

    def _check_environments(self, phase: Phase) -> list[str] | None:
        """The phase's environment uids, or None if some are unreadable (then references
        to environments are not checked: they would only repeat the schema's problems)."""
        entries = phase.body.get("environments")
        if not isinstance(entries, list) or not entries:
            return None
        uids: dict[str, DocPath] = {}
        complete = True
        for i, entry in enumerate(entries):
            rel: DocPath = ("environments", i, "environment")
            env = entry.get("environment") if isinstance(entry, dict) else None
            if not isinstance(env, dict):
                complete = False
                continue
            self._check_class(phase, rel, env, Environment, "environment")
            uid = env.get("uid")
            if not isinstance(uid, str) or not uid:
                complete = False
                continue
            self._check_uid(phase, (*rel, "uid"), uid, uids)
        return list(uids) if complete else None

    def _check_uid(self, phase: Phase, rel: DocPath, uid: str, uids: dict[str, DocPath]) -> None:
        if "." in uid:
            self.add(phase, rel, f"environment uid {shorten(uid)} must not contain '.' (ids are '<uid>.<sensor id>')")
        else:  # an environment's uid names its processes and services
            self._check_name(phase, rel, uid, "environment uid")
        if uid in uids:
            self.add(phase, rel, f"duplicate environment uid {uid!r} (first at {self.report.line(uids[uid])})")
        uids.setdefault(uid, phase.source(rel))

    # -- agents

    def _check_agents(self, phase: Phase, env_uids: list[str] | None, earlier: list[Phase], names: list[str]) -> None:
        agents = phase.body.get("agents")
        if not isinstance(agents, list):
            return
        seen: dict[str, DocPath] = {}
        for i, agent in enumerate(agents):
            if not isinstance(agent, dict):
                continue
            rel: DocPath = ("agents", i)
            name = agent.get("name")
            if isinstance(name, str) and name in seen:
                where = self.report.line(seen[name])
                self.add(phase, (*rel, "name"), f"duplicate agent name {name!r} (first at {where})")
            if isinstance(name, str):
                seen.setdefault(name, phase.source((*rel, "name")))
            self._check_name(phase, (*rel, "name"), name, "agent name")
            for role, base in _AGENT_ROLES:
                self._check_class(phase, (*rel, role), agent.get(role), base, role)
            for kind in ("sensor", "actuator"):
                self._check_ids(phase, (*rel, kind + "s"), agent.get(kind + "s"), env_uids, kind)
            if isinstance(agent.get("load"), dict):
                self._check_load(phase, (*rel, "load"), agent["load"], name, earlier, names)

    def _check_ids(self, phase: Phase, rel: DocPath, ids: Any, env_uids: list[str] | None, kind: str) -> None:
        """Each id must be ``<environment uid>.<id>`` with an environment of this phase."""
        if not isinstance(ids, list):
            return
        for j, qualified in enumerate(ids):
            if not isinstance(qualified, str):
                continue
            env, dot, local = qualified.partition(".")
            if not (env and dot and local):
                message = f"{kind} id {shorten(qualified)} must be '<environment uid>.<{kind} id>'"
                self.add(phase, (*rel, j), message)
            elif env_uids is not None and env not in env_uids:
                close = difflib.get_close_matches(env, env_uids, n=1)
                hint = f"; did you mean '{close[0]}.{local}'?" if close else ""
                known = ", ".join(map(repr, env_uids))
                message = (
                    f"{kind} {shorten(qualified)} names environment {env!r}, which is not in this "
                    f"phase (environments: {known}){hint}"
                )
                self.add(phase, (*rel, j), message, contextual=True)

    def _check_load(
        self, phase: Phase, rel: DocPath, load: dict[str, Any], name: Any, earlier: list[Phase], names: list[str]
    ) -> None:
        """``load.phase`` must be an earlier phase of this file that has the agent, unless
        ``load.run`` points into another run (which only the store can check)."""
        if load.get("run") is not None:
            return
        target = load.get("phase")
        if target is None and difflib.get_close_matches("phase", [str(k) for k in load], n=1):
            return  # a misspelt 'phase': reported once, as the unknown key with its suggestion
        if target is None:
            message = "missing required key 'phase' (the earlier phase to load from; or give 'run')"
            self.add(phase, rel, message)
            return
        if not isinstance(target, str):
            return
        before = {p.name: p for p in earlier}
        if target not in before:
            message = _not_earlier(target, phase.name, names, list(before))
            self.add(phase, (*rel, "phase"), message, contextual=True)
            return
        config = before[target].body.get("phase_config")
        mode = config.get("mode", "train") if isinstance(config, dict) else "train"
        if mode == "test":  # (a mode that is neither is reported where it is written)
            message = f"phase {target!r} is a test phase and saves no brain; load from a train phase"
            self.add(phase, (*rel, "phase"), message, contextual=True)
            return
        agent = load.get("agent", name)
        known = _agent_names(before[target])
        if isinstance(agent, str) and known is not None and agent not in known:
            where = (*rel, "agent") if "agent" in load else (*rel, "phase")
            message = f"phase {target!r} has no agent {agent!r}" + did_you_mean(agent, known)
            self.add(phase, where, message, contextual=True)

    # -- simulation

    def _check_simulation(self, phase: Phase) -> None:
        simulation = phase.body.get("simulation")
        if not isinstance(simulation, dict):
            return
        name = simulation.get("name")
        if isinstance(name, str) and _is_unknown_simulation(name):
            self.add(phase, ("simulation", "name"), _unknown_controller(name))
        else:
            self._check_class(phase, ("simulation",), simulation, Simulation, "simulation")
        conditions = simulation.get("conditions")
        if not isinstance(conditions, list):
            return
        for j, condition in enumerate(conditions):
            rel: DocPath = ("simulation", "conditions", j)
            cls = self._check_class(phase, rel, condition, TerminationCondition, "termination condition")
            if _is_condition(cls) and not cls.answers() & {"episode_over", "phase_over"}:
                message = (
                    f"{qualname(cls)} cannot end an episode or a phase (it overrides neither episode_over nor "
                    "phase_over); a condition that ends the run belongs in the top-level 'conditions'"
                )
                self.add(phase, (*rel, "name"), message)
        config = phase.body.get("phase_config")
        if not conditions and not (isinstance(config, dict) and config.get("max_steps")):
            message = "no termination conditions and no phase_config.max_steps: episodes would never end"
            self.add(phase, ("simulation", "conditions"), message, contextual=True)

    # -- classes

    def _check_run_conditions(self, data: dict[str, Any]) -> None:
        conditions = data.get("conditions")
        if not isinstance(conditions, list):
            return
        for j, condition in enumerate(conditions):
            rel: DocPath = ("conditions", j)
            cls = self._check_class(None, rel, condition, TerminationCondition, "termination condition")
            if _is_condition(cls) and "run_over" not in cls.answers():
                message = (
                    f"{qualname(cls)} cannot end a run (it does not override run_over); a condition that ends "
                    "an episode or a phase belongs in a phase's 'simulation.conditions'"
                )
                self.add(None, (*rel, "name"), message)

    def _check_state(self, state: Any) -> None:
        """The ``state`` key beyond its schema: the folder, the name format, the signal,
        a keeper of the user's beside the built-in rules, and the user's classes."""
        if not isinstance(state, dict):
            return
        save, keep = _mapping(state.get("save")), _mapping(state.get("keep"))  # else the schema reports
        checks: list[tuple[DocPath, Any, Callable[[str], str | None]]] = [
            (("state", "name_format"), state.get("name_format"), name_format_problem),
            (("state", "save", "on_signal"), save.get("on_signal"), signal_problem),
        ]
        if self.classes.resolve:  # the complete check: where the run will write (not for tools reading files)
            checks.append((("state", "dir"), state.get("dir"), dir_problem))
        for rel, value, check in checks:
            message = check(value) if isinstance(value, str) and value else None  # the schema reports the rest
            if message is not None:
                self.add(None, rel, message)
        conditions = save.get("conditions")
        for j, condition in enumerate(conditions if isinstance(conditions, list) else ()):
            self._check_class(None, ("state", "save", "conditions", j), condition, SaveCondition, "save condition")
        if "keeper" in keep:
            self._check_keeper(keep)

    def _check_keeper(self, keep: dict[str, Any]) -> None:
        """A keeper of the user's, alone: how it would combine with the built-in rules is its own business."""
        rel: DocPath = ("state", "keep", "keeper")
        self._check_class(None, rel, keep["keeper"], StatesKeeper, "states keeper")
        rules = [key for key in ("latest", "every_hours", "max_total_mb") if key in keep]
        if rules:
            message = (
                f"a keeper of your own decides alone which snapshots stay: give keeper or "
                f"{', '.join(rules)}, not both (your keeper may apply such rules itself)"
            )
            self.add(None, rel, message, at_key=True)

    def _check_class(self, phase: Phase | None, rel: DocPath, ref: Any, base: type, role: str) -> type | None:
        """The class the reference names if it can serve as a ``role``, else None (and
        what is wrong is reported)."""

        def announce(what: str) -> None:
            self.announce(phase, (*rel, "name"), what)

        cls, found = self.classes.check(ref, base, role, announce)
        for where, message, at_key in found:
            self.add(phase, (*rel, *where), message, at_key=at_key)
        return cls

    # -- what needs the environments' code, or the store

    def _probe(self, phases: list[Phase], top: RunFile) -> None:
        if self.prober is not None:
            self.prober.probe(self, phases, top.seed)

    def _check_stored(self, phases: list[Phase], top: RunFile) -> None:
        """Each ``load: {run: ...}`` must name a brain the store has."""
        if self.stored is None:
            return
        answers: dict[LoadSpec, str | None] = {}
        for phase in phases:
            for i, agent in enumerate(phase.body["agents"]):
                load = agent.get("load")
                if not isinstance(load, dict) or load.get("run") is None:
                    continue
                spec = LoadSpec(load.get("phase"), load.get("agent") or agent["name"], load["run"])
                rel: DocPath = ("agents", i, "load", "run")
                if spec not in answers:
                    self.announce(phase, rel, f"looking up run {spec.run!r} in the store")
                    answers[spec] = self.stored(spec)
                message = answers[spec]
                if message is not None:
                    self.add(phase, rel, message, contextual=True)


def _value_problems(data: Any) -> Iterator[tuple[DocPath, str, bool]]:
    """(path, message, too deep) for each integer outside 64 bits and each mapping or list
    nested more than MAX_DEPTH deep (whose inside is not looked at). Iterative."""
    stack: list[tuple[DocPath, Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict | list):
            if len(path) >= MAX_DEPTH:
                yield path, f"mappings and lists nest more than {MAX_DEPTH} deep here", True
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend(((*path, key), item) for key, item in items)
        elif isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
            yield path, f"{show(value)} is out of range: integers must lie between {MIN_INT} and {MAX_INT}", False


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _bad_schedule_entry(entry: Any) -> str:
    message = "a schedule entry must be a mapping with one key, the phase's name ('- phase_0: ...')"
    if isinstance(entry, dict) and entry:
        keys = ", ".join(shorten(str(k)) for k in entry)
        return message + f", got keys {keys}; are the phase's keys indented under its name?"
    return message + f", got {show(entry)}"


def _not_earlier(target: str, current: str, names: list[str], earlier: list[str]) -> str:
    if target == current:
        return f"a phase cannot load from itself: {target!r} is this phase"
    if target in names:
        return f"phase {target!r} does not come before phase {current!r}; load from an earlier phase"
    hint = did_you_mean(target, earlier)
    return f"no phase {shorten(target)} before this one{hint} (give 'run' to load from another run)"


def _agent_names(phase: Phase) -> list[str] | None:
    """The agent names of ``phase``, or None if its agents are unreadable."""
    agents = phase.body.get("agents")
    if not isinstance(agents, list) or not all(isinstance(a, dict) for a in agents):
        return None
    return [a["name"] for a in agents if isinstance(a.get("name"), str)]


def _is_unknown_simulation(name: str) -> bool:
    """Neither a built-in simulation's word nor a class of the user's (a palaestrAI
    controller class counts as unknown: it is to be replaced by a word)."""
    if name in BUILT_IN_SIMULATIONS:
        return False
    return not (":" in name or "." in name) or name.lower().startswith("palaestrai")


def _unknown_controller(name: str) -> str:
    """palaestrAI names controllers by class; arl by a word. Map the one to the other."""
    lowered = name.lower()
    words = list(BUILT_IN_SIMULATIONS)
    hint = next((f"; did you mean {w!r}?" for part, w in _PALAESTRAI_CONTROLLERS.items() if part in lowered), "")
    listed = " and ".join(map(repr, words))
    return (
        f"unknown simulation {shorten(name)}{hint or did_you_mean(name, words)} (arl's simulations are {listed}; "
        "name a class of your own as 'module:Class')"
    )


_PALAESTRAI_CONTROLLERS = {"vanilla": "vanilla", "turn": "taking_turns"}
"""A word in the name of a palaestrAI simulation controller, and arl's simulation for it."""


def _is_condition(cls: type | None) -> typing.TypeGuard[type[TerminationCondition]]:
    return cls is not None and issubclass(cls, TerminationCondition)
