"""Reading an experiment file into a RunSpec, or into a ConfigError listing every mistake.

The pipeline, and why it is shaped so:

1. *Parse* with ruamel.yaml's round-trip loader, which keeps the line and column of every
   key and value. The node tree is composed first and its tags checked, so a
   ``!!python/object`` tag is refused before anything is constructed from it.
2. *Flatten* into plain dicts/lists plus a position index keyed by path
   (``("schedule", 0, "phase_0", "agents")``). Everything after works on plain data; a
   path is enough to point at the text.
3. *Inherit*: each phase takes the sections it omits from the previous phase (palaestrAI's
   semantics), remembering for every section where its text really is.
4. *Validate* each part with the strict pydantic file schema (pydantic's ``loc`` is a path,
   hence a position) and with the checks pydantic cannot express (references between
   sections, classes). Checks run on the raw data with type guards, so one broken key
   does not hide the mistakes elsewhere.
5. *Build* the frozen specs, only when nothing was wrong.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import re
import types
import typing
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.reader import ReaderError

from arl.api import Brain, Environment, Muscle, Objective
from arl.classref import import_class, kind_problem, normalise_entry_point, params_problems, qualname
from arl.conditions import TerminationCondition
from arl.config.overrides import Override, OverrideError
from arl.config.overrides import apply as apply_override
from arl.config.spec import (
    DEFAULT_CONDITION,
    AgentFile,
    AgentSpec,
    ClassRef,
    ClassRefFile,
    EnvironmentFile,
    EnvironmentSpec,
    LoadSpec,
    PhaseConfigFile,
    PhaseFile,
    PhaseSpec,
    RunFile,
    RunSpec,
    SimulationFile,
    SimulationSpec,
)
from arl.errors import ComponentLoadError, ConfigError, Location, Problem
from arl.seeding import derive_seed
from arl.simulation import BUILT_IN as BUILT_IN_SIMULATIONS
from arl.simulation import Simulation

DocPath = tuple[str | int, ...]
SECTIONS = ("environments", "agents", "simulation")
SCHEMA_VERSION = 1
MAX_VALUES = 1_000_000  # far beyond any real experiment file

_STANDARD_TAGS = frozenset(
    "tag:yaml.org,2002:" + t for t in ("map", "seq", "str", "int", "float", "bool", "null", "merge", "timestamp")
)


def load_experiment(
    path: str | Path, *, resolve_classes: bool = True, overrides: Sequence[Override] = (), probe: bool = False
) -> RunSpec:
    """Read and check the experiment file at ``path``; raises ConfigError with every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(Location(str(path)), "", f"cannot read the file: {exc}")]) from None
    return load_experiment_text(text, str(path), resolve_classes=resolve_classes, overrides=overrides, probe=probe)


def load_experiment_text(
    text: str,
    filename: str,
    *,
    resolve_classes: bool = True,
    overrides: Sequence[Override] = (),
    probe: bool = False,
) -> RunSpec:
    """Check an experiment file given as text; ``filename`` is only used in messages.

    ``overrides`` (``--set``, ``--sweep``) change values before anything is checked; a
    problem with an overridden value is reported at the option that set it.

    With ``resolve_classes`` every ``module:Class`` is imported and checked against the
    base class its role needs; without, only the spelling of the references is checked
    (for tools that read files of experiments whose code is not installed).

    With ``probe`` (and a file that is otherwise right) every environment is also set up
    as its process would set it up (built, its spaces described) and reset once, and
    every agent's sensor and actuator ids are checked against what it really provides.
    That runs the user's environment code: do it in a process of its own. Probing needs
    ``resolve_classes`` (ValueError otherwise).
    """
    if probe and not resolve_classes:
        raise ValueError("probing the environments needs their classes: probe=True needs resolve_classes=True")
    data, positions = _parse(text, filename)
    report = _Report(filename, positions)
    for override in overrides:
        try:
            report.overridden[apply_override(data, override)] = override.source
        except OverrideError as exc:
            report.problems.append(Problem(Location(override.source), "", str(exc)))
    checker = _Checker(report, resolve_classes, probe=probe)
    spec = checker.check_run(data, text)
    if report.problems or spec is None:
        raise ConfigError(report.sorted())
    return spec


# --------------------------------------------------------------------------- positions


@dataclass(frozen=True)
class _Pos:
    """Where a value, and the key that names it (None for list items), start (0-based)."""

    value: tuple[int, int]
    key: tuple[int, int] | None = None


def _render(path: DocPath) -> str:
    return ".".join(str(p) for p in path)


class _Report:
    """Collects problems, each once, located through the position index.

    Paths not in the index (a missing key, say) are located at their nearest ancestor
    that is, which is the mapping the key is missing from.
    """

    def __init__(self, filename: str, positions: dict[DocPath, _Pos]) -> None:
        self.filename = filename
        self.positions = positions
        self.overridden: dict[DocPath, str] = {}  # path -> the option that set it
        self.problems: list[Problem] = []

    def add(self, path: DocPath, message: str, *, at_key: bool = False) -> None:
        problem = Problem(self.location(path, at_key=at_key), _render(path), message)
        if problem not in self.problems:
            self.problems.append(problem)

    def location(self, path: DocPath, *, at_key: bool = False) -> Location:
        for depth in range(len(path), 0, -1):
            if path[:depth] in self.overridden:
                return Location(self.overridden[path[:depth]])
        while path not in self.positions and path:
            path, at_key = path[:-1], False
        pos = self.positions.get(path)
        if pos is None:
            return Location(self.filename)
        line, column = pos.key if at_key and pos.key is not None else pos.value
        return Location(self.filename, line + 1, column + 1)

    def line(self, path: DocPath) -> str:
        """``"line N"`` for messages that point at a second place in the file."""
        return f"line {self.location(path).line}"

    def sorted(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: (p.location.line or 0, p.location.column or 0))


# --------------------------------------------------------------------------- parsing


def _parse(text: str, filename: str) -> tuple[Any, dict[DocPath, _Pos]]:
    """Plain data and its position index; raises ConfigError on syntax errors or bad tags."""
    yaml = YAML(typ="rt")
    try:
        node = yaml.compose(text)
        unsafe = list(_unsafe_tags(node, (), set(), filename))
        if unsafe:
            raise ConfigError(unsafe)
        if _expanded_size(node, {}) > MAX_VALUES:
            message = f"the file expands to more than {MAX_VALUES} values through its aliases"
            raise ConfigError([Problem(Location(filename), "", message)])
        loaded = yaml.load(text)
    except YAMLError as exc:
        raise ConfigError([_syntax_problem(exc, filename, text)]) from None
    positions: dict[DocPath, _Pos] = {}
    problems: list[Problem] = []
    root = _Pos((0, 0) if node is None else (node.start_mark.line, node.start_mark.column))
    data = _plain(loaded, (), root, positions, problems, filename)
    if problems:
        raise ConfigError(problems)
    return data, positions


def _syntax_problem(exc: YAMLError, filename: str, text: str) -> Problem:
    """A Problem for a YAML error: at what was left open (a bracket, a quote), else at the
    mark where the parser gave up."""
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        if exc.context_mark is not None and exc.context in _OPENED_CONTEXTS:
            mark = exc.context_mark
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{exc.context}: {what}"
        return Problem(Location(filename, mark.line + 1, mark.column + 1), "", f"YAML syntax error: {what}")
    if isinstance(exc, ReaderError):  # a character YAML does not allow; it has no mark
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        what = f"unacceptable character #x{code:04x}: {exc.reason}"
        return Problem(Location(filename, line, column), "", f"YAML syntax error: {what}")
    return Problem(Location(filename), "", f"YAML syntax error: {exc}")


_OPENED_CONTEXTS = frozenset(
    {"while parsing a flow sequence", "while parsing a flow mapping", "while scanning a quoted scalar"}
)
"""Errors whose cause is where something was opened and never closed, not where the
parser noticed (the next line, or the end of the file)."""


def _expanded_size(node: Node | None, sizes: dict[int, int]) -> int:
    """How many values the document has once aliases are expanded (each node counted once
    per reference), so that an alias bomb is refused instead of flattened."""
    if node is None:
        return 0
    if id(node) not in sizes:
        sizes[id(node)] = 1  # a node inside itself: ruamel makes the inner reference null
        if isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, SequenceNode) else []
        sizes[id(node)] = 1 + sum(_expanded_size(c, sizes) for c in children)
    return sizes[id(node)]


def _unsafe_tags(node: Node | None, path: DocPath, seen: set[int], filename: str) -> Iterator[Problem]:
    """Problems for nodes with non-standard tags, found before anything is constructed."""
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    tag = str(node.tag)
    if tag not in _STANDARD_TAGS:
        shown = tag.replace("tag:yaml.org,2002:", "!!")
        mark = node.start_mark
        yield Problem(
            Location(filename, mark.line + 1, mark.column + 1),
            _render(path),
            f"tag {shown!r} is not allowed: experiment files hold plain mappings, lists, "
            "strings, numbers, booleans and null, and nothing is constructed from tags",
        )
    if isinstance(node, MappingNode):
        for key, value in node.value:
            yield from _unsafe_tags(key, path, seen, filename)
            yield from _unsafe_tags(value, (*path, str(key.value)), seen, filename)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _unsafe_tags(item, (*path, index), seen, filename)


def _plain(
    value: Any,
    path: DocPath,
    pos: _Pos,
    positions: dict[DocPath, _Pos],
    problems: list[Problem],
    filename: str,
) -> Any:
    """``value`` as built-in types, recording the position of it and everything inside it."""
    positions[path] = pos
    if isinstance(value, CommentedMap):
        return _plain_map(value, path, positions, problems, filename)
    if isinstance(value, CommentedSeq):
        return [
            _plain(
                item,
                (*path, i),
                _Pos(_lc(value.lc.item, i, pos.value)),
                positions,
                problems,
                filename,
            )
            for i, item in enumerate(value)
        ]
    return _scalar(value)


def _plain_map(
    value: CommentedMap,
    path: DocPath,
    positions: dict[DocPath, _Pos],
    problems: list[Problem],
    filename: str,
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in value.items():
        key_pos = _lc(value.lc.key, key, positions[path].value)
        if not isinstance(key, str):
            line, col = key_pos
            problems.append(
                Problem(
                    Location(filename, line + 1, col + 1),
                    _render((*path, str(key))),
                    f"keys must be strings, got {_show(_scalar(key))}",
                )
            )
            continue
        value_pos = _lc(value.lc.value, key, key_pos)
        if item is None and value_pos[0] != key_pos[0]:
            value_pos = key_pos  # an empty value: ruamel points at the next token
        child = _Pos(value_pos, key_pos)
        result[key] = _plain(item, (*path, key), child, positions, problems, filename)
    return result


def _lc(lookup: Any, key: Any, default: tuple[int, int]) -> tuple[int, int]:
    """A position from ruamel's ``.lc``; keys brought in by a ``<<`` merge have none."""
    try:
        line, col = lookup(key)
    except (KeyError, IndexError, TypeError):
        return default
    return (int(line), int(col))


def _scalar(value: Any) -> Any:
    """Built-in types for ruamel's scalar subclasses (ScalarFloat, LiteralScalarString...)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dt.date):  # also datetime: "2024-01-01" resolves to a timestamp
        return value.isoformat()
    return str(value)


# --------------------------------------------------------------------------- pydantic errors


def _show(value: Any) -> str:
    """A value as the user wrote it, with its YAML type, for "expected X, got Y"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


_EXPECTED = {
    "int_type": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "float_type": "a number",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "list_type": "a list",
}


def _describe(error: Any) -> str:
    """A user's sentence for one pydantic error (other than missing and unknown keys)."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_show(value)}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {_show(value)}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = f"must be {ctx.get('expected')}, got {_show(value)}"
        return message + _did_you_mean(str(value), options)
    return str(error["msg"])


def _did_you_mean(word: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fields_at(model: type[BaseModel], loc: DocPath) -> list[str]:
    """The keys valid at ``loc`` inside ``model`` (for "did you mean" on unknown keys)."""
    tp: Any = model
    for part in loc:
        tp = _strip_none(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            tp = info.annotation if info is not None else None
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return []
    tp = _strip_none(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _strip_none(tp: Any) -> Any:
    """``X`` for ``X | None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _schema_problems(
    model: type[BaseModel], data: Any, skip_missing: Collection[str] = ()
) -> tuple[BaseModel | None, list[tuple[DocPath, str, bool]]]:
    """Validate ``data`` against ``model``: the model, or problems as (loc, message, at_key).

    A misspelt required key is reported once, as the unknown key with its suggestion,
    not a second time as "missing".
    """
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors()
    found: list[tuple[DocPath, str, bool]] = []
    suggested: set[DocPath] = set()
    for error in errors:
        loc: DocPath = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _fields_at(model, loc[:-1]), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            found.append((loc, f"unknown key {loc[-1]!r}{hint}", True))
            suggested.update((*loc[:-1], c) for c in close)
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "missing":
            if loc not in suggested and not (len(loc) == 1 and loc[0] in skip_missing):
                found.append((loc[:-1], f"missing required key {loc[-1]!r}", False))
        elif error["type"] != "extra_forbidden":
            found.append((loc, _describe(error), False))
    return None, found


# --------------------------------------------------------------------------- phases


@dataclass
class _Phase:
    """One phase after inheritance, and where the text of each of its parts really is."""

    name: str
    index: int
    path: DocPath  # ("schedule", i, name)
    body: dict[str, Any]
    origin: dict[str, DocPath] = field(default_factory=dict)  # section -> source path
    config_origin: dict[str, DocPath] = field(default_factory=dict)  # phase_config key -> path
    missing_before: set[str] = field(default_factory=set)  # absent earlier too: reported there

    def source(self, rel: DocPath) -> DocPath:
        """The path of the text that ``rel`` (relative to this phase) came from."""
        if len(rel) > 1 and rel[0] == "phase_config" and rel[1] in self.config_origin:
            return self.config_origin[str(rel[1])] + rel[2:]
        if rel and rel[0] in self.origin:
            return self.origin[str(rel[0])] + rel[1:]
        return self.path + rel

    def context(self, source: DocPath) -> str:
        """A note for messages about inherited text whose problem is this phase's."""
        if source[: len(self.path)] == self.path:
            return ""
        return f" (in phase {self.name!r}, which inherits this from phase {source[2]!r})"


def _inherit(name: str, index: int, body: dict[str, Any], previous: _Phase | None) -> _Phase:
    """Phase ``name`` with what it omits taken from ``previous`` (palaestrAI's semantics):
    a missing section is inherited whole, phase_config is merged key by key."""
    path: DocPath = ("schedule", index, name)
    phase = _Phase(name, index, path, dict(body), {k: (*path, k) for k in body})
    if previous is None:
        _merge_config(phase, body.get("phase_config"), None)
        return phase
    for key in SECTIONS:
        if key in body:
            continue
        if key in previous.body:
            phase.body[key], phase.origin[key] = previous.body[key], previous.origin[key]
        else:
            phase.missing_before.add(key)
    if "phase_config" not in body and "phase_config" in previous.origin:
        phase.origin["phase_config"] = previous.origin["phase_config"]
    _merge_config(phase, body.get("phase_config"), previous)
    return phase


_CONFIG_ALIASES = {"worker": "workers", "workers": "worker"}


def _merge_config(phase: _Phase, own: Any, previous: _Phase | None) -> None:
    """Lay this phase's phase_config over the previous phase's, key by key.

    ``worker`` and ``workers`` are one setting, so stating either replaces both. A
    phase_config that is not a mapping is left alone for the schema check to report.
    """
    own = {} if own is None else own
    before = previous.body.get("phase_config") if previous is not None else None
    if not isinstance(own, dict):
        return
    merged: dict[str, Any] = {}
    if isinstance(before, dict) and previous is not None:
        merged.update(before)
        phase.config_origin.update(previous.config_origin)
    for key in own:
        if _CONFIG_ALIASES.get(key) in merged and _CONFIG_ALIASES[key] not in own:
            del merged[_CONFIG_ALIASES[key]]
            phase.config_origin.pop(_CONFIG_ALIASES[key], None)
    merged.update(own)
    phase.config_origin.update({k: (*phase.path, "phase_config", k) for k in own})
    if merged or "phase_config" in phase.body:
        phase.body["phase_config"] = merged


# --------------------------------------------------------------------------- shorthands


@dataclass(frozen=True)
class _Shorthand:
    """A name that stands for one of arl's classes: the whole name is ``word``, or, with a
    ``key``, it is ``word`` followed by the value of the class's param ``key``."""

    base: type
    word: str
    entry_point: str
    key: str | None = None


_SHORTHANDS = (
    _Shorthand(Environment, "gym:", "arl.gym:GymEnvironment", "id"),
    _Shorthand(Environment, "pettingzoo:", "arl.pettingzoo:PettingZooEnvironment", "env"),
    *(_Shorthand(Simulation, word, entry_point) for word, entry_point in BUILT_IN_SIMULATIONS.items()),
)
"""Every shorthand a file may use; checked and built alike through :func:`_expand`."""

_ADAPTERS = frozenset(s.entry_point for s in _SHORTHANDS if s.key is not None)
"""The adapter classes the shorthands stand for; each is an :class:`_Adapter`."""


class _Adapter(typing.Protocol):
    """An adapter checks what its params name (an environment id, say) before anything
    runs, however the file names the adapter."""

    @classmethod
    def problem(cls, **params: Any) -> str | None:
        """What is wrong with ``params``, or None."""


def _expand(name: str, base: type) -> ClassRef | None:
    """The class a shorthand ``name`` stands for in the role of a ``base``, with the
    params the name sets; None if ``name`` is no shorthand."""
    for shorthand in _SHORTHANDS:
        if shorthand.base is not base:
            continue
        if shorthand.key is None and name == shorthand.word:
            return ClassRef(shorthand.entry_point, {})
        if shorthand.key is not None and name.startswith(shorthand.word):
            return ClassRef(shorthand.entry_point, {shorthand.key: name.removeprefix(shorthand.word)})
    return None


# --------------------------------------------------------------------------- checks

_AGENT_ROLES: tuple[tuple[str, type], ...] = (
    ("brain", Brain),
    ("muscle", Muscle),
    ("objective", Objective),
)


class _Checker:
    """Runs every check over the raw data and files what it finds with the report."""

    def __init__(self, report: _Report, resolve_classes: bool, *, probe: bool = False) -> None:
        self.report = report
        self.resolve = resolve_classes
        self.probe = probe
        self._classes: dict[str, type | str] = {}  # entry point -> class or error message
        self._contextual: set[tuple[DocPath, str]] = set()

    def check_run(self, data: Any, text: str) -> RunSpec | None:
        """The RunSpec, or None when a problem was found (all of them are in the report)."""
        if not isinstance(data, dict):
            got = "an empty file" if data is None else _show(data)
            self.report.add((), f"expected a mapping with 'uid' and 'schedule', got {got}")
            return None
        top, found = _schema_problems(RunFile, data)
        for loc, message, at_key in found:
            if loc != ("version",):
                self.report.add(loc, message, at_key=at_key)
        self._check_version(data)
        self._check_run_conditions(data)
        phases = self._read_schedule(data.get("schedule"))
        names = [p.name for p in phases]
        models = [self._check_phase(p, phases[:i], names) for i, p in enumerate(phases)]
        if self.report.problems or not isinstance(top, RunFile) or not phases:
            return None
        if self.probe:
            _probe(self, phases, top.seed)
            if self.report.problems:
                return None
        checked = [m for m in models if isinstance(m, PhaseFile)]
        return _build_run(top, phases, checked, data, text)

    def _check_version(self, data: dict[str, Any]) -> None:
        version = data.get("version", SCHEMA_VERSION)
        if type(version) is int and version == SCHEMA_VERSION:
            return
        message = f"unsupported version {_show(version)}; arl reads version {SCHEMA_VERSION}"
        if not isinstance(version, int) or isinstance(version, bool):
            message += " (palaestrAI's version numbers do not apply: write 1 or leave it out)"
        self.report.add(("version",), message)

    def _read_schedule(self, schedule: Any) -> list[_Phase]:
        """The phases, inherited; malformed entries are reported and left out."""
        if not isinstance(schedule, list):
            return []
        phases: list[_Phase] = []
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
            if not isinstance(body, dict | None):
                self.report.add((*path, name), f"a phase must be a mapping, got {_show(body)}")
            body = body if isinstance(body, dict) else {}
            phases.append(_inherit(name, index, body, phases[-1] if phases else None))
        return phases

    def _check_phase(self, phase: _Phase, earlier: list[_Phase], names: list[str]) -> PhaseFile | None:
        model, found = _schema_problems(PhaseFile, phase.body, phase.missing_before)
        for loc, message, at_key in found:
            self.report.add(phase.source(loc), message, at_key=at_key)
        env_uids = self._check_environments(phase)
        self._check_agents(phase, env_uids, earlier, names)
        self._check_simulation(phase)
        config = phase.body.get("phase_config")
        if isinstance(config, dict) and "worker" in config and "workers" in config:
            self._add(
                phase,
                ("phase_config", "worker"),
                "give 'workers' or palaestrAI's 'worker', not both",
                at_key=True,
            )
        return model if isinstance(model, PhaseFile) else None

    def _add(
        self,
        phase: _Phase | None,
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

    # -- environments

    def _check_environments(self, phase: _Phase) -> list[str] | None:
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

    def _check_uid(self, phase: _Phase, rel: DocPath, uid: str, uids: dict[str, DocPath]) -> None:
        if "." in uid:
            self._add(
                phase,
                rel,
                f"environment uid {uid!r} must not contain '.' (ids are '<uid>.<sensor id>')",
            )
        if uid in uids:
            self._add(
                phase,
                rel,
                f"duplicate environment uid {uid!r} (first at {self.report.line(uids[uid])})",
            )
        uids.setdefault(uid, phase.source(rel))

    # -- agents

    def _check_agents(self, phase: _Phase, env_uids: list[str] | None, earlier: list[_Phase], names: list[str]) -> None:
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
                self._add(phase, (*rel, "name"), f"duplicate agent name {name!r} (first at {where})")
            if isinstance(name, str):
                seen.setdefault(name, phase.source((*rel, "name")))
            for role, base in _AGENT_ROLES:
                self._check_class(phase, (*rel, role), agent.get(role), base, role)
            for kind in ("sensor", "actuator"):
                self._check_ids(phase, (*rel, kind + "s"), agent.get(kind + "s"), env_uids, kind)
            if isinstance(agent.get("load"), dict):
                self._check_load(phase, (*rel, "load"), agent["load"], name, earlier, names)

    def _check_ids(self, phase: _Phase, rel: DocPath, ids: Any, env_uids: list[str] | None, kind: str) -> None:
        """Each id must be ``<environment uid>.<id>`` with an environment of this phase."""
        if not isinstance(ids, list):
            return
        for j, qualified in enumerate(ids):
            if not isinstance(qualified, str):
                continue
            env, dot, local = qualified.partition(".")
            if not (env and dot and local):
                self._add(
                    phase,
                    (*rel, j),
                    f"{kind} id {qualified!r} must be '<environment uid>.<{kind} id>'",
                )
            elif env_uids is not None and env not in env_uids:
                close = difflib.get_close_matches(env, env_uids, n=1)
                hint = f"; did you mean '{close[0]}.{local}'?" if close else ""
                known = ", ".join(map(repr, env_uids))
                message = (
                    f"{kind} {qualified!r} names environment {env!r}, which is not in this "
                    f"phase (environments: {known}){hint}"
                )
                self._add(phase, (*rel, j), message, contextual=True)

    def _check_load(
        self,
        phase: _Phase,
        rel: DocPath,
        load: dict[str, Any],
        name: Any,
        earlier: list[_Phase],
        names: list[str],
    ) -> None:
        """``load.phase`` must be an earlier phase of this file that has the agent, unless
        ``load.run`` points into another run (which only the store can check)."""
        if load.get("run") is not None:
            return
        target = load.get("phase")
        if target is None and difflib.get_close_matches("phase", [str(k) for k in load], n=1):
            return  # a misspelt 'phase': reported once, as the unknown key with its suggestion
        if target is None:
            self._add(
                phase,
                rel,
                "missing required key 'phase' (the earlier phase to load from; or give 'run')",
            )
            return
        if not isinstance(target, str):
            return
        before = {p.name: p for p in earlier}
        if target not in before:
            self._add(
                phase,
                (*rel, "phase"),
                _not_earlier(target, phase.name, names, list(before)),
                contextual=True,
            )
            return
        config = before[target].body.get("phase_config")
        mode = config.get("mode", "train") if isinstance(config, dict) else "train"
        if mode == "test":  # (a mode that is neither is reported where it is written)
            message = f"phase {target!r} is a test phase and saves no brain; load from a train phase"
            self._add(phase, (*rel, "phase"), message, contextual=True)
            return
        agent = load.get("agent", name)
        known = _agent_names(before[target])
        if isinstance(agent, str) and known is not None and agent not in known:
            where = (*rel, "agent") if "agent" in load else (*rel, "phase")
            message = f"phase {target!r} has no agent {agent!r}" + _did_you_mean(agent, known)
            self._add(phase, where, message, contextual=True)

    # -- simulation

    def _check_simulation(self, phase: _Phase) -> None:
        simulation = phase.body.get("simulation")
        if not isinstance(simulation, dict):
            return
        name = simulation.get("name")
        if isinstance(name, str) and _is_unknown_simulation(name):
            self._add(phase, ("simulation", "name"), _unknown_controller(name))
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
                self._add(phase, (*rel, "name"), message)
        config = phase.body.get("phase_config")
        if not conditions and not (isinstance(config, dict) and config.get("max_steps")):
            message = "no termination conditions and no phase_config.max_steps: episodes would never end"
            self._add(phase, ("simulation", "conditions"), message, contextual=True)

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
                self._add(None, (*rel, "name"), message)

    def _check_class(self, phase: _Phase | None, rel: DocPath, ref: Any, base: type, role: str) -> type | None:
        """The reference must name an importable, concrete subclass of ``base`` whose
        constructor takes the given params (a shorthand: the class it stands for, with the
        params it sets, and what that class's ``problem`` hook says of them). Returns the
        class when it is one, else None."""
        name = ref.get("name") if isinstance(ref, dict) else None
        if not isinstance(name, str) or not name:
            return None
        params = ref.get("params")
        shorthand = _expand(name, base)
        if shorthand is not None:
            clashes = [param for param in shorthand.params if isinstance(params, dict) and param in params]
            for param in clashes:
                message = (
                    f"{param!r} is given by the name {name!r} already; leave it out here "
                    f"(or name {shorthand.entry_point!r} and give {param!r} in params)"
                )
                self._add(phase, (*rel, "params", param), message, at_key=True)
            if clashes:
                return None
            entry_point, own = shorthand.entry_point, shorthand.params
        else:
            try:
                entry_point, own = normalise_entry_point(name), {}
            except ValueError as exc:
                self._add(phase, (*rel, "name"), str(exc))
                return None
        if not self.resolve:
            return None
        cls = self._import(entry_point)
        if isinstance(cls, str):
            self._add(phase, (*rel, "name"), _palaestrai_hint(cls, name, base))
            return None
        problem = kind_problem(cls, base, role)
        if problem is not None:
            self._add(phase, (*rel, "name"), problem)
            return None
        if not isinstance(params, dict | None):
            return None  # the schema reports it
        found = params_problems(cls, {**own, **(params or {})})
        for key, message in found:
            where = (*rel, "params", key) if key is not None else (*rel, "params")
            self._add(phase, where if params is not None else rel, message, at_key=key is not None)
        if found:
            return None
        if entry_point in _ADAPTERS:
            problem = typing.cast(type[_Adapter], cls).problem(**own, **(params or {}))
            if problem is not None:
                self._add(phase, (*rel, "name"), problem)
                return None
        return cls

    def _import(self, entry_point: str) -> type | str:
        """The class, or why it cannot be had; imported once per file."""
        if entry_point not in self._classes:
            try:
                self._classes[entry_point] = import_class(entry_point)
            except ComponentLoadError as exc:
                self._classes[entry_point] = str(exc)
        return self._classes[entry_point]


def _probe(checker: _Checker, phases: list[_Phase], seed: int) -> None:
    """Set up each environment once, as its process would, reset it, and check the ids
    the agents name against the sensors and actuators it really provides (``arl-run
    check --probe``). An environment is probed once per text: phases that inherit it
    share the outcome."""
    provided: dict[DocPath, tuple[list[str], list[str]] | str] = {}  # by the env text's path
    for phase in phases:
        ids: dict[str, tuple[list[str], list[str]]] = {}
        for i, entry in enumerate(phase.body["environments"]):
            rel: DocPath = ("environments", i, "environment")
            env = EnvironmentFile.model_validate(entry["environment"])
            source = phase.source(rel)
            if source not in provided:
                provided[source] = _probe_environment(env, phase.index, seed)
            outcome = provided[source]
            if isinstance(outcome, str):
                checker._add(phase, (*rel, "name"), outcome, contextual=True)
            else:
                ids[env.uid] = outcome
        for j, agent in enumerate(phase.body["agents"]):
            for k, kind in enumerate(("sensor", "actuator")):
                for n, qualified in enumerate(agent.get(kind + "s") or []):
                    uid, _, local = qualified.partition(".")
                    if uid in ids and local not in ids[uid][k]:
                        message = _not_provided(uid, local, kind, ids[uid][k])
                        checker._add(phase, ("agents", j, kind + "s", n), message, contextual=True)


def _probe_environment(env: EnvironmentFile, phase: int, seed: int) -> tuple[list[str], list[str]] | str:
    """The environment's sensor and actuator ids (unqualified), or what went wrong
    setting it up or resetting it in arl's environment conductor, in this process."""
    from arl.conductors.environment import EnvironmentConductor
    from arl.messages import control
    from arl.messages.environment import Reset

    ref = _ref(env, Environment)
    probe_seed = derive_seed(seed, "probe", env.uid)
    conductor = EnvironmentConductor()
    try:
        ready = conductor.setup(control.SetupEnvironment(phase, env.uid, ref.entry_point, ref.params, probe_seed))
        conductor.reset(Reset(probe_seed))
    except Exception as exc:  # the user's environment code: whatever it raises is the finding
        return f"probing environment {env.uid!r}: {type(exc).__name__}: {exc}"
    finally:
        conductor.close()
    cut = len(env.uid) + 1
    return [str(s[0])[cut:] for s in ready.sensors], [str(a[0])[cut:] for a in ready.actuators]


def _not_provided(uid: str, local: str, kind: str, ids: list[str]) -> str:
    hint = _did_you_mean(local, ids)
    listed = ", ".join(map(repr, ids[:12])) + (", ..." if len(ids) > 12 else "")
    return f"environment {uid!r} provides no {kind} {local!r}{hint} (its {kind}s: {listed or 'none'})"


def _bad_schedule_entry(entry: Any) -> str:
    message = "a schedule entry must be a mapping with one key, the phase's name ('- phase_0: ...')"
    if isinstance(entry, dict) and entry:
        keys = ", ".join(map(repr, entry))
        return message + f", got keys {keys}; are the phase's keys indented under its name?"
    return message + f", got {_show(entry)}"


def _not_earlier(target: str, current: str, names: list[str], earlier: list[str]) -> str:
    if target == current:
        return f"a phase cannot load from itself: {target!r} is this phase"
    if target in names:
        return f"phase {target!r} does not come before phase {current!r}; load from an earlier phase"
    hint = _did_you_mean(target, earlier)
    return f"no phase {target!r} before this one{hint} (give 'run' to load from another run)"


def _agent_names(phase: _Phase) -> list[str] | None:
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
        f"unknown simulation {name!r}{hint or _did_you_mean(name, words)} (arl's simulations are {listed}; "
        "name a class of your own as 'module:Class')"
    )


_PALAESTRAI_CONTROLLERS = {"vanilla": "vanilla", "turn": "taking_turns"}
"""A word in the name of a palaestrAI simulation controller, and arl's simulation for it."""


def _is_condition(cls: type | None) -> typing.TypeGuard[type[TerminationCondition]]:
    return cls is not None and issubclass(cls, TerminationCondition)


def _palaestrai_hint(message: str, name: str, base: type) -> str:
    """A ported file names palaestrAI's classes; say what to use instead."""
    if not name.lower().startswith("palaestrai"):
        return message
    qualified = f"{base.__module__}.{base.__qualname__}"
    message += f"; palaestrAI's classes do not run in arl: name a subclass of {qualified}"
    if base is TerminationCondition:
        message += " such as 'arl.conditions:EnvironmentDone' or 'arl.conditions:MaxSteps'"
    return message


# --------------------------------------------------------------------------- building


def _build_run(top: RunFile, phases: list[_Phase], models: list[PhaseFile], data: dict[str, Any], text: str) -> RunSpec:
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
        source=text,
        document=document,
        conditions=tuple(_ref(c, TerminationCondition) for c in top.conditions or ()),
    )


def _resolved_body(phase: _Phase) -> dict[str, Any]:
    order = [*SECTIONS, "phase_config"]
    return {k: copy.deepcopy(phase.body[k]) for k in order if k in phase.body}


def _build_phase(phase: _Phase, model: PhaseFile) -> PhaseSpec:
    config = model.phase_config or PhaseConfigFile()
    conditions = model.simulation.conditions
    return PhaseSpec(
        name=phase.name,
        index=phase.index,
        mode=config.mode,
        episodes=config.episodes,
        workers=config.workers or config.worker or 1,
        max_steps=config.max_steps,
        environments=tuple(
            EnvironmentSpec(e.environment.uid, _ref(e.environment, Environment)) for e in model.environments
        ),
        agents=tuple(_build_agent(a) for a in model.agents),
        simulation=SimulationSpec(
            name=model.simulation.name,
            entry=_ref(model.simulation, Simulation),
            conditions=(
                tuple(_ref(c, TerminationCondition) for c in conditions)
                if conditions is not None
                else (ClassRef(DEFAULT_CONDITION, {}),)
            ),
        ),
    )


def _ref(ref: ClassRefFile | EnvironmentFile | SimulationFile, base: type) -> ClassRef:
    """The class and params ``ref`` names in the role of a ``base`` (a shorthand expanded)."""
    params = copy.deepcopy(dict(ref.params or {}))
    shorthand = _expand(ref.name, base)
    if shorthand is None:
        return ClassRef(normalise_entry_point(ref.name), params)
    return ClassRef(shorthand.entry_point, {**shorthand.params, **params})


def _build_agent(agent: AgentFile) -> AgentSpec:
    load = None
    if agent.load is not None:
        load = LoadSpec(agent.load.phase, agent.load.agent or agent.name, agent.load.run)
    return AgentSpec(
        name=agent.name,
        brain=_ref(agent.brain, Brain),
        muscle=_ref(agent.muscle, Muscle),
        objective=_ref(agent.objective, Objective),
        sensors=tuple(agent.sensors),
        actuators=tuple(agent.actuators),
        load=load,
    )
