"""The experiment-file loader: good files become specs; broken ones report every mistake
once, as ``file:line:col: path: message``, and nothing in the file is ever executed."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

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
    simulation = SimulationSpec("vanilla", (ClassRef("arl.conditions:MaxSteps", {"steps": 10}),))
    phase0 = PhaseSpec("phase_0", 0, "train", 2, 1, 50, (env,), (agent0,), simulation)
    assert isinstance(spec, RunSpec)
    assert (spec.uid, spec.experiment_uid, spec.seed, spec.version) == ("dummy-run", "dummy", 42, 1)
    assert spec.phases[0] == phase0
    assert spec.phases[0].train
    assert spec.source == GOOD
    with pytest.raises(AttributeError):
        spec.uid = "other"  # type: ignore[misc]


def test_later_phase_inherits_sections_and_merges_phase_config() -> None:
    phase1 = load_experiment_text(GOOD, "exp.yml").phases[1]
    assert (phase1.name, phase1.index, phase1.mode, phase1.train) == ("phase_1", 1, "test", False)
    assert (phase1.episodes, phase1.workers, phase1.max_steps) == (2, 1, 50)  # from phase_0
    assert phase1.environments == (EnvironmentSpec("env", ref("GoodEnvironment", sensors=10)),)
    assert phase1.simulation.controller == "vanilla"
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


def test_an_alias_bomb_is_refused() -> None:
    lines = ["uid: r", "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert problems("\n".join(lines) + "\n") == [
        "exp.yml: the file expands to more than 1000000 values through its aliases"
    ]


# --------------------------------------------------------------------------- broken files

P0 = "schedule.0.phase_0"
A0 = f"{P0}.agents.0"
BROKEN: list[tuple[str, str, list[str]]] = [
    (
        "yaml-syntax",
        edit("uid: dummy-run", "uid: dummy: run"),
        ["exp.yml:1:11: YAML syntax error: mapping values are not allowed here"],
    ),
    (
        "yaml-duplicate-key",
        edit("seed: 42\n", "seed: 42\nseed: 43\n"),
        [
            "exp.yml:4:1: YAML syntax error: while constructing a mapping: found duplicate key "
            '"seed" with value "43" (original value: "42")'
        ],
    ),
    (
        "empty-file",
        "# nothing here\n",
        ["exp.yml:1:1: expected a mapping with 'uid' and 'schedule', got an empty file"],
    ),
    (
        "control-character",
        edit("uid: dummy-run", "uid: dummy\x07run"),
        ["exp.yml:1:11: YAML syntax error: unacceptable character #x0007: special characters are not allowed"],
    ),
    (
        "unknown-key",
        edit(
            "          muscle: {name: test_config_loader.GoodMuscle",
            "          muscel: {name: test_config_loader.GoodMuscle",
        ),
        [f"exp.yml:17:11: {A0}.muscel: unknown key 'muscel'; did you mean 'muscle'?"],
    ),
    (
        "unknown-top-level-key",
        edit("seed: 42", "sed: 42"),
        ["exp.yml:3:1: sed: unknown key 'sed'; did you mean 'seed'?"],
    ),
    (
        "missing-key",
        edit("          brain: {name: test_config_loader:GoodBrain, params: {}}\n", ""),
        [f"exp.yml:15:11: {A0}: missing required key 'brain'"],
    ),
    (
        "missing-uid",
        edit("uid: dummy-run\n", ""),
        ["exp.yml:1:1: missing required key 'uid'"],
    ),
    (
        "wrong-type",
        edit("episodes: 2", 'episodes: "2"'),
        [f"exp.yml:27:19: {P0}.phase_config.episodes: expected an integer, got string '2'"],
    ),
    (
        "empty-value",
        edit("uid: dummy-run", "uid:"),
        ["exp.yml:1:1: uid: expected a string, got null"],
    ),
    (
        "out-of-range",
        edit("workers: 1", "workers: 0"),
        [f"exp.yml:28:18: {P0}.phase_config.workers: must be at least 1, got integer 0"],
    ),
    (
        "bad-mode",
        edit("mode: train", "mode: trian"),
        [
            f"exp.yml:26:15: {P0}.phase_config.mode: must be 'train' or 'test', "
            "got string 'trian'; did you mean 'train'?"
        ],
    ),
    (
        "unknown-module",
        edit("test_config_loader:GoodBrain, params", "no_such_pkg.brains:GoodBrain, params"),
        [
            f"exp.yml:16:25: {A0}.brain.name: module 'no_such_pkg.brains' not found "
            "(no module named 'no_such_pkg'); is it installed, or on the Python path?"
        ],
    ),
    (
        "unknown-attribute",
        edit("test_config_loader:GoodBrain, params", "test_config_loader:GoodBrian, params"),
        [
            f"exp.yml:16:25: {A0}.brain.name: module 'test_config_loader' has no attribute "
            "'GoodBrian'; did you mean 'GoodBrain'?"
        ],
    ),
    (
        "wrong-base-class",
        edit("test_config_loader:GoodBrain, params", "test_config_loader:GoodMuscle, params"),
        [
            f"exp.yml:16:25: {A0}.brain.name: test_config_loader:GoodMuscle is not a Brain; "
            "a brain must subclass arl.api.Brain"
        ],
    ),
    (
        "abstract-class",
        edit(
            "test_config_loader:GoodObjective}\n          sensors: [env.s0, env.s1]",
            "arl.api:Objective}\n          sensors: [env.s0, env.s1]",
        ),
        [f"exp.yml:18:29: {A0}.objective.name: arl.api:Objective is abstract: it does not implement evaluate"],
    ),
    (
        "wrong-condition-class",
        edit("arl.conditions:MaxSteps", "test_config_loader:GoodObjective"),
        [
            f"exp.yml:24:20: {P0}.simulation.conditions.0.name: test_config_loader:GoodObjective "
            "is not a TerminationCondition; a termination condition must subclass "
            "arl.conditions.TerminationCondition"
        ],
    ),
    (
        "bad-param",
        edit("params: {sensors: 10}", "params: {sensor: 10}"),
        [
            f"exp.yml:13:22: {P0}.environments.0.environment.params.sensor: GoodEnvironment "
            "takes no parameter 'sensor'; did you mean 'sensors'?"
        ],
    ),
    (
        "missing-param",
        edit("params: {steps: 10}", "params: {}"),
        [f"exp.yml:24:53: {P0}.simulation.conditions.0.params: MaxSteps needs parameter(s) 'steps'"],
    ),
    (
        "duplicate-env-uid",
        edit(
            "            params: {sensors: 10}\n",
            "            params: {sensors: 10}\n"
            "        - environment: {name: test_config_loader:GoodEnvironment, uid: env}\n",
        ),
        [f"exp.yml:14:72: {P0}.environments.1.environment.uid: duplicate environment uid 'env' (first at line 12)"],
    ),
    (
        "duplicate-agent-name",
        edit(
            "          load: {phase: phase_0}\n",
            "          load: {phase: phase_0}\n"
            "        - name: defender\n"
            "          brain: {name: test_config_loader:GoodBrain}\n"
            "          muscle: {name: test_config_loader:GoodMuscle}\n"
            "          objective: {name: test_config_loader:GoodObjective}\n",
        ),
        ["exp.yml:39:17: schedule.1.phase_1.agents.1.name: duplicate agent name 'defender' (first at line 32)"],
    ),
    (
        "sensor-of-unknown-environment",
        edit("sensors: [env.s0, env.s1]", "sensors: [env.s0, emv.s1]"),
        [
            f"exp.yml:19:29: {A0}.sensors.1: sensor 'emv.s1' names environment 'emv', which is "
            "not in this phase (environments: 'env'); did you mean 'env.s1'?"
        ],
    ),
    (
        "unqualified-actuator",
        edit("actuators: [env.a0]\n      simulation", "actuators: [a0]\n      simulation"),
        [f"exp.yml:20:23: {A0}.actuators.0: actuator id 'a0' must be '<environment uid>.<actuator id>'"],
    ),
    (
        "load-from-a-later-phase",
        edit(
            "actuators: [env.a0]\n      simulation",
            "actuators: [env.a0]\n          load: {phase: phase_1}\n      simulation",
        ),
        [
            f"exp.yml:21:25: {A0}.load.phase: phase 'phase_1' does not come before phase "
            "'phase_0'; load from an earlier phase"
        ],
    ),
    (
        "load-from-an-unknown-phase",
        edit("load: {phase: phase_0}", "load: {phase: phase0}"),
        [
            "exp.yml:38:25: schedule.1.phase_1.agents.0.load.phase: no phase 'phase0' before "
            "this one; did you mean 'phase_0'? (give 'run' to load from another run)"
        ],
    ),
    (
        "load-from-a-test-phase",
        edit("        mode: train\n", "        mode: test\n"),
        [
            "exp.yml:38:25: schedule.1.phase_1.agents.0.load.phase: phase 'phase_0' is a test phase and "
            "saves no brain; load from a train phase"
        ],
    ),
    (
        "load-an-unknown-agent",
        edit("load: {phase: phase_0}", "load: {phase: phase_0, agent: defnder}"),
        [
            "exp.yml:38:41: schedule.1.phase_1.agents.0.load.agent: phase 'phase_0' has no "
            "agent 'defnder'; did you mean 'defender'?"
        ],
    ),
    (
        "palaestrai-simulation",
        edit("name: vanilla", "name: palaestrai.simulation:VanillaSimController"),
        [
            f"exp.yml:22:15: {P0}.simulation.name: unknown simulation "
            "'palaestrai.simulation:VanillaSimController'; did you mean 'vanilla'? "
            "(arl's simulations are 'vanilla' and 'taking_turns')"
        ],
    ),
    (
        "palaestrai-condition",
        edit(
            "arl.conditions:MaxSteps, params: {steps: 10}",
            "palaestrai.simulation:VanillaSimControllerTerminationCondition",
        ),
        [
            f"exp.yml:24:20: {P0}.simulation.conditions.0.name: module 'palaestrai.simulation' "
            "not found (no module named 'palaestrai'); is it installed, or on the Python path?; "
            "palaestrAI's classes do not run in arl: name a subclass of "
            "arl.conditions.TerminationCondition such as 'arl.conditions:EnvironmentDone' or "
            "'arl.conditions:MaxSteps'"
        ],
    ),
    (
        "palaestrai-version",
        edit("version: 1", "version: 3.4.1"),
        [
            "exp.yml:4:10: version: unsupported version string '3.4.1'; arl reads version 1 "
            "(palaestrAI's version numbers do not apply: write 1 or leave it out)"
        ],
    ),
    (
        "worker-and-workers",
        edit("workers: 1", "workers: 1\n        worker: 1"),
        [f"exp.yml:29:9: {P0}.phase_config.worker: give 'workers' or palaestrAI's 'worker', not both"],
    ),
    (
        "phase-not-indented",
        edit(
            "      phase_config: {mode: test}",
            "    phase_config: {mode: test}",
            edit("  - phase_1:\n      agents:", "  - phase_1:\n    agents:"),
        ),
        [
            "exp.yml:30:5: schedule.1: a schedule entry must be a mapping with one key, the "
            "phase's name ('- phase_0: ...'), got keys 'phase_1', 'agents', 'phase_config'; are "
            "the phase's keys indented under its name?"
        ],
    ),
    (
        "empty-schedule",
        GOOD[: GOOD.index("schedule:")] + "schedule: []\n",
        ["exp.yml:7:11: schedule: must not be empty"],
    ),
    (
        "non-string-key",
        edit("params: {sensors: 10}", "params: {1: 10}"),
        [f"exp.yml:13:22: {P0}.environments.0.environment.params.1: keys must be strings, got integer 1"],
    ),
    (
        "custom-tag",
        edit("uid: dummy-run", "uid: !secret dummy-run"),
        [
            "exp.yml:1:6: uid: tag '!secret' is not allowed: experiment files hold plain "
            "mappings, lists, strings, numbers, booleans and null, and nothing is constructed "
            "from tags"
        ],
    ),
    (
        "no-way-to-end-an-episode",
        edit(
            CONDITIONS,
            "        conditions: []\n",
        ).replace("        max_steps: 50\n", ""),
        [
            f"exp.yml:23:21: {P0}.simulation.conditions: no termination conditions and no "
            "phase_config.max_steps: episodes would never end"
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_file_reports_exactly(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_three_mistakes_are_three_problems() -> None:
    text = edit(
        "muscle: {name: test_config_loader.GoodMuscle",
        "muscel: {name: test_config_loader.GoodMuscle",
    )
    text = edit("episodes: 2", "episodes: 0", text)
    text = edit("name: vanilla", "name: VanillaSimController", text)
    # phase_1 inherits the agent-free sections and phase_config with two of the mistakes:
    # still reported once each, where the text is.
    found = problems(text)
    assert found == [
        f"exp.yml:17:11: {A0}.muscel: unknown key 'muscel'; did you mean 'muscle'?",
        f"exp.yml:22:15: {P0}.simulation.name: unknown simulation 'VanillaSimController'; "
        "did you mean 'vanilla'? (arl's simulations are 'vanilla' and 'taking_turns')",
        f"exp.yml:27:19: {P0}.phase_config.episodes: must be at least 1, got integer 0",
    ]


def test_inherited_text_is_reported_where_it_is_written() -> None:
    text = edit(
        "      phase_config: {mode: test}\n",
        "      phase_config: {mode: test}\n"
        "      environments:\n"
        "        - environment: {name: test_config_loader:GoodEnvironment, uid: grid}\n",
    )
    text = edit("          load: {phase: phase_0}\n", "", text)
    text = edit("          sensors: [env.s0]\n          actuators: [env.a0]\n", "", text)
    # phase_1 now has its own agents (no sensors) but drops 'env', so the inherited...
    text = edit(
        "  - phase_1:\n      agents:\n        - name: defender\n"
        "          brain: {name: test_config_loader:GoodBrain}\n"
        "          muscle: {name: test_config_loader:GoodMuscle}\n"
        "          objective: {name: test_config_loader:GoodObjective}\n",
        "  - phase_1:\n",
        text,
    )
    # ...agents of phase_0 now refer to an environment phase_1 does not have.
    assert problems(text) == [
        f"exp.yml:19:21: {A0}.sensors.0: sensor 'env.s0' names environment 'env', which is not "
        "in this phase (environments: 'grid') (in phase 'phase_1', which inherits this from "
        "phase 'phase_0')",
        f"exp.yml:19:29: {A0}.sensors.1: sensor 'env.s1' names environment 'env', which is not "
        "in this phase (environments: 'grid') (in phase 'phase_1', which inherits this from "
        "phase 'phase_0')",
        f"exp.yml:20:23: {A0}.actuators.0: actuator 'env.a0' names environment 'env', which is "
        "not in this phase (environments: 'grid') (in phase 'phase_1', which inherits this from "
        "phase 'phase_0')",
    ]


def test_python_tags_are_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    text = edit("uid: dummy-run", f'uid: !!python/object/apply:os.system ["touch {marker}"]')
    assert problems(text) == [
        "exp.yml:1:6: uid: tag '!!python/object/apply:os.system' is not allowed: experiment "
        "files hold plain mappings, lists, strings, numbers, booleans and null, and nothing is "
        "constructed from tags"
    ]
    assert not marker.exists()


# --------------------------------------------------------------------------- import_class


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "arl_cfgtest_needs_dep.py").write_text("import arl_cfgtest_absent_dep\n")
    (tmp_path / "arl_cfgtest_raises.py").write_text("raise RuntimeError('no GPU here')\n")
    (tmp_path / "arl_cfgtest_fine.py").write_text("class Thing:\n    pass\n\nvalue = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("arl_cfgtest_needs_dep", "arl_cfgtest_raises", "arl_cfgtest_fine"):
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
            "arl_cfgtest_fine:Thin",
            "module 'arl_cfgtest_fine' has no attribute 'Thin'; did you mean 'Thing'?",
        ),
        ("arl_cfgtest_fine:value", "'arl_cfgtest_fine:value' is not a class but a int object"),
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
