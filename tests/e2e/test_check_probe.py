"""``arl-run check --probe``: environments built and reset once, ids checked against them."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]
ROOT = Path(__file__).resolve().parents[2]

PROBED = """\
uid: probe
schedule:
  - p:
      environments:
        - environment: {name: arl.dummy:DummyEnvironment, uid: env, params: {sensors: 2, actuators: 2}}
        - environment: {name: arl_test_components:UnresettableEnvironment, uid: down}
        - environment: {name: gym:CartPole-v1, uid: cart}
      agents:
        - name: a
          brain: {name: arl.dummy:DummyBrain}
          muscle: {name: arl.dummy:DummyMuscle}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [env.s0, env.s5, cart.obs, cart.observation]
          actuators: [env.a1, env.b1, cart.action]
      simulation: {name: vanilla}
  - q:
      phase_config: {mode: test}
"""


def test_probe_reports_ids_no_environment_provides_and_environments_that_fail(arl_run) -> None:
    path = arl_run.tmp / "probe.yml"
    path.write_text(PROBED)
    assert arl_run.run("check", str(path)).returncode == 0  # without --probe nothing is built
    done = arl_run.run("check", "--probe", str(path))
    assert done.returncode == 2
    # Each once: phase q inherits the same text and is not reported again.
    assert done.stderr.splitlines() == [
        f"error: {path}:6:31: schedule.0.p.environments.1.environment.name: probing environment 'down': "
        "ConnectionError: the simulator at localhost:9999 does not answer",
        f"error: {path}:13:29: schedule.0.p.agents.0.sensors.1: environment 'env' provides no sensor 's5' "
        "(its sensors: 's0', 's1')",
        f"error: {path}:13:47: schedule.0.p.agents.0.sensors.3: environment 'cart' provides no sensor "
        "'observation' (its sensors: 'obs')",
        f"error: {path}:14:31: schedule.0.p.agents.0.actuators.1: environment 'env' provides no actuator 'b1' "
        "(its actuators: 'a0', 'a1')",
        "4 problems found; nothing was run.",
    ]
    assert not arl_run.db.exists()


def test_every_example_passes_the_probe(arl_run) -> None:
    examples = sorted(str(p) for p in (ROOT / "experiments").glob("*.yml"))
    assert len(examples) >= 5
    done = arl_run.run("check", "--probe", *examples)
    assert done.returncode == 0, done.stderr
    assert f"{len(examples)} files checked" in done.stdout
