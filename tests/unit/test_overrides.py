"""--set and --sweep: reading them, putting values into a file, and where problems are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.config import load_experiment
from arl.config.overrides import OverrideError, apply, combinations, count, parse_set, parse_sweep, sweep_suffix
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
        ("seed.x=1", "seed is an int, it has no 'x'"),
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


# --------------------------------------------------------------------------- limits


def test_a_set_value_is_read_with_the_file_s_guards() -> None:
    bomb = "[" + ", ".join(f"&a{i} [" + ", ".join([f"*a{i - 1}" if i else "1"] * 10) + "]" for i in range(9)) + "]"
    with pytest.raises(OverrideError, match="the value expands to more than 1000000 values through its aliases"):
        parse_set(f"x={bomb}")
    with pytest.raises(OverrideError, match="nest more than 64 deep"):
        parse_set("x=" + "[" * 5000 + "]" * 5000)
    with pytest.raises(OverrideError, match="is not allowed"):
        parse_set("x=!!python/object/apply:os.system [true]")
    with pytest.raises(OverrideError, match="more than 64 parts deep"):
        parse_set("a." * 100 + "b=1")
    with pytest.raises(OverrideError, match=r"--set x=&a \[1, \*a\]: this value contains itself through an alias"):
        parse_set("x=&a [1, *a]")
    assert parse_set("x=2024-01-01").value == "2024-01-01"  # plain data, as the stored document needs


def test_a_set_that_makes_the_file_too_deep_is_reported_at_the_option() -> None:
    option = "schedule.phase_0.environments.0.environment.params.x=" + "[" * 60 + "]" * 60
    with pytest.raises(ConfigError) as caught:
        load_experiment(DUMMY, overrides=[parse_set(option)])
    where = "schedule.0.phase_0.environments.0.environment.params.x" + ".0" * 56  # the 64th level down
    assert [str(p) for p in caught.value.problems] == [
        f"--set {option}: {where}: mappings and lists nest more than 64 deep here"
    ]


def test_runs_are_counted_before_they_are_made() -> None:
    assert count([]) == 1
    assert count([parse_sweep("seed=1,2,3"), parse_sweep("x=a,b")]) == 6
    assert count([parse_sweep("x=" + ",".join(map(str, range(1000))))] * 3) == 10**9  # nothing built


def test_arl_run_refuses_more_runs_than_max_runs_before_checking_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from arl.cli import main

    sweep = "seed=" + ",".join(map(str, range(1001)))
    for args in (
        ["check", str(DUMMY), "--sweep", sweep],
        ["run", str(DUMMY), "--sweep", "seed=1,2", "--max-runs", "1"],
    ):
        done = CliRunner().invoke(main, args, env={"ARL_STORE_URL": f"sqlite:///{tmp_path / 'arl.db'}"})
        assert done.exit_code == 2, done.output
        runs, allowed = (1001, "1,000") if args[0] == "check" else (2, "1")
        assert done.output == (
            f"error: the files and sweeps make {runs:,} runs, more than --max-runs allows ({allowed}); sweep fewer "
            f"values, or give --max-runs {runs} to run them all. Nothing was run.\n"
        )
    assert list(tmp_path.iterdir()) == []


def test_a_swept_uid_longer_than_the_store_keeps_is_refused_at_the_file() -> None:
    from arl.errors import ConfigError
    from arl.preflight import MAX_SWEPT_UID, load

    long_value = "x" * 300
    with pytest.raises(ConfigError) as caught:
        load(str(DUMMY), [parse_sweep(f"run_config.note={long_value},y")[0]], resolve_classes=False)
    (problem,) = caught.value.problems
    assert (problem.location.file, problem.path) == (str(DUMMY), "uid")
    assert f"over the {MAX_SWEPT_UID} the store keeps" in problem.message
