"""gym:<id> names a Gymnasium environment in an experiment file."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.config import load_experiment, load_experiment_text
from arl.errors import ConfigError

CARTPOLE = Path(__file__).resolve().parents[2] / "experiments" / "cartpole.yml"


def test_gym_ids_become_arl_s_adapter_with_the_params_for_gymnasium_make() -> None:
    env_uid = "            uid: cartpole\n"
    text = CARTPOLE.read_text().replace(env_uid, env_uid + "            params: {max_episode_steps: 50}\n", 1)
    (env,) = load_experiment_text(text, "cartpole.yml").phases[0].environments
    assert env.entry.entry_point == "arl.gym:GymEnvironment"
    assert env.entry.params == {"id": "CartPole-v1", "max_episode_steps": 50}


def test_an_unknown_gym_id_is_reported_with_the_nearest_ones() -> None:
    text = CARTPOLE.read_text().replace("gym:CartPole-v1", "gym:CartPol-v1")
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, "cartpole.yml")
    (problem,) = caught.value.problems
    assert str(problem).startswith(
        "cartpole.yml:10:19: schedule.0.train.environments.0.environment.name: "
        "Gymnasium has no environment 'CartPol-v1'; did you mean 'CartPole-v1'"
    )


def test_the_shipped_example_uses_the_shorthand() -> None:
    assert load_experiment(CARTPOLE).phases[1].environments[0].entry.params["id"] == "CartPole-v1"
