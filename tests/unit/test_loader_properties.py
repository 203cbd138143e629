"""Properties of the loader (hypothesis): whatever a file becomes by typos, deleted or
swapped lines and stray characters, reading it ends in a RunSpec or in a ConfigError
whose every problem points at a line and column of the file, never in another exception."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arl.config import RunSpec, load_experiment_text
from arl.errors import ConfigError, Location, Problem

DUMMY = (Path(__file__).resolve().parents[2] / "experiments" / "dummy.yml").read_text(encoding="utf-8")

# What a slip of the keyboard, a bad paste or an editor puts into a file: YAML's own
# punctuation, whitespace YAML reads differently (tab, no-break space), control
# characters, and digits that make integers too large.
STRAY = st.sampled_from(list(":-[]{},&*!|>'\"#%@`?\t\n \u00a0\x00\x1b\ufeff\u202e0123456789aZ_./\\"))


# Pastes that have broken parsers: endless digits, endless nesting, aliases into themselves.
PASTES = st.sampled_from(["9" * 4400, "[" * 200, "{a: " * 200, "&x [*x]", "&y {k: *y}", "*undefined", "!!python/none "])

VALUE_STARTS = [m.end() for m in re.finditer(r": |\[|, |\{", DUMMY)]  # after a key, in a flow list or mapping


@st.composite
def mutated(draw: st.DrawFn, text: str = DUMMY) -> str:
    """``text`` after one to five edits of characters or lines."""
    for _ in range(draw(st.integers(1, 5))):
        lines = text.split("\n")
        kind = draw(st.sampled_from(["replace", "insert", "delete", "swap", "drop line", "copy line", "indent"]))
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        line = draw(st.integers(0, len(lines) - 1))
        other = draw(st.integers(0, len(lines) - 1))
        if kind == "replace":
            text = text[:at] + draw(STRAY) + text[at + 1 :]
        elif kind == "insert":
            text = text[:at] + draw(st.text(STRAY, min_size=1, max_size=30)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif kind == "swap":
            lines[line], lines[other] = lines[other], lines[line]
            text = "\n".join(lines)
        elif kind == "drop line":
            text = "\n".join(lines[:line] + lines[line + 1 :])
        elif kind == "copy line":
            text = "\n".join([*lines[: other + 1], lines[line], *lines[other + 1 :]])
        else:
            lines[line] = " " * draw(st.integers(0, 7)) + lines[line].lstrip(" ")
            text = "\n".join(lines)
    return text


def problems_of(text: str, *, resolve_classes: bool) -> list[Problem]:
    """The problems reading ``text`` finds; none when it reads as a RunSpec."""
    try:
        spec = load_experiment_text(text, "dummy.yml", resolve_classes=resolve_classes)
    except ConfigError as exc:
        return exc.problems or [Problem(Location("a ConfigError without problems"), "", "")]
    assert isinstance(spec, RunSpec)
    return []


def assert_read_or_located(text: str, *, resolve_classes: bool) -> None:
    last_line = text.count("\n") + 2  # the parser may point just past the end
    for problem in problems_of(text, resolve_classes=resolve_classes):
        where = problem.location
        assert (where.file, problem.message != "") == ("dummy.yml", True), str(problem)
        assert where.line is not None, str(problem)
        assert 1 <= where.line <= last_line, str(problem)
        assert where.column is not None, str(problem)
        assert where.column >= 1, str(problem)


@settings(
    max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(mutated())
def test_any_mutation_reads_as_a_run_or_as_problems_each_at_a_line_and_column(text: str) -> None:
    assert_read_or_located(text, resolve_classes=False)


@settings(max_examples=20, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_with_classes_resolved_too(text: str) -> None:
    assert_read_or_located(text, resolve_classes=True)


def test_the_unmutated_file_reads() -> None:
    assert load_experiment_text(DUMMY, "dummy.yml").uid == "dummy-run"


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(st.sampled_from(VALUE_STARTS), PASTES)
def test_a_hostile_paste_where_a_value_goes_is_located_too(at: int, paste: str) -> None:
    assert_read_or_located(DUMMY[:at] + paste + DUMMY[at:], resolve_classes=False)
