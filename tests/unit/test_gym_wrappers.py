"""Wrappers named in an environment's params (``wrappers: [...]``): checked before
anything runs, each problem at its line, applied in order (the first innermost), and
kept in the environment's state."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

from arl.config import load_experiment_text
from arl.errors import ConfigError
from arl.gym import GymEnvironment, _wrappers
from arl.pettingzoo import PettingZooEnvironment

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
ENV_UID = "            uid: cartpole\n"
AT = "schedule.0.train.environments.0.environment.params.wrappers"


def problems_of(wrappers: str) -> list[str]:
    text = (EXPERIMENTS / "cartpole.yml").read_text().replace(ENV_UID, ENV_UID + wrappers, 1)
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, "exp.yml")
    return [str(p) for p in caught.value.problems]


def test_each_wrong_wrapper_is_reported_at_its_line_with_the_nearest_names() -> None:
    found = problems_of(
        "            params:\n"
        "              wrappers:\n"
        "                - {TimeLimt: {max_episode_steps: 50}}\n"
        "                - NormalizeRewrd\n"
        "                - {ClipReward: {min_rewrd: -1}}\n"
        "                - {TimeLimit: {max_episode_steps: fifty}}\n"
        "                - arl.dummy:DummyEnvironment\n"
        "                - {TimeLimit: 5}\n"
    )
    assert found == [
        f"exp.yml:14:20: {AT}.0.TimeLimt: gymnasium.wrappers has no wrapper 'TimeLimt'; did you mean 'TimeLimit'? "
        "(a wrapper of your own: 'module:Class')",
        f"exp.yml:15:19: {AT}.1: gymnasium.wrappers has no wrapper 'NormalizeRewrd'; did you mean 'NormalizeReward' "
        "or 'NormalizeObservation'? (a wrapper of your own: 'module:Class')",
        f"exp.yml:16:33: {AT}.2.ClipReward.min_rewrd: ClipReward takes no parameter 'min_rewrd'; "
        "did you mean 'min_reward'?",
        f"exp.yml:17:51: {AT}.3.TimeLimit.max_episode_steps: TimeLimit parameter 'max_episode_steps': "
        "expected an integer, got string 'fifty'",
        f"exp.yml:18:19: {AT}.4: arl.dummy:DummyEnvironment is not a Gymnasium wrapper: a wrapper must subclass "
        "gymnasium.core.Wrapper",
        f"exp.yml:19:31: {AT}.5.TimeLimit: wrapper TimeLimit's params must be a mapping (or null), not 5",
    ]


def test_wrappers_by_name_or_reference_are_applied_in_order_the_first_innermost() -> None:
    text = (EXPERIMENTS / "cartpole.yml").read_text()
    wrappers = "[{TimeLimit: {max_episode_steps: 5}}, NormalizeReward, gymnasium.wrappers:RecordEpisodeStatistics]"
    text = text.replace(ENV_UID, ENV_UID + f"            params: {{wrappers: {wrappers}}}\n", 1)
    params = load_experiment_text(text, "exp.yml", resolve_classes=True).phases[0].environments[0].entry.params
    env = GymEnvironment(**params)
    try:
        names = [type(w).__name__ for w in _wrappers(env.env)]  # outermost first
        assert names[:3] == ["RecordEpisodeStatistics", "NormalizeReward", "TimeLimit"]
        env.reset(seed=1)
        ends = [env.step({"action": step % 2}) for step in range(5)]
        assert [r.truncated for r in ends] == [False] * 4 + [True]  # the named TimeLimit's 5 steps
        assert ends[-1].info is not None
        assert ends[-1].info["episode"]["l"] == 5
    finally:
        env.close()


def _rewards(env: GymEnvironment, steps: int) -> list[float]:
    return [env.step({"action": step % 2}).rewards["reward"] for step in range(steps)]


def test_a_named_wrapper_s_state_goes_with_the_environment_s(tmp_path: Path) -> None:
    """NormalizeReward's running statistics are no counter: without them a loaded
    environment's rewards would differ from the saving one's."""
    params: dict[str, Any] = {"id": "CartPole-v1", "wrappers": ["NormalizeReward", "RecordEpisodeStatistics"]}
    saving, loading = GymEnvironment(**params), GymEnvironment(**params)
    saving.reset(seed=3)
    _rewards(saving, 6)
    saving.save_state(tmp_path)
    expected = _rewards(saving, 4)
    loading.reset(seed=99)
    _rewards(loading, 2)
    loading.load_state(tmp_path)
    assert _rewards(loading, 4) == expected
    assert len(set(expected)) > 1  # (normalised: not CartPole's constant 1.0)
    saving.close()
    loading.close()


def test_pettingzoo_wrappers_are_checked_for_the_environment_s_api_and_applied() -> None:
    rps_params = "params: {max_cycles: 20}"
    text = (EXPERIMENTS / "rps.yml").read_text()
    wrapped = text.replace(rps_params, "params: {max_cycles: 20, wrappers: [OrderEnforcingWrapper]}")
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(wrapped, "x.yml")
    (problem,) = caught.value.problems
    assert str(problem).endswith(
        "environment.params.wrappers.0: OrderEnforcingWrapper does not wrap a parallel environment "
        "(it subclasses no BaseParallelWrapper)"
    )
    env = PettingZooEnvironment("arl.examples.rps", wrappers=[{"MultiEpisodeParallelEnv": {"num_episodes": 2}}])
    try:
        assert type(env.env).__name__ == "MultiEpisodeParallelEnv"
        env.reset(seed=0)
        assert not env.step({f"{a}.action": 0 for a in env._agents}).terminated
    finally:
        env.close()


def test_wrappers_of_the_wrong_shape_are_refused_when_built_in_python() -> None:
    with pytest.raises(ValueError, match=r"wrappers\.0: a wrapper is a name or a mapping of one name"):
        GymEnvironment("CartPole-v1", wrappers=[3])


LAZY = """\
def __getattr__(name):  # as gymnasium.wrappers gets NumpyToTorch: importing what it needs, when asked
    raise ModuleNotFoundError("No module named 'arl_absent_dependency'", name="arl_absent_dependency")
"""


def test_what_a_wrapper_s_or_an_id_s_module_raises_is_reported_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, each ended the check with a traceback that blamed arl.gym."""
    (tmp_path / "arl_lazy_wrappers.py").write_text(LAZY)
    (tmp_path / "arl_raising_envs.py").write_text("raise RuntimeError('no licence for the simulator')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (wrapper,) = problems_of("            params: {wrappers: [arl_lazy_wrappers:Clip]}\n")
    assert wrapper == (
        f"exp.yml:12:33: {AT}.0: wrapper arl_lazy_wrappers:Clip needs module 'arl_absent_dependency', "
        "which is not installed"
    )
    text = (EXPERIMENTS / "cartpole.yml").read_text().replace("gym:CartPole-v1", "gym:arl_raising_envs:Sim-v0")
    assert _the_problem(text, "exp.yml").endswith(
        "environment.name: the Gymnasium id 'arl_raising_envs:Sim-v0' names module 'arl_raising_envs', which "
        "cannot be imported: importing module 'arl_raising_envs' raised RuntimeError: no licence for the simulator"
    )
    rps = (EXPERIMENTS / "rps.yml").read_text().replace("pettingzoo:arl.examples.rps", "pettingzoo:arl_lazy_wrappers")
    assert _the_problem(rps, "x.yml").endswith(
        "environment.name: checking pettingzoo:arl_lazy_wrappers raised ModuleNotFoundError: "
        "No module named 'arl_absent_dependency'"
    )


def _the_problem(text: str, filename: str) -> str:
    """The one problem the check of ``text`` finds, as printed."""
    with pytest.raises(ConfigError) as caught:
        load_experiment_text(text, filename)
    (problem,) = caught.value.problems
    return str(problem)


class SharedNoise(gymnasium.ObservationWrapper):  # type: ignore[type-arg]
    """Noise drawn from the environment's own generator, which it shares."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.rng: Any = None

    def observation(self, observation: Any) -> Any:
        if self.rng is None:
            self.rng = self.env.unwrapped.np_random
        return (observation + self.rng.normal(size=observation.shape)).astype(np.float32)


def _draws(env: GymEnvironment) -> list[Any]:
    """The environment drawing from its generator, then the wrapper from the same one."""
    drawn = [float(env.env.unwrapped.np_random.random())]
    return drawn + [env.step({"action": 1}).sensors["obs"].tolist() for _ in range(2)]


def test_what_wrappers_share_with_the_environment_is_still_shared_after_a_load(tmp_path: Path) -> None:
    params = {"id": "CartPole-v1", "wrappers": [f"{__name__}:SharedNoise"]}
    saving = GymEnvironment(**params)
    saving.reset(seed=3)
    saving.step({"action": 0})
    saving.save_state(tmp_path)
    expected = _draws(saving)
    old = tmp_path / "old"  # the same state as arl saved it before: the environment and the wrappers apart
    old.mkdir()
    unwrapped, kept = pickle.loads((tmp_path / "environment.pickle").read_bytes())
    (old / "unwrapped.pickle").write_bytes(pickle.dumps(unwrapped))
    (old / "wrappers.pickle").write_bytes(pickle.dumps(kept))
    (old / "gym_state.json").write_bytes((tmp_path / "gym_state.json").read_bytes())
    for folder in (tmp_path, old):
        loading = GymEnvironment(**params)
        loading.reset(seed=99)
        loading.step({"action": 0})
        loading.load_state(folder)
        if folder == tmp_path:
            assert loading.env.rng is loading.env.unwrapped.np_random
            assert _draws(loading) == expected
        else:  # loaded as before (the generators come back as copies, which then go apart)
            assert _draws(loading)[0] == expected[0]
        loading.close()
    saving.close()
