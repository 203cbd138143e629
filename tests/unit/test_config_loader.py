"""The experiment-file loader: good files become specs; broken ones report every mistake
once, as ``file:line:col: path: message`` (the broken files themselves are the corpus in
tests/corpus/broken, run by test_broken_corpus.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pytest
from gymnasium import spaces
from pydantic import Field

from arl.api import (
    ActuatorInfo,
    Brain,
    Environment,
    Experience,
    Muscle,
    Objective,
    SensorInfo,
    StepResult,
)
from arl.api import Environment as EnvironmentBase
from arl.classref import build, kind_problem
from arl.config import (
    AgentSpec,
    ClassRef,
    EnvironmentSpec,
    LoadSpec,
    PhaseSpec,
    RunSpec,
    SimulationSpec,
    import_class,
    load_experiment,
    load_experiment_text,
)
from arl.errors import ComponentLoadError, ConfigError

HERE = Path(__file__).resolve().parent
MOD = "test_config_loader"


@pytest.fixture(autouse=True, scope="module")
def _importable_as_test_config_loader() -> Iterator[None]:
    """The files below name classes of this module as ``test_config_loader:...``."""
    added = str(HERE) not in sys.path
    if added:
        sys.path.insert(0, str(HERE))
    yield
    if added:
        sys.path.remove(str(HERE))


# --------------------------------------------------------------------------- components


class GoodEnvironment(Environment):
    def __init__(self, sensors: int = 1) -> None:
        self.count = sensors

    def sensors(self) -> Sequence[SensorInfo]:
        return ()

    def actuators(self) -> Sequence[ActuatorInfo]:
        return ()

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        return {}

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        return StepResult({}, {})


class TextEnvironment(GoodEnvironment):
    """A sensor whose space arl cannot describe: fine to build, but it cannot run."""

    def sensors(self) -> Sequence[SensorInfo]:
        return [SensorInfo("s0", spaces.Text(5))]


class TypedEnvironment(GoodEnvironment):
    """Params with annotations: checked at the file (a name only a type checker knows,
    and an array pydantic cannot check, are let through unchecked)."""

    def __init__(
        self,
        size: Annotated[int, Field(ge=1)] = 1,
        scale: float = 1.0,
        shape: tuple[int, int] = (1, 1),
        mode: Literal["fast", "exact"] = "fast",
        table: np.ndarray | None = None,
        later: OnlyForTypeCheckers | None = None,  # noqa: F821 - deliberately unresolvable
        untyped=None,
    ) -> None:
        self.count = size


class GoodBrain(Brain):
    def learn(self, experience: Experience) -> Any:
        return None


class GoodMuscle(Muscle):
    def act(self, sensors: Mapping[str, Any]) -> Mapping[str, Any]:
        return {}


class GoodObjective(Objective):
    def evaluate(self, rewards: Mapping[str, float]) -> float:
        return 0.0


# --------------------------------------------------------------------------- helpers

GOOD = """\
uid: dummy-run
experiment_uid: dummy
seed: 42
version: 1
run_config:
  condition: {name: palaestrai.experiment:VanillaRunGovernorTerminationCondition}
schedule:
  - phase_0:
      environments:
        - environment:
            name: test_config_loader:GoodEnvironment
            uid: env
            params: {sensors: 10}
      agents:
        - name: defender
          brain: {name: test_config_loader:GoodBrain, params: {}}
          muscle: {name: test_config_loader.GoodMuscle, params: {}}
          objective: {name: test_config_loader:GoodObjective}
          sensors: [env.s0, env.s1]
          actuators: [env.a0]
      simulation:
        name: vanilla
        conditions:
          - {name: arl.conditions:MaxSteps, params: {steps: 10}}
      phase_config:
        mode: train
        episodes: 2
        workers: 1
        max_steps: 50
  - phase_1:
      agents:
        - name: defender
          brain: {name: test_config_loader:GoodBrain}
          muscle: {name: test_config_loader:GoodMuscle}
          objective: {name: test_config_loader:GoodObjective}
          sensors: [env.s0]
          actuators: [env.a0]
          load: {phase: phase_0}
      phase_config: {mode: test}
"""


CONDITIONS = "        conditions:\n          - {name: arl.conditions:MaxSteps, params: {steps: 10}}\n"


def edit(old: str, new: str, text: str = GOOD) -> str:
    """GOOD with one change (which must apply, so a test cannot silently test GOOD)."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def problems(text: str, *, resolve_classes: bool = True) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, "exp.yml", resolve_classes=resolve_classes)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(p) for p in caught.value.problems]


def ref(name: str, **params: Any) -> ClassRef:
    return ClassRef(f"{MOD}:{name}", params)


# --------------------------------------------------------------------------- good files


def test_good_file_loads_into_specs() -> None:
    spec = load_experiment_text(GOOD, "exp.yml")
    env = EnvironmentSpec("env", ref("GoodEnvironment", sensors=10))
    agent0 = AgentSpec(
        name="defender",
        brain=ref("GoodBrain"),
        muscle=ref("GoodMuscle"),  # the dotted spelling, normalised
        objective=ref("GoodObjective"),
        sensors=("env.s0", "env.s1"),
        actuators=("env.a0",),
        load=None,
    )
    simulation = SimulationSpec(
        "vanilla", ClassRef("arl.simulation:Vanilla"), (ClassRef("arl.conditions:MaxSteps", {"steps": 10}),)
    )
    phase0 = PhaseSpec("phase_0", 0, "train", 2, 1, 50, (env,), (agent0,), simulation)
    assert isinstance(spec, RunSpec)
    assert (spec.uid, spec.experiment_uid, spec.seed, spec.version) == ("dummy-run", "dummy", 42, 1)
    assert spec.phases[0] == phase0
    assert spec.phases[0].train
    assert "source" not in {f.name for f in dataclasses.fields(spec)}  # the text was never read back: not kept
    with pytest.raises(AttributeError):
        spec.uid = "other"  # type: ignore[misc]


def test_later_phase_inherits_sections_and_merges_phase_config() -> None:
    phase1 = load_experiment_text(GOOD, "exp.yml").phases[1]
    assert (phase1.name, phase1.index, phase1.mode, phase1.train) == ("phase_1", 1, "test", False)
    assert (phase1.episodes, phase1.workers, phase1.max_steps) == (2, 1, 50)  # from phase_0
    assert phase1.environments == (EnvironmentSpec("env", ref("GoodEnvironment", sensors=10)),)
    assert phase1.simulation.name == "vanilla"
    (agent,) = phase1.agents
    assert agent.sensors == ("env.s0",)
    assert agent.load == LoadSpec(phase="phase_0", agent="defender", run=None)


def test_document_is_the_resolved_file_and_loads_again() -> None:
    spec = load_experiment_text(GOOD, "exp.yml")
    text = json.dumps(spec.document)  # JSON-able, and JSON is YAML
    phase1 = spec.document["schedule"][1]["phase_1"]
    assert phase1["environments"] == spec.document["schedule"][0]["phase_0"]["environments"]
    assert phase1["phase_config"] == {"mode": "test", "episodes": 2, "workers": 1, "max_steps": 50}
    assert spec.document["run_config"]["condition"]["name"].startswith("palaestrai.")
    assert load_experiment_text(text, "doc.json").phases == spec.phases


def test_defaults_and_palaestrai_spellings() -> None:
    text = edit(
        "      phase_config:\n        mode: train\n        episodes: 2\n        workers: 1\n        max_steps: 50\n",
        "      phase_config: {worker: 3}\n",
    )
    text = edit(
        CONDITIONS,
        "",
        text,
    )
    text = edit("seed: 42\nversion: 1\n", "", text)
    spec = load_experiment_text(text, "exp.yml")
    assert (spec.seed, spec.version) == (0, 1)
    phase0, phase1 = spec.phases
    assert (phase0.mode, phase0.episodes, phase0.workers, phase0.max_steps) == ("train", 1, 3, None)
    assert phase1.workers == 3
    default = (ClassRef("arl.conditions:EnvironmentDone", {}),)
    assert phase0.simulation.conditions == phase1.simulation.conditions == default


def test_load_from_another_run_needs_no_phase_here() -> None:
    text = edit("load: {phase: phase_0}", "load: {run: old-run, agent: attacker}")
    agent = load_experiment_text(text, "exp.yml").phases[1].agents[0]
    assert agent.load == LoadSpec(phase=None, agent="attacker", run="old-run")


def test_load_experiment_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "exp.yml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_experiment(path).uid == "dummy-run"
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_experiment(tmp_path / "missing.yml")


def test_resolve_classes_false_checks_only_the_spelling() -> None:
    text = edit("test_config_loader:GoodBrain, params: {}", "not_installed.pkg:Brain")
    assert load_experiment_text(text, "exp.yml", resolve_classes=False).uid == "dummy-run"
    text = edit("test_config_loader:GoodBrain, params: {}", "JustAName")
    assert problems(text, resolve_classes=False) == [
        "exp.yml:16:25: schedule.0.phase_0.agents.0.brain.name: 'JustAName' is not a class "
        "reference; write 'module:Class' (for example 'arl.conditions:MaxSteps')"
    ]


def test_anchors_and_merge_keys_are_plain_yaml() -> None:
    text = edit(
        "        - environment:\n            name:",
        "        - environment: &env\n            name:",
    )
    text = edit(
        "      phase_config: {mode: test}\n",
        "      phase_config: {mode: test}\n"
        "      environments:\n"
        "        - environment:\n"
        "            <<: *env\n"
        "            params: {sensors: 3}\n",
        text,
    )
    (env,) = load_experiment_text(text, "exp.yml").phases[1].environments
    assert env == EnvironmentSpec("env", ref("GoodEnvironment", sensors=3))


def test_the_documented_example_loads() -> None:
    doc = (HERE.parents[1] / "docs" / "experiment-file.md").read_text(encoding="utf-8")
    example = doc.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    spec = load_experiment_text(example, "example.yml", resolve_classes=False)
    assert [p.name for p in spec.phases] == ["phase_0", "phase_1"]
    assert (spec.phases[1].mode, spec.phases[1].episodes, spec.phases[1].workers) == ("test", 5, 2)


# --------------------------------------------------------------------------- import_class


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "arl_cfgtest_needs_dep.py").write_text("import arl_cfgtest_absent_dep\n")
    (tmp_path / "arl_cfgtest_raises.py").write_text("raise RuntimeError('no GPU here')\n")
    (tmp_path / "arl_cfgtest_fine.py").write_text("class Thing:\n    pass\n\nvalue = 3\n")
    (tmp_path / "arl_cfgtest_exits.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("arl_cfgtest_needs_dep", "arl_cfgtest_raises", "arl_cfgtest_fine", "arl_cfgtest_exits"):
        sys.modules.pop(name, None)


@pytest.mark.usefixtures("modules")
@pytest.mark.parametrize(
    ("entry_point", "message"),
    [
        (
            "arl_cfgtest_nowhere:Thing",
            "module 'arl_cfgtest_nowhere' not found (no module named 'arl_cfgtest_nowhere'); "
            "is it installed, or on the Python path?",
        ),
        (
            "arl_cfgtest_needs_dep:Thing",
            "module 'arl_cfgtest_needs_dep' was found but could not be imported: it needs "
            "module 'arl_cfgtest_absent_dep', which is not installed",
        ),
        (
            "arl_cfgtest_raises:Thing",
            "importing module 'arl_cfgtest_raises' raised RuntimeError: no GPU here",
        ),
        (
            "arl_cfgtest_exits:Thing",
            "importing module 'arl_cfgtest_exits' called sys.exit(3); a module must not exit when imported",
        ),
        (
            "arl_cfgtest_fine:Thin",
            "module 'arl_cfgtest_fine' has no attribute 'Thin'; did you mean 'Thing'?",
        ),
        ("arl_cfgtest_fine:value", "'arl_cfgtest_fine:value' is not a class but an int object"),
        (
            "arl_cfgtest_fine",
            "'arl_cfgtest_fine' is not a class reference; write 'module:Class' (for example 'arl.conditions:MaxSteps')",
        ),
    ],
)
def test_import_class_says_what_is_missing(entry_point: str, message: str) -> None:
    with pytest.raises(ComponentLoadError) as caught:
        import_class(entry_point)
    assert str(caught.value) == message


@pytest.mark.usefixtures("modules")
def test_import_class_accepts_both_spellings() -> None:
    assert import_class("arl_cfgtest_fine:Thing") is import_class("arl_cfgtest_fine.Thing")
    assert import_class("arl.conditions:MaxSteps").__name__ == "MaxSteps"


def test_build_checks_the_kind_before_it_constructs() -> None:
    assert isinstance(build(f"{MOD}:GoodBrain", {}, Brain, "brain"), GoodBrain)
    assert build("arl.conditions:MaxSteps", {"steps": 3}, object, "condition").steps == 3
    with pytest.raises(ComponentLoadError, match=f"{MOD}:GoodMuscle is not a Brain; a brain must subclass"):
        build(f"{MOD}:GoodMuscle", {}, Brain, "brain")
    with pytest.raises(ComponentLoadError, match="is abstract"):
        build("arl.api:Brain", {}, Brain, "brain")


# --------------------------------------------------------------------------- probe


def test_probe_needs_the_classes() -> None:
    with pytest.raises(ValueError, match="resolve_classes"):
        load_experiment_text(GOOD, "exp.yml", resolve_classes=False, probe=True)


def test_probe_sets_environments_up_as_their_process_would() -> None:
    text = edit("test_config_loader:GoodEnvironment", "test_config_loader:TextEnvironment")
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, "exp.yml", probe=True)
    assert [str(p) for p in caught.value.problems] == [
        "exp.yml:11:19: schedule.0.phase_0.environments.0.environment.name: probing environment 'env': "
        "TypeError: spaces of type Text are not supported yet"
    ]


def test_kind_problems_say_an_before_a_vowel() -> None:
    assert kind_problem(GoodBrain, EnvironmentBase, "environment") == (
        f"{MOD}:GoodBrain is not an Environment; an environment must subclass arl.api.Environment"
    )
    assert kind_problem(GoodEnvironment, Objective, "objective").endswith(
        "is not an Objective; an objective must subclass arl.api.Objective"
    )


# --------------------------------------------------------------------------- params


def _typed(params: str) -> str:
    return edit("test_config_loader:GoodEnvironment\n            uid: env\n            params: {sensors: 10}",
                f"test_config_loader:TypedEnvironment\n            uid: env\n            params: {params}")  # fmt: skip


def test_params_are_checked_against_the_constructor_s_annotations() -> None:
    good = "{size: 3, scale: 2, shape: [2, 3], mode: exact, table: [[1, 2]], later: anything, untyped: [x]}"
    (env,) = load_experiment_text(_typed(good), "exp.yml").phases[0].environments
    assert env.entry.params["shape"] == [2, 3]  # checked, never converted: the constructor gets the file's value
    bad = "{size: 0, scale: fast, shape: [2, x], mode: slow}"
    where = "schedule.0.phase_0.environments.0.environment.params"
    assert problems(_typed(bad)) == [
        f"exp.yml:13:28: {where}.size: TypedEnvironment parameter 'size': must be at least 1, got integer 0",
        f"exp.yml:13:38: {where}.scale: TypedEnvironment parameter 'scale': expected a number, got string 'fast'",
        f"exp.yml:13:55: {where}.shape.1: TypedEnvironment parameter 'shape': expected an integer, got string 'x'",
        f"exp.yml:13:65: {where}.mode: TypedEnvironment parameter 'mode': must be 'fast' or 'exact', got string 'slow'",
    ]


# --------------------------------------------------------------------------- limits


def test_bytes_that_are_not_utf8_are_reported_at_their_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "exp.yml"
    path.write_bytes(GOOD.encode().replace(b"seed: 42", b"seed: \xe9\xe9"))
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:3:7: the file is not UTF-8 text (byte 0xe9: invalid continuation byte); save it as UTF-8"
    ]


@pytest.mark.timeout(10)  # reading a FIFO or /dev/zero whole would block, or never end
def test_what_is_not_a_regular_file_or_is_too_large_is_refused_before_it_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    large = tmp_path / "large.yml"
    with large.open("wb") as file:
        file.truncate(11 * 1024 * 1024)  # sparse: nothing is written, the size is what counts
    expected = {
        fifo: "cannot read the file: it is a FIFO (named pipe), not a regular file",
        Path("/dev/zero"): "cannot read the file: it is a character device, not a regular file",
        tmp_path: "cannot read the file: it is a directory, not a regular file",
        large: "the file is larger than 10 MiB; an experiment file is a few kilobytes",
    }
    for path, message in expected.items():
        with pytest.raises(ConfigError) as caught:
            load_experiment(path)
        assert [str(p) for p in caught.value.problems] == [f"{path}: {message}"]


def test_nesting_deeper_than_the_stack_is_refused_with_its_place() -> None:
    deep = "uid: r\nschedule: " + "[" * 3000 + "]" * 3000 + "\n"
    assert problems(deep) == [
        "exp.yml:2:74: mappings and lists nest more than 64 deep here; an experiment needs far less"
    ]
    chain = "uid: r\na0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 1200))
    assert problems(chain) == ["exp.yml: through its aliases, the file nests mappings and lists more than 64 deep"]


def test_an_integer_of_thousands_of_digits_is_refused_before_it_is_converted() -> None:
    assert problems(edit("seed: 42", "seed: " + "9" * 5000)) == [
        "exp.yml:3:7: an integer of 5000 digits is out of range (integers are 64-bit)"
    ]


# --------------------------------------------------------------------------- the store, progress


def test_loads_from_other_runs_are_asked_of_the_store_last_and_once() -> None:
    text = edit("load: {phase: phase_0}", "load: {run: old-run, phase: phase_0}")
    text += "  - phase_2:\n      phase_config: {mode: test}\n"  # inherits phase_1's agents
    asked: list[LoadSpec] = []

    def stored(load: LoadSpec) -> str | None:
        asked.append(load)
        return "no such brain"

    old = LoadSpec("phase_0", "defender", "old-run")
    assert problems_with(text, stored=stored) == ["exp.yml:38:23: schedule.1.phase_1.agents.0.load.run: no such brain"]
    assert asked == [old]
    asked.clear()
    assert len(problems_with(edit("seed: 42", "seed: -1", text), stored=stored)) == 1
    assert asked == []  # a file with other problems never reaches the store
    assert load_experiment_text(text, "exp.yml", stored=lambda load: None).phases[2].agents[0].load == old


def problems_with(text: str, **options: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, "exp.yml", **options)
    return [str(p) for p in caught.value.problems]


@pytest.mark.usefixtures("modules")
def test_progress_is_told_before_user_code_runs() -> None:
    told: list[str] = []
    text = edit("test_config_loader:GoodBrain, params: {}", "arl_cfgtest_fine:Thing")
    with pytest.raises(ConfigError, match="is not a Brain"):
        load_experiment_text(
            text, "exp.yml", progress=lambda where, path, what: told.append(f"{where}: {path}: {what}")
        )
    assert told == ["exp.yml:16:25: schedule.0.phase_0.agents.0.brain.name: importing module 'arl_cfgtest_fine'"]
    told.clear()
    with pytest.raises(ConfigError, match="provides no sensor"):  # GoodEnvironment has none
        load_experiment_text(GOOD, "exp.yml", probe=True, progress=lambda where, path, what: told.append(what))
    assert told == ["probing environment 'env'"]  # once: phase_1 inherits the same environment


def test_a_file_nested_as_deep_as_the_check_allows_still_travels_to_the_store() -> None:
    """The file's depth limit sits below the codec's: a document that passes the check
    fits inside the RunStarted that carries it (else the store dropped the run's start)."""
    from arl import codec
    from arl.messages.store import RunStarted

    dummy = (Path(__file__).parents[2] / "experiments" / "dummy.yml").read_text()
    deepest = None
    for depth in range(1, 80):
        value = "1"
        for _ in range(depth):
            value = "{k: " + value + "}"
        try:
            deepest = load_experiment_text(f"{dummy}\nrun_config: {{x: {value}}}\n", "deep.yml", resolve_classes=False)
        except ConfigError:
            break
    else:
        pytest.fail("no depth was refused")
    assert deepest is not None
    started = RunStarted(deepest.uid, None, deepest.seed, deepest.document, "0", "host", 0.0)
    assert codec.decode(codec.encode(started)).document == deepest.document


def test_a_nul_character_in_any_string_or_key_is_refused_where_it_stands() -> None:
    """PostgreSQL stores no NUL in text or JSONB: such a file would fail its run's start there."""
    dummy = (Path(__file__).parents[2] / "experiments" / "dummy.yml").read_text()
    text = dummy + 'run_config: {note: "a\\0b", "k\\0": 1}\n'
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, "nul.yml", resolve_classes=False)
    last = len(text.splitlines())
    assert [(p.location.line, p.path) for p in caught.value.problems] == [
        (last, "run_config.note"),
        (last, "run_config.k\x00"),
    ]
    assert all("NUL character" in p.message for p in caught.value.problems)
