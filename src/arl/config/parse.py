"""YAML text to plain data and a position index, refusing what could hurt before it is built.

ruamel.yaml's round-trip loader keeps the line and column of every key and value. Before
anything is constructed, the text is guarded in three passes, each bounded in time and
stack: the event stream (nesting depth, integers too long to convert), the node tree
(tags: ``!!python/object`` is refused, nothing is ever constructed from a tag) and the
document as its aliases expand it (an alias bomb, or nesting built from aliases). Only
then is it loaded and flattened into plain dicts and lists plus positions keyed by path
(``("schedule", 0, "phase_0", "agents")``).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent, ScalarEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.reader import ReaderError

from arl.classref import article
from arl.config.report import DocPath, Pos, render, show
from arl.errors import ConfigError, Location, Problem

MAX_VALUES = 1_000_000
"""Values a document may expand to through its aliases; far beyond any real file."""
MAX_DEPTH = 64
"""How deeply mappings and lists may nest; a real file nests about ten deep."""
MAX_INT_CHARS = 1000
"""A plain scalar of digits longer than this is refused before Python converts it (it
would be out of range anyway, and converting 5,000 digits raises)."""

_STANDARD_TAGS = frozenset(
    "tag:yaml.org,2002:" + t for t in ("map", "seq", "str", "int", "float", "bool", "null", "merge", "timestamp")
)
_LONG_INTEGER = re.compile(r"[-+]?[0-9_]+")


def parse(text: str, filename: str, what: str = "the file") -> tuple[Any, dict[DocPath, Pos]]:
    """Plain data and its position index; raises ConfigError on syntax errors, bad tags,
    and documents too deep or too large. ``what`` names the text in messages."""
    yaml = YAML(typ="rt")
    try:
        guarded = list(_event_problems(yaml, text, filename))
        if guarded:
            raise ConfigError(guarded)
        node = yaml.compose(text)
        _check_expansion(node, filename, what)
        unsafe = list(_unsafe_tags(node, (), set(), filename))
        if unsafe:
            raise ConfigError(unsafe)
        loaded = None if node is None else yaml.constructor.construct_document(node)  # not parsed again
    except YAMLError as exc:
        raise ConfigError([syntax_problem(exc, filename, text)]) from None
    flattener = _Flattener(filename)
    root = Pos((0, 0) if node is None else (node.start_mark.line, node.start_mark.column))
    data = flattener.plain(loaded, (), root)
    if flattener.problems:
        raise ConfigError(flattener.problems)
    return data, flattener.positions


def _event_problems(yaml: YAML, text: str, filename: str) -> Iterator[Problem]:
    """Nesting deeper than MAX_DEPTH and over-long integers, found in the event stream
    (which ruamel parses without recursion, unlike composing, which would overflow the
    stack on a deep document)."""
    depth = 0
    for event in yaml.parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                message = f"mappings and lists nest more than {MAX_DEPTH} deep here; an experiment needs far less"
                yield Problem(Location(filename, mark.line + 1, mark.column + 1), "", message)
                return
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
        elif (
            isinstance(event, ScalarEvent)
            and event.style is None
            and len(event.value) > MAX_INT_CHARS
            and _LONG_INTEGER.fullmatch(event.value)
        ):
            mark = event.start_mark
            message = f"an integer of {len(event.value)} digits is out of range (integers are 64-bit)"
            yield Problem(Location(filename, mark.line + 1, mark.column + 1), "", message)


def _check_expansion(root: Node | None, filename: str, what: str) -> None:
    """ConfigError if the document, its aliases expanded (each node counted once per
    reference), has more than MAX_VALUES values or nests deeper than MAX_DEPTH: an alias
    bomb is refused instead of flattened. Iterative, with each node's size and depth
    computed once, so a long chain of aliases costs neither time nor stack."""
    if root is None:
        return
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth)
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done and not expanded:
            continue
        children = _children(node)
        if not expanded:
            done[id(node)] = (1, 1)  # until known; a node inside itself counts once (ruamel loads it as null)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in done)
            continue
        sizes = [done[id(c)] for c in children]
        values = 1 + sum(size for size, _ in sizes)
        depth = 1 + max((d for _, d in sizes), default=0)
        done[id(node)] = (values, depth)
    values, depth = done[id(root)]
    if values > MAX_VALUES:
        message = f"{what} expands to more than {MAX_VALUES} values through its aliases"
        raise ConfigError([Problem(Location(filename), "", message)])
    if depth > MAX_DEPTH + 1:  # + 1: scalars count as a level here, not in the event stream
        message = f"through its aliases, {what} nests mappings and lists more than {MAX_DEPTH} deep"
        raise ConfigError([Problem(Location(filename), "", message)])


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


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
            render(path),
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


# --------------------------------------------------------------------------- syntax errors


def syntax_problem(exc: YAMLError, filename: str, text: str) -> Problem:
    """A Problem for a YAML error: at its likely cause (an odd space, a key without a space
    after its colon), at what was left open (a bracket, a quote), else at the mark where
    the parser gave up."""
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        if exc.context_mark is not None and exc.context in _OPENED_CONTEXTS:
            mark = exc.context_mark
        cause = _likely_cause(text, exc.problem_mark.line)
        if cause is not None:
            line, column, what = cause
            return Problem(Location(filename, line + 1, column + 1), "", f"YAML syntax error: {what}")
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
    {
        "while parsing a flow sequence",
        "while parsing a flow mapping",
        "while scanning a quoted scalar",
        "while scanning a simple key",
    }
)
"""Errors whose cause is where something was opened and never closed, or a key begun and
never ended, not where the parser noticed (the next line, or the end of the file)."""

_ODD_SPACES = re.compile("[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff]")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_NO_SPACE_KEY = re.compile(r"(\s*(?:-\s+)?)([A-Za-z_][\w.-]*):(?!//)([^\s:#][^\s]*)\s*")


def _likely_cause(text: str, error_line: int) -> tuple[int, int, str] | None:
    """(line, column, what) of what most likely broke the YAML, up to ``error_line``
    (0-based): a space that is not ASCII's (which YAML reads as part of a word), else the
    nearest line ``key:value`` without a space after the colon (which YAML reads as one
    word). None if neither is there; lines that are comments do not count."""
    lines = text.split("\n")[: error_line + 1]
    for number, line in enumerate(lines):
        code = _QUOTED.sub(lambda m: "x" * len(m.group()), line).split("#", 1)[0]  # offsets kept
        odd = _ODD_SPACES.search(code)
        if odd is not None:
            char = odd.group()
            name = unicodedata.name(char, "space").lower()
            what = f"{article(name)} (U+{ord(char):04X}) where YAML needs a plain space; retype it as a space"
            return number, odd.start(), what
    for number in range(len(lines) - 1, -1, -1):
        match = _NO_SPACE_KEY.fullmatch(lines[number])
        if match is not None:
            key, value = match[2], match[3]
            what = f"{key}:{value} has no space after ':', so YAML reads it as one word; write '{key}: {value}'"
            return number, match.start(2), what
    return None


# --------------------------------------------------------------------------- plain data


NUL_MESSAGE = "a NUL character (\\0) cannot be stored: PostgreSQL refuses it in text and JSON; remove it"


class _Flattener:
    """Turns what ruamel loaded into built-in types, recording the position of every value.

    A value that contains itself through an alias (ruamel builds it as a cycle) is a
    problem at the place it comes back, not an endless recursion.
    """

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.positions: dict[DocPath, Pos] = {}
        self.problems: list[Problem] = []
        self._inside: set[int] = set()  # the containers on the way to the current value

    def plain(self, value: Any, path: DocPath, pos: Pos) -> Any:
        self.positions[path] = pos
        if not isinstance(value, CommentedMap | CommentedSeq):
            scalar = _scalar(value)
            if type(scalar) is str and "\x00" in scalar:
                self._problem(pos.value, path, NUL_MESSAGE)
            return scalar
        if id(value) in self._inside:
            self._problem(pos.value, path, "this value contains itself through an alias; write it out instead")
            return None
        self._inside.add(id(value))
        try:
            if isinstance(value, CommentedMap):
                return self._plain_map(value, path)
            return [self.plain(item, (*path, i), Pos(_lc(value.lc.item, i, pos.value))) for i, item in enumerate(value)]
        finally:
            self._inside.discard(id(value))

    def _plain_map(self, value: CommentedMap, path: DocPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, item in value.items():
            key_pos = _lc(value.lc.key, key, self.positions[path].value)
            if isinstance(key, str) and "\x00" in key:
                self._problem(key_pos, (*path, key), NUL_MESSAGE)
                continue
            if not isinstance(key, str):
                self._problem(key_pos, (*path, str(key)), f"keys must be strings, got {show(_scalar(key))}")
                continue
            value_pos = _lc(value.lc.value, key, key_pos)
            if item is None and value_pos[0] != key_pos[0]:
                value_pos = key_pos  # an empty value: ruamel points at the next token
            result[key] = self.plain(item, (*path, key), Pos(value_pos, key_pos))
        return result

    def _problem(self, pos: tuple[int, int], path: DocPath, message: str) -> None:
        line, column = pos
        self.problems.append(Problem(Location(self.filename, line + 1, column + 1), render(path), message))


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
