"""--set and --sweep: reading them, putting values into a file, and where problems are reported."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arl.config import load_experiment
from arl.config.overrides import (
    SUFFIX_LENGTH,
    OverrideError,
    SweptTwice,
    apply,
    combinations,
    count,
    parse_set,
    parse_sweep,
    parse_sweeps,
    sweep_uid,
    swept_by_path,
    swept_values,
)
from arl.errors import ConfigError
from arl.names import MAX_NAME, name_problem

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


def test_sweeps_multiply_and_each_run_gets_a_short_safe_uid_of_its_own() -> None:
    runs = combinations([parse_set("seed=9")], [parse_sweep("seed=1,2"), parse_sweep("x=a,b,c")])
    assert len(runs) == 6
    assert [swept_values(r) for r in runs[:2]] == [{"seed": 1, "x": "a"}, {"seed": 1, "x": "b"}]
    assert swept_values([parse_set("seed=1")]) == {}
    uids = [sweep_uid("e2e", swept_values(r)) for r in runs]
    assert len(set(uids)) == 6
    assert all(re.fullmatch(r"e2e-[0-9a-f]{10}", uid) for uid in uids)
    # The same values give the same uid, whatever order the sweeps came in (--resume finds
    # a run by it); the hash is fixed (sha256 of the values as JSON), not per process.
    again = combinations([], [parse_sweep("x=a,b,c"), parse_sweep("seed=1,2")])
    assert sorted(sweep_uid("e2e", swept_values(r)) for r in again) == sorted(uids)
    # Pinned: a uid that changed between versions of arl would lose every sweep's --resume.
    assert sweep_uid("e2e", {"x": "a", "seed": 1}) == "e2e-" + hashlib.sha256(b'{"seed":1,"x":"a"}').hexdigest()[:10]


def test_a_value_is_hashed_by_its_type_too() -> None:
    values = [parse_sweep("seed=1,1.0,'1'")[i].value for i in range(3)]
    assert values == [1, 1.0, "1"]
    assert len({sweep_uid("u", {"seed": v}) for v in values}) == 3


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
_SWEPT = st.dictionaries(st.from_regex(r"[a-z_]{1,8}(\.[a-z0-9_]{1,8}){0,3}", fullmatch=True), _VALUES, min_size=1)


@settings(max_examples=50)
@given(uid=st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,88}", fullmatch=True), swept=_SWEPT, other=_SWEPT)
def test_a_swept_uid_is_a_valid_name_the_same_for_the_same_values_and_differs_for_others(
    uid: str, swept: dict, other: dict
) -> None:
    made = sweep_uid(uid, swept)
    assert name_problem(made) is None
    assert len(made) == len(uid) + SUFFIX_LENGTH
    assert made == sweep_uid(uid, dict(reversed(swept.items())))
    if other != swept:
        assert sweep_uid(uid, other) != made


def test_a_key_swept_twice_is_refused() -> None:
    assert len(parse_sweeps(["seed=1,2", "x=a,b"])) == 2
    with pytest.raises(OverrideError, match=r"--sweep seed is given twice; give all its values in one --sweep seed="):
        parse_sweeps(["seed=1,2", "x=a,b", "seed=3,4"])


def test_two_spellings_of_one_swept_key_give_one_uid_and_are_refused_together() -> None:
    from arl.preflight import load

    def by_path(*sweeps: str) -> dict:
        return swept_by_path(_data() | {"layers": [1, 2]}, [parse_sweep(text)[0] for text in sweeps])

    # A key already spelled one way is kept as typed (its runs keep their uids) ...
    plain = ["seed", "schedule.a.phase_config.episodes", "schedule.b.phase_config.mode", "layers.1", "new.key"]
    assert list(by_path(*(f"{key}=1,2" for key in plain))) == plain
    # ... and the others are spelled so: a phase by its name, an item by its index from the start.
    assert by_path("schedule.0.a.phase_config.episodes=1,2") == {"schedule.a.phase_config.episodes": 1}
    assert by_path("schedule.-1.b.phase_config.mode=x,y") == {"schedule.b.phase_config.mode": "x"}
    assert by_path("layers.-1=5,6") == {"layers.1": 5}
    with pytest.raises(SweptTwice, match=r"^sweeps the same value as --sweep schedule\.a\.phase_config\.episodes "):
        by_path("schedule.a.phase_config.episodes=1,2", "schedule.0.a.phase_config.episodes=3,4")

    named, indexed = "schedule.phase_1.phase_config.episodes", "schedule.1.phase_1.phase_config.episodes"
    runs = [load(str(DUMMY), [parse_sweep(f"{key}=2,3")[0]], resolve_classes=False) for key in (named, indexed)]
    assert runs[0].uid == runs[1].uid == sweep_uid("dummy-run", {named: 2})
    assert [run.swept for run in runs] == [{named: 2}, {indexed: 2}]  # shown as typed
    with pytest.raises(ConfigError) as caught:
        load(str(DUMMY), [parse_sweep(f"{named}=2,3")[0], parse_sweep(f"{indexed}=4,5")[0]], resolve_classes=False)
    assert [str(p) for p in caught.value.problems] == [
        f"--sweep {indexed}: sweeps the same value as --sweep {named} ({named}); give all its values in one --sweep"
    ]


@pytest.mark.parametrize("text", ["paths=[lib]", "paths.0=lib"])
def test_paths_cannot_be_overridden_as_the_folders_are_on_the_path_before_the_check(text: str) -> None:
    from click.testing import CliRunner

    from arl.cli import main

    says = "paths cannot be set from the command line: its folders go on the Python path before the file is read"
    with pytest.raises(OverrideError, match=says):
        parse_set(text)
    with pytest.raises(OverrideError, match=says):
        parse_sweep(text.replace("lib", "lib,src"))
    done = CliRunner().invoke(main, ["check", str(DUMMY), "--set", text])
    assert done.exit_code == 2, done.output
    assert done.output == f"error: --set {text!r}: {says} and checked, so write paths: in the experiment file\n"


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


def test_a_swept_run_carries_its_values_and_a_short_uid_however_long_they_are(tmp_path: Path) -> None:
    from arl.preflight import load

    long_value = "x/../" * 300  # characters no path may hold, and far longer than a name
    spec = load(str(DUMMY), [parse_sweep(f"run_config.note={long_value},y")[0]], resolve_classes=False)
    assert spec.swept == {"run_config.note": long_value}
    assert spec.uid == sweep_uid("dummy-run", spec.swept) == spec.document["uid"]
    assert name_problem(spec.uid) is None
    assert load(str(DUMMY), [parse_set("seed=3")], resolve_classes=False).swept is None
    # A file uid that would be too long with the suffix is refused at the file.
    longest = MAX_NAME - SUFFIX_LENGTH
    for length, refused in ((longest, False), (longest + 1, True)):
        file = tmp_path / f"u{length}.yml"
        file.write_text(re.sub(r"(?m)^uid: .*$", "uid: " + "u" * length, DUMMY.read_text()))
        sweep = [parse_sweep("seed=1,2")[0]]
        if not refused:
            assert len(load(str(file), sweep, resolve_classes=False).uid) == MAX_NAME
            continue
        with pytest.raises(ConfigError) as caught:
            load(str(file), sweep, resolve_classes=False)
        (problem,) = caught.value.problems
        assert (problem.location.file, problem.location.line, problem.path) == (str(file), 4, "uid")
        assert f"this uid is {length} characters; shorten it to {longest} or fewer" in problem.message
    # A uid set on the command line is reported at its option.
    set_uid = parse_set("uid=" + "v" * (longest + 1))
    with pytest.raises(ConfigError) as caught:
        load(str(DUMMY), [set_uid, parse_sweep("seed=1,2")[0]], resolve_classes=False)
    assert caught.value.problems[0].location.file == set_uid.source
