"""The experiment file's keys for a live run (issue 12, items 4, 7 and 8, the file's side):
``state`` (where and when snapshots are saved, which stay), ``control``, ``time_scale``,
``max_uptime`` and ``statistics_interval``: parsed into specs, defaults, and every bad
value reported at its place with what to do."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from arl.config import ClassRef, load_experiment_text
from arl.config.overrides import parse_set
from arl.config.schema import json_schema
from arl.config.spec import ControlSpec, KeepSpec, RunSpec, SaveSpec, StateSpec
from arl.config.statekeys import dir_problem, name_format_problem, signal_problem
from arl.errors import ArlError, ConfigError
from arl.state.conditions import SaveCondition, SaveView, from_save
from arl.state.keepers import StatesKeeper, from_keep
from arl.state.snapshot import NAME_FORMAT

HERE = Path(__file__).resolve().parent
MOD = "test_config_state"

# Lines 1-17; the keys under test are appended from line 18 on.
BASE = """\
uid: live
schedule:
  - phase_0:
      environments:
        - environment:
            name: arl.dummy:DummyEnvironment
            uid: env
      agents:
        - name: a
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl.dummy:DummyMuscle}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [env.s0]
          actuators: [env.a0]
      simulation:
        name: vanilla
        conditions: [{name: arl.conditions:EnvironmentDone}]
"""


@pytest.fixture(autouse=True, scope="module")
def _importable_as_test_config_state() -> Iterator[None]:
    """The files below name classes of this module as ``test_config_state:...``."""
    added = str(HERE) not in sys.path
    if added:
        sys.path.insert(0, str(HERE))
    yield
    if added:
        sys.path.remove(str(HERE))


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``state.dir`` is checked against the working directory: an empty one."""
    monkeypatch.chdir(tmp_path)


class EveryOtherCall(SaveCondition):
    def __init__(self, start: int = 0) -> None:
        self.calls = start

    def due(self, view: SaveView) -> bool:
        self.calls += 1
        return self.calls % 2 == 0

    def saved(self, view: SaveView) -> None:
        pass


class KeepNone(StatesKeeper):
    def __init__(self, grace: int = 0) -> None:
        self.grace = grace

    def append(self, path: Path) -> list[Path]:
        return []


class Half(SaveCondition):  # abstract: saved() is missing
    def due(self, view: SaveView) -> bool:
        return True


def load(more: str, **options: Any) -> RunSpec:
    return load_experiment_text(BASE + more, "exp.yml", **options)


def problems(more: str, **options: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(more, **options)
    return [str(p) for p in caught.value.problems]


# --------------------------------------------------------------------------- good files


FULL = """\
state:
  dir: snaps/here
  name_format: "%Y-%m-%dT%H-%M-%S"
  save:
    every_seconds: 300
    every_steps: 10000
    every_episodes: 5
    at_phase_end: true
    on_signal: SIGUSR1
    conditions: [{name: test_config_state:EveryOtherCall, params: {start: 1}}]
  keep: {latest: 10, every_hours: 1, max_total_mb: 500.5}
control: {pause_timeout: 2.5, pause_attempts: 4, queue_size: 32}
time_scale: 2
max_uptime: 3600
statistics_interval: 60
"""


def test_every_key_is_parsed_into_the_spec() -> None:
    spec = load(FULL)
    save = SaveSpec(300.0, 10000, 5, True, "SIGUSR1", (ClassRef(f"{MOD}:EveryOtherCall", {"start": 1}),))
    keep = KeepSpec(latest=10, every_hours=1.0, max_total_mb=500.5)
    assert spec.state == StateSpec("snaps/here", "%Y-%m-%dT%H-%M-%S", save, keep)
    assert spec.control == ControlSpec(pause_timeout=2.5, pause_attempts=4, queue_size=32)
    assert (spec.time_scale, spec.max_uptime, spec.statistics_interval) == (2.0, 3600.0, 60.0)
    for seconds in (spec.time_scale, spec.max_uptime, spec.state.save.every_seconds, spec.state.keep.every_hours):
        assert type(seconds) is float  # as the file wrote an integer: the spec's type, not the file's
    assert spec.document["state"]["save"]["on_signal"] == "SIGUSR1"  # stored with the run


def test_defaults() -> None:
    spec = load("")
    assert spec.state is None
    assert spec.control == ControlSpec(pause_timeout=5.0, pause_attempts=3, queue_size=16)
    assert (spec.time_scale, spec.max_uptime, spec.statistics_interval) == (1.0, None, None)
    state = load("state: {}\n").state
    assert state == StateSpec("arl-states", NAME_FORMAT, SaveSpec(), KeepSpec())
    assert (state.save.table(), state.keep.table()) == ({}, {})
    assert load("state:\n  save: {every_steps: 3}\ncontrol: {queue_size: 1}\n").control == ControlSpec(queue_size=1)


def test_the_specs_tables_are_what_the_state_modules_build_from() -> None:
    """The lead builds the run's save condition and keeper from the spec; what the file
    accepts, ``from_save`` and ``from_keep`` accept, with the same meaning."""
    state = load(FULL).state
    assert state is not None
    assert state.save.table() == {
        "every_seconds": 300.0,
        "every_steps": 10000,
        "every_episodes": 5,
        "at_phase_end": True,
    }
    condition = from_save(state.save.table(), clock=lambda: 0.0)
    assert len(condition.conditions) == 4
    assert not condition.due(SaveView(steps=9999, episodes=4, phase="phase_0"))
    assert condition.due(SaveView(steps=10000, episodes=4, phase="phase_0"))
    assert state.keep.table() == {"latest": 10, "every_hours": 1.0, "max_total_mb": 500.5}
    from_keep(state.keep.table())
    assert load("state: {save: {at_phase_end: false}}\n").state.save.table() == {}  # type: ignore[union-attr]


GOOD_RULES = [("every_seconds", "0.001"), ("every_seconds", "1e9"), ("every_steps", "1"), ("every_episodes", "1")]
EDGES = {"0": 0, "-1": -1, "true": True, "'5'": "5", ".inf": math.inf, ".nan": math.nan, "1.5": 1.5, "0.0": 0.0}
"""Values near the edges, as the file writes them and as the state modules get them."""
GOOD_KEEPS = [("latest", "1"), ("every_hours", "0.25"), ("max_total_mb", "1"), ("max_total_mb", "1e6")]


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize(
    "key", ["every_seconds", "every_steps", "every_episodes", "latest", "every_hours", "max_total_mb"]
)
def test_the_file_refuses_exactly_what_the_state_modules_refuse(key: str, value: str) -> None:
    """Agreement, value by value: a number the file takes is one ``from_save`` /
    ``from_keep`` takes, and what they refuse the file refuses at its place."""
    table = "save" if key.startswith("every_") and key != "every_hours" else "keep"
    build = from_save if table == "save" else from_keep
    try:
        build({key: EDGES[value]})
        accepted = True
    except ArlError:
        accepted = False
    text = f"state:\n  {table}:\n    {key}: {value}\n"
    if accepted:
        load(text)
    else:
        [problem] = problems(text)
        assert problem.startswith(f"exp.yml:20:{7 + len(key)}: state.{table}.{key}: ")


@pytest.mark.parametrize(("key", "value"), GOOD_RULES + GOOD_KEEPS)
def test_good_values_are_taken_by_file_and_state_modules_alike(key: str, value: str) -> None:
    table = "keep" if (key, value) in GOOD_KEEPS else "save"
    spec = load(f"state:\n  {table}:\n    {key}: {value}\n").state
    assert spec is not None
    if table == "save":
        from_save(spec.save.table())
    else:
        from_keep(spec.keep.table())


# --------------------------------------------------------------------------- bad values


def test_unknown_keys_wrong_types_and_ranges_are_reported_where_they_are() -> None:
    found = problems(
        "state:\n"  # 18
        "  dri: x\n"  # 19
        "  save: {every_step: 3, at_phase_end: yes please}\n"  # 20
        "  keep: {latest: 2.0}\n"  # 21
        "control: {pause_timeout: 0, pause_attempts: 0, queue_size: '16', pause: 1}\n"  # 22
        "time_scale: -1\n"  # 23
        "max_uptime: .inf\n"  # 24
        "statistics_interval: 0\n"  # 25
        "tim_scale: 2\n"  # 26
    )
    assert found == [
        "exp.yml:19:3: state.dri: unknown key 'dri'; did you mean 'dir'?",
        "exp.yml:20:10: state.save.every_step: unknown key 'every_step'; did you mean 'every_steps'?",
        "exp.yml:20:39: state.save.at_phase_end: expected true or false, got string 'yes please'",
        "exp.yml:21:18: state.keep.latest: expected an integer, got number 2.0",
        "exp.yml:22:26: control.pause_timeout: must be more than 0.0, got integer 0",
        "exp.yml:22:45: control.pause_attempts: must be at least 1, got integer 0",
        "exp.yml:22:60: control.queue_size: expected an integer, got string '16'",
        "exp.yml:22:66: control.pause: unknown key 'pause'",
        "exp.yml:23:13: time_scale: must be more than 0.0, got integer -1",
        "exp.yml:24:13: max_uptime: must be a finite number, got number inf",
        "exp.yml:25:22: statistics_interval: must be more than 0.0, got integer 0",
        "exp.yml:26:1: tim_scale: unknown key 'tim_scale'; did you mean 'time_scale'?",
    ]


def test_a_key_that_must_be_a_mapping_says_so() -> None:
    assert problems("state: arl-states\ncontrol: [1]\n") == [
        "exp.yml:18:8: state: expected a mapping, got string 'arl-states'",
        "exp.yml:19:10: control: expected a mapping, got a list",
    ]


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        ("SIGINT", "SIGINT is arl's: it stops the run (Ctrl-C); save on SIGUSR1, SIGUSR2 or SIGHUP"),
        ("SIGTERM", "SIGTERM is arl's: it stops the run; save on SIGUSR1, SIGUSR2 or SIGHUP"),
        ("SIGKILL", "SIGKILL is arl's: no process can catch it; save on SIGUSR1, SIGUSR2 or SIGHUP"),
        (
            "SIGCHLD",
            "SIGCHLD is not one a run saves on (a run's processes have their own use for it); "
            "save on SIGUSR1, SIGUSR2 or SIGHUP",
        ),
        ("usr2", "unknown signal 'usr2'; did you mean 'SIGUSR2'? (save on SIGUSR1, SIGUSR2 or SIGHUP)"),
        ("SIGUSR3", "unknown signal 'SIGUSR3'; did you mean 'SIGUSR2'? (save on SIGUSR1, SIGUSR2 or SIGHUP)"),
    ],
)
def test_a_save_signal_other_than_usr1_usr2_or_hup_is_refused_saying_why(signal: str, message: str) -> None:
    assert problems(f"state:\n  save: {{on_signal: {signal}}}\n") == [f"exp.yml:19:21: state.save.on_signal: {message}"]


def test_the_allowed_signals_are_taken() -> None:
    for name in ("SIGUSR1", "SIGUSR2", "SIGHUP"):
        assert signal_problem(name) is None
        assert load(f"state: {{save: {{on_signal: {name}}}}}\n").state.save.on_signal == name  # type: ignore[union-attr]
    assert problems("state: {save: {on_signal: 10}}\n") == [
        "exp.yml:18:27: state.save.on_signal: expected a string, got integer 10"
    ]


@pytest.mark.parametrize(
    ("format", "message"),
    [
        (
            "%Y-%m-%d %H:%M",
            "the snapshot name format '%Y-%m-%d %H:%M' gives '2024-01-02 03:04', which contains ' ', ':'",
        ),
        ("run/%Y%m%dT%H%M%S", "gives 'run/20240102T030405', which contains '/'"),
        (".%Y%m%dT%H%M%S", "must not start with '.'"),
        ("%Y%m%dT%H%M", "gives the same name '20240102T0304' at 2024-01-02 03:04:05 and 2024-01-02 03:04:06"),
        ("%H%M%S", "gives the same name '030405' at 2024-01-02 03:04:05 and 2024-01-03 03:04:05"),
        ("snapshot", "gives the same name 'snapshot'"),
    ],
)
def test_a_name_format_that_cannot_name_every_snapshot_apart_is_refused(format: str, message: str) -> None:
    [problem] = problems(f"state:\n  name_format: '{format}'\n")
    assert problem.startswith("exp.yml:19:16: state.name_format: ")
    assert message in problem


def test_name_formats_to_the_second_or_finer_are_taken() -> None:
    for format in (NAME_FORMAT, "%Y%m%dT%H%M%S", "%Y-%j_%H-%M-%S", "%s", "snap-%Y%m%d-%H%M%S.%f"):
        assert name_format_problem(format) is None, format
    assert load("state: {name_format: 'run-%s'}\n").state.name_format == "run-%s"  # type: ignore[union-attr]


def test_a_state_dir_that_cannot_hold_folders_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    assert problems("state: {dir: a-file}\n") == [
        "exp.yml:18:14: state.dir: it is not a folder; name a folder for the snapshots "
        "(one that exists, or can be made)"
    ]
    assert problems("state: {dir: a-file/states}\n") == [
        "exp.yml:18:14: state.dir: 'a-file' is not a folder; name a folder for the snapshots "
        "(one that exists, or can be made)"
    ]
    assert problems("state: {dir: ''}\n") == ["exp.yml:18:14: state.dir: must not be empty"]
    # Only the complete check looks at the disk: a tool reading the file elsewhere does not.
    assert load("state: {dir: a-file}\n", resolve_classes=False).state.dir == "a-file"  # type: ignore[union-attr]
    assert load("state: {dir: not/yet/made}\n").state.dir == "not/yet/made"  # type: ignore[union-attr]
    assert not (tmp_path / "not").exists()  # checking makes nothing


def test_a_state_dir_arl_run_may_not_write_in_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root may write anywhere (the tests run as root here), so the permission is denied
    through ``os.access``, which the check asks."""
    (tmp_path / "locked").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "locked" and real(path, mode))
    assert dir_problem("locked/states") == "arl-run may not write in 'locked'; name a folder it may write in"
    assert dir_problem("elsewhere") is None


def test_user_save_conditions_and_keepers_are_checked_against_their_base() -> None:
    found = problems(
        "state:\n"
        "  save:\n"
        "    conditions:\n"
        "      - {name: test_config_state:KeepNone}\n"  # 21
        "      - {name: test_config_state:Half}\n"  # 22
        "      - {name: test_config_state:EveryOtherCall, params: {stat: 1}}\n"  # 23
        "      - {name: test_config_state:EveryOtherCall, params: {start: one}}\n"  # 24
        "      - {name: test_config_state:Missing}\n"  # 25
        "  keep:\n"
        "    keeper: {name: test_config_state:EveryOtherCall}\n"  # 27
    )
    assert found == [
        "exp.yml:21:16: state.save.conditions.0.name: test_config_state:KeepNone is not a SaveCondition; "
        "a save condition must subclass arl.state.conditions.SaveCondition",
        "exp.yml:22:16: state.save.conditions.1.name: test_config_state:Half is abstract: it does not implement saved",
        "exp.yml:23:59: state.save.conditions.2.params.stat: EveryOtherCall takes no parameter 'stat'; "
        "did you mean 'start'?",
        "exp.yml:24:66: state.save.conditions.3.params.start: EveryOtherCall parameter 'start': expected an integer, "
        "got string 'one'",
        "exp.yml:25:16: state.save.conditions.4.name: module 'test_config_state' has no attribute 'Missing'",
        "exp.yml:27:20: state.keep.keeper.name: test_config_state:EveryOtherCall is not a StatesKeeper; "
        "a states keeper must subclass arl.state.keepers.StatesKeeper",
    ]


def test_user_classes_are_only_spelt_right_without_resolving_them() -> None:
    more = "state:\n  save: {conditions: [{name: not_installed:Cond}]}\n  keep: {keeper: {name: JustAName}}\n"
    assert problems(more, resolve_classes=False) == [
        "exp.yml:20:25: state.keep.keeper.name: 'JustAName' is not a class reference; write 'module:Class' "
        "(for example 'arl.conditions:MaxSteps')"
    ]


def test_a_user_keeper_is_refused_beside_the_built_in_rules() -> None:
    assert problems("state:\n  keep: {latest: 3, max_total_mb: 10, keeper: {name: test_config_state:KeepNone}}\n") == [
        "exp.yml:19:39: state.keep.keeper: a keeper of your own decides alone which snapshots stay: give keeper or "
        "latest, max_total_mb, not both (your keeper may apply such rules itself)"
    ]
    state = load("state:\n  keep: {keeper: {name: test_config_state:KeepNone, params: {grace: 2}}}\n").state
    assert state is not None
    assert state.keep == KeepSpec(keeper=ClassRef(f"{MOD}:KeepNone", {"grace": 2}))
    assert state.keep.table() == {}


# --------------------------------------------------------------------------- overrides and the schema


def test_set_reaches_the_new_keys_and_its_problems_are_reported_at_the_option() -> None:
    overrides = [parse_set("time_scale=0.5"), parse_set("state.save.every_steps=7"), parse_set("control.queue_size=2")]
    spec = load("", overrides=overrides)
    assert (spec.time_scale, spec.control.queue_size) == (0.5, 2)
    assert spec.state is not None
    assert spec.state.save.every_steps == 7
    assert problems("", overrides=[parse_set("state.save.on_signal=SIGTERM"), parse_set("max_uptime=-3")]) == [
        "--set max_uptime=-3: max_uptime: must be more than 0.0, got integer -3",
        "--set state.save.on_signal=SIGTERM: state.save.on_signal: SIGTERM is arl's: it stops the run; "
        "save on SIGUSR1, SIGUSR2 or SIGHUP",
    ]


def test_the_json_schema_has_the_new_keys() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    document = load(FULL).document
    assert [e.message for e in validator.iter_errors(document)] == []
    for bad, message in (
        ({"state": {"save": {"on_signal": "SIGINT"}}}, "'SIGINT' is not one of ['SIGUSR1', 'SIGUSR2', 'SIGHUP', None]"),
        ({"control": {"queue_siz": 3}}, "Additional properties are not allowed ('queue_siz' was unexpected)"),
        ({"time_scale": 0}, "0 is less than or equal to the minimum of 0"),
    ):
        messages = [e.message for e in _flat(validator.iter_errors({**document, **bad}))]
        assert message in messages, messages


def _flat(errors: Iterable[jsonschema.ValidationError]) -> Iterator[jsonschema.ValidationError]:
    """Each error and those under it (an ``anyOf`` for an optional key holds the real one)."""
    for error in errors:
        yield error
        yield from _flat(error.context or ())


SECTIONS = ("`state`", "`control`", "Time, uptime and statistics")


def test_the_documented_examples_load() -> None:
    doc = (HERE.parents[1] / "docs" / "experiment-file.md").read_text(encoding="utf-8")
    examples = [doc.split(f"## {title}\n", 1)[1].split("```yaml\n", 1)[1].split("```")[0] for title in SECTIONS]
    spec = load("".join(examples), resolve_classes=False)  # mypkg is not installed: only spelt right
    assert spec.state is not None
    assert spec.state.save.conditions == (ClassRef("mypkg.saving:OnPlateau", {"window": 100}),)
    assert spec.state.keep.table() == {"latest": 10, "every_hours": 1.0, "max_total_mb": 500.0}
    assert spec.control == ControlSpec()
    assert (spec.time_scale, spec.max_uptime, spec.statistics_interval) == (1.0, 3600.0, 60.0)
