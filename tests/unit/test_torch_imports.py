"""torch (a second of CPU and 250 MB on import) is loaded only by the processes that host
a torch component: never by ``import arl``, the CLI, the fork server's preload (which
every governor, conductor and controller inherits), or the check of a file naming
arl's agents. Each check runs in a fresh interpreter, as imports are process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def imports_torch(code: str) -> bool:
    code = textwrap.dedent(code) + "\nimport sys\nprint('torch' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] == "True"


def test_arl_its_cli_and_every_module_the_fork_server_preloads_leave_torch_alone() -> None:
    assert not imports_torch(
        """
        import importlib
        import arl, arl.api, arl.cli, arl.preflight
        from arl.proc.forkserver import PRELOAD
        for name in PRELOAD:
            importlib.import_module(name)
        """
    )


@pytest.mark.parametrize("agent", ["dqn:DQN", "ppo:PPO"])
def test_arl_agents_classes_import_torch_only_when_a_brain_is_set_up(agent: str) -> None:
    module, prefix = agent.split(":")
    check = f"""
        import numpy as np
        from gymnasium import spaces
        import arl.agents
        from arl.agents.{module} import {prefix}Brain, {prefix}Muscle
        from arl.api import ActuatorInfo, SensorInfo
        sensors = [SensorInfo("env.obs", spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32))]
        actuators = [ActuatorInfo("env.action", spaces.Discrete(2))]
        muscle = {prefix}Muscle()
        muscle.setup(sensors, actuators, 0)
        # On the CPU a muscle acts in numpy: weights as a brain sends them, a batch of two.
        layer = "pi.0" if "{prefix}" == "PPO" else "0"
        weights = {{f"{{layer}}.weight": np.ones((2, 4), np.float32), f"{{layer}}.bias": np.zeros(2, np.float32)}}
        muscle.update({{"version": 1, "activation": "tanh", "weights": weights}})
        obs = {{"env.obs": np.zeros(4, np.float32)}}
        assert len(muscle.act_batch([(muscle, obs), (muscle, obs)])) == 2
        brain = {prefix}Brain()  # what the check does: import the classes, check their params
        """
    assert not imports_torch(check)
    assert imports_torch(check + "brain.setup(sensors, actuators, 0)\n")
