"""Which processes a run gets for each layout of the file's ``processes`` key."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.config.loader import load_experiment_text
from arl.config.spec import RunSpec
from arl.governor.plan import plan_children
from arl.messages.control import SetupAgent
from experiment_files import DUMMY_AGENT as AGENT
from experiment_files import three_agents


def _spec(tmp_path: Path, processes: str, workers: int = 2) -> RunSpec:
    agents = "".join(AGENT.format(name=name) for name in ("red", "blue", "green"))
    text = f"""uid: plan
schedule:
  - p:
      environments:
        - environment: {{name: arl.dummy:DummyEnvironment, uid: env}}
        - environment: {{name: arl.dummy:DummyEnvironment, uid: other}}
      agents:{agents}
      simulation: {{name: vanilla}}
      phase_config: {{workers: {workers}}}
{processes}"""
    return load_experiment_text(text, "plan.yml")


def test_by_default_environments_live_in_their_controllers_and_agents_share_one_process(tmp_path: Path) -> None:
    plan = plan_children(_spec(tmp_path, ""), "/run", "ipc:///run/broker", "ipc:///run/store")
    assert plan.environments == ()
    assert [c.label for c in plan.all] == ["agent:red+blue+green", "controller:0", "controller:1"]
    assert plan.agent_hosts == {"red": "agents.0", "blue": "agents.0", "green": "agents.0"}
    assert plan.env_host("other", 1) == "controller.1"
    assert plan.env_hosts(["env", "other"], 1) == {"env": "", "other": ""}
    assert plan.layout() == {
        "environments": "in_controller", "agent_processes": [["red", "blue", "green"]], "controllers": 2, "processes": 3
    }  # fmt: skip


@pytest.mark.parametrize(("agents", "groups"), [(2, [["red", "green"], ["blue"]]), (9, [["red"], ["blue"], ["green"]])])
def test_own_environments_and_agents_dealt_to_processes(tmp_path: Path, agents: int, groups: list[list[str]]) -> None:
    spec = _spec(tmp_path, f"processes: {{environments: own, agents: {agents}}}\n")
    plan = plan_children(spec, "/run", "ipc:///run/broker", "ipc:///run/store")
    assert [c.label for c in plan.environments] == ["environment:env.0", "environment:other.0",
                                                    "environment:env.1", "environment:other.1"]  # fmt: skip
    assert [c.args["direct"] for c in plan.agents] == [f"ipc:///run/a{i}" for i in range(len(groups))]
    assert plan.layout()["agent_processes"] == groups
    assert plan.env_host("other", 1) == "env.other.1"
    assert plan.env_hosts(["env"], 0) == {"env": "env.env.0"}


def test_a_central_agent_gets_a_learner_and_its_inference_servers_and_the_others_share_as_before(
    tmp_path: Path,
) -> None:
    text = _spec_text(
        blue="          learner: {max_train_frequency: 10}\n          inference: {servers: 3}\n",
        workers="4, envs_per_worker: 2",
    )
    spec = load_experiment_text(text, "plan.yml")
    plan = plan_children(spec, "/run", "ipc:///run/broker", "ipc:///run/store")
    assert [c.label for c in plan.all] == [
        "learner:blue", "agent:red+green", "agent:blue#0", "agent:blue#1", "agent:blue#2",
        "controller:0", "controller:1", "controller:2", "controller:3",
    ]  # fmt: skip
    central = plan.central["blue"]
    assert central.learner == "learner.blue"
    assert plan.learners[0].args["experiences"] == central.experiences == "ipc:///run/l0"
    assert central.weights == "ipc:///run/w0"
    # Controller w is served by server w % 3; its two copies (workers 2w, 2w + 1) with it.
    assert [plan.agent_host("blue", w) for w in range(4)] == ["agents.1", "agents.2", "agents.3", "agents.1"]
    assert plan.agent_host("red", 3) == "agents.0"
    assert [central.serves(k, 4, 2) for k in range(3)] == [[0, 1, 6, 7], [2, 3], [4, 5]]
    assert plan.layout()["central"] == {"blue": {"inference_servers": 3}}
    assert spec.phases[0].actors == 8


def _spec_text(blue: str = "", workers: str = "2", processes: str = "") -> str:
    return three_agents("plan", blue=blue, workers=workers, more=processes)


def test_envs_per_worker_with_environments_in_their_own_processes_is_refused_where_it_is_set() -> None:
    from arl.errors import ConfigError

    text = _spec_text(workers="2, envs_per_worker: 3", processes="processes: {environments: own}\n")
    with pytest.raises(ConfigError) as refused:
        load_experiment_text(text, "plan.yml")
    line = next(i for i, text_line in enumerate(text.splitlines(), 1) if "envs_per_worker" in text_line)
    assert f"plan.yml:{line}:" in str(refused.value)
    assert "envs_per_worker" in str(refused.value)
    assert "in_controller" in str(refused.value)


def test_a_central_agent_is_set_up_learner_first_then_each_inference_server_with_its_workers() -> None:
    text = _spec_text(blue="          inference: {servers: 2, batchsize: 4}\n", workers="3, envs_per_worker: 2")
    spec = load_experiment_text(text, "plan.yml")
    plan = plan_children(spec, "/run", "ipc:///run/broker", "ipc:///run/store")
    phase = spec.phases[0]
    setups = {a.name: SetupAgent(0, a.name, [], [], [], [], [], 6, True, 1, None) for a in phase.agents}
    first, then = plan.agent_setups(phase, setups, wait=48.0)
    assert [(service, s.name, s.role) for service, s in first] == [
        ("agents.0", "red", "all"), ("learner.blue", "blue", "learner"), ("agents.0", "green", "all")
    ]  # fmt: skip
    assert first[1][1].options["wait"] == 48.0
    assert [(service, s.role, s.serves, s.weights) for service, s in then] == [
        ("agents.1", "inference", [0, 1, 4, 5], "ipc:///run/w0"),
        ("agents.2", "inference", [2, 3], "ipc:///run/w0"),
    ]
    options = [s.options for _, s in then]
    assert [(o["server"], o["servers"], o["clients"], o["batchsize"], o["wait"]) for o in options] == [
        (0, 2, 2, 4, 48.0), (1, 2, 1, 4, 48.0)
    ]  # fmt: skip


def test_bad_central_settings_are_reported_where_they_are_in_words() -> None:
    from arl.errors import ConfigError

    text = _spec_text(blue="          inference: {servers: 0, device: gpu}\n          learner: {broadcast_period: 0}\n")
    with pytest.raises(ConfigError) as refused:
        load_experiment_text(text, "plan.yml")
    said = str(refused.value)
    assert "inference.servers: must be at least 1, got integer 0" in said
    assert "inference.device: must be a torch device: cpu, cuda, cuda:<n> or mps, got string 'gpu'" in said
    assert "learner.broadcast_period: must be more than 0" in said
    assert "plan.yml:" in said
