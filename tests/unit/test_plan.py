"""Which processes a run gets for each layout of the file's ``processes`` key."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.config.loader import load_experiment_text
from arl.config.spec import RunSpec
from arl.governor.plan import plan_children

AGENT = """
        - name: {name}
          brain: {{name: arl.dummy:DummyBrain}}
          muscle: {{name: arl.dummy:DummyMuscle}}
          objective: {{name: arl.dummy:DummyObjective}}
          sensors: [env.s0]
          actuators: [env.a0]"""


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
