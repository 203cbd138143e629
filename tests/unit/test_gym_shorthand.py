"""gym:<id> and pettingzoo:<env> name environments through arl's adapters in an experiment file."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.config import load_experiment, load_experiment_text
from arl.errors import ConfigError

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
CARTPOLE = EXPERIMENTS / "cartpole.yml"
RPS = EXPERIMENTS / "rps.yml"
RPS_PARAMS = "params: {max_cycles: 20}"
ENV_UID = "            uid: cartpole\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, "exp.yml")
    return [str(p) for p in caught.value.problems]


def test_gym_ids_become_arl_s_adapter_with_the_params_for_gymnasium_make() -> None:
    text = CARTPOLE.read_text().replace(ENV_UID, ENV_UID + "            params: {max_episode_steps: 50}\n", 1)
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
    assert "name: gym:CartPole-v1" in CARTPOLE.read_text()
    assert load_experiment(CARTPOLE).phases[1].environments[0].entry.params["id"] == "CartPole-v1"


def test_a_param_the_shorthand_sets_is_reported_at_that_param() -> None:
    text = CARTPOLE.read_text().replace(ENV_UID, ENV_UID + "            params: {id: Acrobot-v1}\n", 1)
    assert problems(text) == [
        "exp.yml:12:22: schedule.0.train.environments.0.environment.params.id: 'id' is given by the name "
        "'gym:CartPole-v1' already; leave it out here (or name 'arl.gym:GymEnvironment' and give 'id' in params)"
    ]
    text = RPS.read_text().replace(RPS_PARAMS, "params: {env: arl.examples.tictactoe}")
    assert problems(text)[0].startswith(
        "exp.yml:19:22: schedule.0.train.environments.0.environment.params.env: 'env' is given by the name "
        "'pettingzoo:arl.examples.rps' already"
    )


def test_the_adapter_checks_its_params_however_it_is_named() -> None:
    text = CARTPOLE.read_text().replace("gym:CartPole-v1", "arl.gym:GymEnvironment")
    text = text.replace(ENV_UID, ENV_UID + "            params: {id: CartPol-v1}\n", 1)
    (problem,) = problems(text)
    assert "Gymnasium has no environment 'CartPol-v1'; did you mean 'CartPole-v1'" in problem


def test_a_pettingzoo_shorthand_s_params_and_api_are_checked() -> None:
    text = RPS.read_text().replace(RPS_PARAMS, "params: {max_cycles: 20, apii: aec}")
    assert problems(text) == [
        "exp.yml:17:19: schedule.0.train.environments.0.environment.name: parallel_env takes no parameter 'apii' "
        "(it takes 'max_cycles', 'first_to'); params other than 'api' and 'wrappers' go to "
        "arl.examples.rps:parallel_env"
    ]
    text = RPS.read_text().replace("pettingzoo:arl.examples.rps", "pettingzoo:arl.examples.tictactoe")
    text = text.replace(RPS_PARAMS, "params: {api: parallel}")
    assert problems(text) == [
        "exp.yml:17:19: schedule.0.train.environments.0.environment.name: module 'arl.examples.tictactoe' has no "
        "'parallel_env' to build a PettingZoo parallel environment with"
    ]
