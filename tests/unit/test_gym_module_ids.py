"""Gymnasium's own id syntax, ``module:Env-v0`` (the module registers the id when it is
imported), as a file's ``gym:`` name takes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.gym import GymEnvironment

MODULE = """\
import gymnasium

gymnasium.register(id="ArlBesideCartPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv")
"""


def test_an_id_of_another_module_is_taken_and_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "arl_beside_envs.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert GymEnvironment.problem(id="arl_beside_envs:ArlBesideCartPole-v0") is None
    env = GymEnvironment(id="arl_beside_envs:ArlBesideCartPole-v0")
    try:
        assert [s.id for s in env.sensors()] == ["obs"]
        assert set(env.reset(seed=1)) == {"obs"}
    finally:
        env.close()


def test_an_id_whose_module_is_missing_or_registers_no_such_env_is_refused_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = GymEnvironment.problem(id="arl_no_such_module:Thing-v0")
    assert problem is not None
    assert "names module 'arl_no_such_module', which cannot be imported" in problem
    (tmp_path / "arl_beside_envs2.py").write_text(MODULE.replace("ArlBesideCartPole", "ArlBesideTwo"))
    monkeypatch.syspath_prepend(str(tmp_path))
    problem = GymEnvironment.problem(id="arl_beside_envs2:ArlBesideTow-v0")
    assert problem is not None
    assert "did you mean 'ArlBesideTwo-v0'" in problem
