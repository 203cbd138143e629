"""--set and --sweep: reading them, putting values into a file, and where problems are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.config import load_experiment
from arl.config.overrides import OverrideError, apply, combinations, parse_set, parse_sweep, sweep_suffix
from arl.errors import ConfigError

DUMMY = Path(__file__).resolve().parents[2] / "experiments" / "dummy.yml"


def _data() -> dict:
    return {"seed": 1, "schedule": [{"a": {"phase_config": {"episodes": 1}}}, {"b": {}}]}


def test_values_are_read_as_yaml() -> None:
    assert parse_set("seed=3").value == 3
    assert parse_set("uid='3'").value == "3"
    assert parse_set("x=[1, two]").value == [1, "two"]
    assert parse_set("x={a: 1}").value == {"a": 1}
    assert parse_set("x=").value == ""


@pytest.mark.parametrize("text", ["seed", "=3", "a..b=1", ".a=1"])
def test_a_set_that_is_not_key_equals_value_is_refused(text: str) -> None:
    with pytest.raises(OverrideError, match="write KEY=VALUE"):
        parse_set(text)


@pytest.mark.parametrize("text", ["seed=1", "seed=1,", "seed=,2"])
def test_a_sweep_needs_two_or_more_values(text: str) -> None:
    with pytest.raises(OverrideError, match="two or more values"):
        parse_sweep(text)


def test_paths_address_mappings_list_indices_and_phases_by_name() -> None:
    data = _data()
    assert apply(data, parse_set("seed=5")) == ("seed",)
    assert apply(data, parse_set("schedule.0.a.phase_config.episodes=2")) == (
        "schedule",
        0,
        "a",
        "phase_config",
        "episodes",
    )
    assert apply(data, parse_set("schedule.b.phase_config.mode=test")) == ("schedule", 1, "b", "phase_config", "mode")
    assert data == {
        "seed": 5,
        "schedule": [{"a": {"phase_config": {"episodes": 2}}}, {"b": {"phase_config": {"mode": "test"}}}],
    }


def test_null_mappings_on_the_way_are_created() -> None:
    data = {"seed": 1, "schedule": [{"a": {"phase_config": None}}, {"b": None}]}  # '- b:' and 'phase_config:'
    assert apply(data, parse_set("schedule.b.phase_config.mode=test")) == ("schedule", 1, "b", "phase_config", "mode")
    assert apply(data, parse_set("schedule.a.phase_config.episodes=2")) == (
        "schedule",
        0,
        "a",
        "phase_config",
        "episodes",
    )
    assert data["schedule"] == [{"a": {"phase_config": {"episodes": 2}}}, {"b": {"phase_config": {"mode": "test"}}}]


def test_a_set_into_a_phase_with_an_empty_body_loads(tmp_path: Path) -> None:
    path = tmp_path / "dummy.yml"
    text = DUMMY.read_text()
    path.write_text(text + "  - extra:\n")
    spec = load_experiment(path, overrides=[parse_set("schedule.extra.phase_config.mode=test")])
    assert spec.phases[-1].name == "extra"
    assert spec.phases[-1].mode == "test"


def test_only_sweeps_are_marked_swept() -> None:
    assert [o.swept for o in parse_sweep("seed=1,2")] == [True, True]
    assert not parse_set("seed=1").swept


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schedule.c.x=1", "schedule has no item named 'c'"),
        ("schedule.2.x=1", "schedule has 2 items, no item 2"),
        ("seed.x=1", "seed is a int, it has no 'x'"),
    ],
)
def test_a_path_that_breaks_says_where(text: str, message: str) -> None:
    with pytest.raises(OverrideError, match=message):
        apply(_data(), parse_set(text))


def test_sweeps_multiply_and_name_each_run() -> None:
    runs = combinations([parse_set("seed=9")], [parse_sweep("seed=1,2"), parse_sweep("x=a,b,c")])
    assert len(runs) == 6
    assert [sweep_suffix(r) for r in runs[:2]] == ["[seed=1,x=a]", "[seed=1,x=b]"]
    assert sweep_suffix([parse_set("seed=1")]) == ""


def test_overrides_reach_the_specs_and_the_stored_document() -> None:
    spec = load_experiment(
        DUMMY, overrides=[parse_set("seed=7"), parse_set("schedule.phase_1.phase_config.episodes=3")]
    )
    assert spec.seed == 7
    assert [p.episodes for p in spec.phases] == [1, 3]
    assert spec.document["seed"] == 7


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("seed=-1", "--set seed=-1: seed: must be at least 0, got integer -1"),
        ("schedule.phase_0.agents.0.muscel=1",
         "--set schedule.phase_0.agents.0.muscel=1: schedule.0.phase_0.agents.0.muscel: unknown key 'muscel'; "
         "did you mean 'muscle'?"),
        ("schedule.phase_9.x=1", "--set schedule.phase_9.x=1: schedule has no item named 'phase_9'"),
    ],
)  # fmt: skip
def test_a_problem_with_an_overridden_value_is_reported_at_the_option(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_experiment(DUMMY, overrides=[parse_set(text)])
    assert [str(p) for p in caught.value.problems] == [problem]
