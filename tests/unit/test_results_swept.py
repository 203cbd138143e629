"""A sweep's values as results show them: short column names, the list and compare tables,
and several runs drawn in one figure. Records in, text or a figure out; no store."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from arl.results.plot import RunReturns, draw_runs
from arl.results.report import compare_table, runs_table
from arl.results.swept import describe, short_keys, value_text

EPISODES = "schedule.train.phase_config.episodes"


def test_a_swept_key_is_shortened_to_the_last_parts_no_other_key_ends_with() -> None:
    assert short_keys(["seed", EPISODES]) == {"seed": "seed", EPISODES: "episodes"}
    assert short_keys([EPISODES, "schedule.test.phase_config.episodes"]) == {
        EPISODES: "train.phase_config.episodes",
        "schedule.test.phase_config.episodes": "test.phase_config.episodes",
    }
    # A key that is the tail of another stays whole; the other keeps one part more.
    assert short_keys(["episodes", "a.episodes"]) == {"episodes": "episodes", "a.episodes": "a.episodes"}


def test_values_are_shown_as_given_never_rounded() -> None:
    assert [value_text(v) for v in ("a b", 3, 0.0003, True, None, [1, "x"])] == [
        "a b", "3", "0.0003", "true", "null", '[1,"x"]'
    ]  # fmt: skip
    assert describe({"seed": 1, EPISODES: 5}, short_keys(["seed", EPISODES])) == "seed=1, episodes=5"
    assert describe({EPISODES: 5}) == f"{EPISODES}=5"


def _run(uid: str, run_id: int, swept: dict | None) -> dict:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "uid": uid, "id": run_id, "status": "FINISHED", "started_at": at, "duration_s": 1.0, "phases": 1,
        "episodes": 2, "steps": 20, "end_reason": "completed", "swept": swept,
    }  # fmt: skip


def test_the_list_has_a_swept_column_only_when_a_run_was_swept() -> None:
    plain = runs_table([_run("plain", 1, None)])
    assert "swept" not in plain
    table = runs_table(
        [_run("plain", 1, None), _run("s-0a", 2, {"seed": 1, EPISODES: 2}), _run("s-0b", 3, {"seed": 2, EPISODES: 3})]
    )
    header, *rows = table.splitlines()
    assert header.split()[-1] == "swept"
    assert [row.split("completed")[1].strip() for row in rows] == ["-", "seed=1, episodes=2", "seed=2, episodes=3"]
    # A value is the user's text: no escape sequence reaches the terminal.
    assert runs_table([_run("s-0c", 4, {"note": "\x1b[2J"})]).endswith("note=\\x1b[2J")


def test_compare_shows_swept_keys_short_their_values_unrounded_and_returns_rounded() -> None:
    columns = ("run", "id", "status", "lr", EPISODES, "train/episodes", "train/solo")
    records = [
        {"run": "s-0a", "id": 2, "status": "FINISHED", "lr": 0.0003, EPISODES: 2, "train/episodes": 2,
         "train/solo": 1.23456},
        {"run": "other", "id": 3, "status": "FAILED"},
    ]  # fmt: skip
    header, first, second = (line.split() for line in compare_table(records, columns).splitlines())
    assert header == ["run", "id", "status", "lr", "episodes", "train/episodes", "train/solo"]
    assert first == ["s-0a", "2", "FINISHED", "0.0003", "2", "2", "1.235"]
    assert second == ["other", "3", "FAILED", "-", "-", "-", "-"]


def _episodes(returns: dict[str, list[float]], phases: tuple[tuple[str, str, int], ...]) -> list[dict]:
    records, x = [], 0
    for index, (name, mode, count) in enumerate(phases):
        for episode in range(count):
            record = {"phase": index, "phase_name": name, "mode": mode, "episode": episode}
            record.update({f"return.{agent}": values[x] for agent, values in returns.items()})
            records.append(record)
            x += 1
    return records


def test_several_runs_are_drawn_a_panel_per_agent_and_a_line_per_run_labelled() -> None:
    pytest.importorskip("matplotlib")
    phases = (("train", "train", 2), ("test", "test", 1))
    runs = [
        RunReturns("s-0a  seed=1", _episodes({"a": [1, 2, 3], "b": [0, 0, 1]}, phases), ["a", "b"]),
        RunReturns("s-0b  seed=2", _episodes({"a": [3, 2, math.nan]}, phases), ["a"]),
    ]
    figure = draw_runs("returns of 2 runs", runs)
    panels = figure.axes
    assert [axes.get_ylabel() for axes in panels] == ["return of a", "return of b"]

    # A line a run and phase (none for a phase with no return): the train phase joined, the
    # test one dashed, one legend entry a run. (Dotted lines part the phases.)
    def lines(axes: object) -> list[tuple[str | None, list[float], str]]:
        drawn = [line for line in axes.get_lines() if line.get_linestyle() != ":"]  # type: ignore[attr-defined]
        return [(None if line.get_label().startswith("_") else line.get_label(),
                 [float(x) for x in line.get_xdata()], line.get_linestyle()) for line in drawn]  # fmt: skip

    assert lines(panels[0]) == [("s-0a  seed=1", [1, 2], "-"), (None, [3], "--"), ("s-0b  seed=2", [1, 2], "-")]
    assert lines(panels[1]) == [("s-0a  seed=1", [1, 2], "-"), (None, [3], "--")]
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["s-0a  seed=1", "s-0b  seed=2"]
    # The same phases in every run: shaded (the test phase) and named.
    assert [t.get_text() for t in panels[0].texts] == ["train", "test"]
