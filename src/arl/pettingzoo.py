"""PettingZoo environments as arl environments, through either of PettingZoo's APIs.

``arl.pettingzoo:PettingZooEnvironment`` with ``params: {env: ..., api: ..., ...}`` (in an
experiment file, ``name: pettingzoo:<env>`` for short) runs a PettingZoo environment; the
other params go to the function that builds it. ``env`` is

* a module such as ``pettingzoo.classic.rps_v2``: its ``parallel_env(**params)`` or
  ``env(**params)`` builds it (PettingZoo's module convention);
* ``module:function``: that function builds it;
* a registry id such as ``classic/rps-v2`` (it has a ``/``): ``pettingzoo.make`` builds it.

``api`` is ``parallel`` or ``aec``; left out, it is ``parallel`` when the environment
has a parallel version (a module with ``parallel_env``, an id in the parallel registry),
else ``aec``. PettingZoo's classic and butterfly families need pygame; see their extras.

Ids, for each PettingZoo agent ``<agent>`` of ``possible_agents``:

* sensor ``<agent>.obs``, or ``<agent>.<key>`` for each key of a Dict observation space
  (so an ``action_mask`` key becomes a sensor of its own), and sensor ``<agent>.done``
  (Discrete(3)): 0 while the agent plays, 1 once it terminated, 2 once it was truncated;
* actuator ``<agent>.action``;
* reward ``<agent>``, on every step for every agent (0.0 for one not in play), so an
  objective such as :class:`arl.objectives.RewardOf` always finds its id.

One arl step:

* parallel: one ``step()`` with the action of every live agent (``env.agents``); a live
  agent without a setpoint is a ValueError naming it. Setpoints of agents that are done
  are not passed on. Fits ``simulation: vanilla``.
* AEC: ``step()`` with the action of ``agent_selection``; other agents' setpoints are
  ignored, and a missing one is a ValueError naming the agent whose turn it is. Then,
  as PettingZoo requires, every agent that is done and selected is stepped with
  ``None``, until a live agent's turn comes. ``simulation: taking_turns`` with the
  agents listed in the environment's turn order gives each agent exactly its own turns;
  ``vanilla`` suits any turn order but asks every agent each step. Sensors are every
  agent's latest ``observe()``; rewards are summed over the AEC steps the arl step made.

The episode is over when no agent plays on (every agent of ``env.agents`` is done, or
none is left). It is *truncated* if an agent was truncated on that last step (it was cut
short and could have gone on), else *terminated*. Before that, both are False even when
some agents are done: their ``done`` sensors say so. A step after the end is an error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import Any

import pettingzoo
from gymnasium import spaces
from pettingzoo.env_registry.exceptions import PettingZooRegistryError
from pettingzoo.utils.env import AECEnv, ParallelEnv

from arl.api import ActuatorInfo, Environment, SensorInfo, StepResult
from arl.classref import article, attribute, import_module, params_problems
from arl.errors import ComponentLoadError
from arl.spaces import keys, parts

OBS = "obs"
ACTION = "action"
DONE = "done"
APIS = ("parallel", "aec")


class AgentDone(IntEnum):
    """The value of an agent's ``done`` sensor."""

    PLAYING = 0
    TERMINATED = 1
    TRUNCATED = 2


class PettingZooEnvironment(Environment):
    """Wraps a PettingZoo ``ParallelEnv`` or ``AECEnv`` (see the module's docstring)."""

    def __init__(self, env: str, api: str | None = None, **kwargs: Any) -> None:
        self.env, self.api = make(env, api, **kwargs)
        self._agents = {str(agent): agent for agent in self.env.possible_agents}
        self._obs_keys = {name: keys(self.env.observation_space(a)) for name, a in self._agents.items()}
        self._sensors = [
            SensorInfo(f"{name}.{key}", space)
            for name, agent in self._agents.items()
            for key, space in [*parts(self.env.observation_space(agent), OBS), (DONE, spaces.Discrete(3))]
        ]
        self._actuators = [ActuatorInfo(f"{n}.{ACTION}", self.env.action_space(a)) for n, a in self._agents.items()]
        ids = [s.id for s in self._sensors]
        clashes = sorted({i for i in ids if ids.count(i) > 1})
        if clashes:
            raise ValueError(f"{env}: sensor ids {clashes} clash (an observation key '{DONE}', say)")
        self.done = dict.fromkeys(self._agents, AgentDone.PLAYING)
        self._over = False

    @classmethod
    def problem(cls, env: str, api: str | None = None, **kwargs: Any) -> str | None:
        """Why ``env`` and ``api`` name nothing that builds a PettingZoo environment, or
        why its builder would refuse ``kwargs``; None if neither. For checking a file
        before anything runs (the environment itself is built only in its process)."""
        try:
            builder, _ = _builder(env, api)
        except (ComponentLoadError, ValueError) as exc:
            return str(exc)
        found = [message for _, message in params_problems(builder, kwargs)]
        if not found:
            return None
        target = f"{getattr(builder, '__module__', '')}:{getattr(builder, '__qualname__', '')}"
        return "; ".join(found) + f"; params other than 'api' go to {target}"

    def sensors(self) -> Sequence[SensorInfo]:
        return self._sensors

    def actuators(self) -> Sequence[ActuatorInfo]:
        return self._actuators

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        self.done = dict.fromkeys(self._agents, AgentDone.PLAYING)
        self._over = False
        if self.api == "parallel":
            observations, _ = self.env.reset(seed=seed % 2**32)
            return self._readings(observations)
        self.env.reset(seed=seed % 2**32)
        self._skip_done_agents(dict.fromkeys(self._agents, 0.0))
        return self._readings(self._observe_all())

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        if self._over:
            raise RuntimeError(
                "the episode is over (no agent plays on); end episodes with arl.conditions:EnvironmentDone"
            )
        rewards = dict.fromkeys(self._agents, 0.0)
        if self.api == "parallel":
            observations, ended = self._step_parallel(setpoints, rewards)
        else:
            observations, ended = self._step_aec(setpoints, rewards)
        self._over = all(self.done.get(str(a)) not in (None, AgentDone.PLAYING) for a in self.env.agents)
        truncated = self._over and AgentDone.TRUNCATED in ended
        return StepResult(self._readings(observations), rewards, self._over and not truncated, truncated)

    def close(self) -> None:
        self.env.close()

    def _step_parallel(self, setpoints: Mapping[str, Any], rewards: dict[str, float]) -> tuple[Any, list[AgentDone]]:
        live = list(self.env.agents)
        missing = [str(agent) for agent in live if f"{agent}.{ACTION}" not in setpoints]
        if missing:
            raise ValueError(
                f"no action for live agent(s) {missing} this step: a PettingZoo parallel environment steps every "
                f"live agent at once; let an arl agent set {', '.join(f'{m}.{ACTION}' for m in missing)}"
            )
        actions = {agent: setpoints[f"{agent}.{ACTION}"] for agent in live}
        observations, step_rewards, terminations, truncations, _ = self.env.step(actions)
        _add(rewards, step_rewards)
        return observations, self._mark(terminations, truncations)

    def _step_aec(self, setpoints: Mapping[str, Any], rewards: dict[str, float]) -> tuple[Any, list[AgentDone]]:
        agent = self.env.agent_selection
        key = f"{agent}.{ACTION}"
        if key not in setpoints:
            raise ValueError(
                f"it is {agent}'s turn in this AEC environment, but no setpoint {key} came (got {sorted(setpoints)}); "
                "with simulation taking_turns, list the agents in the environment's turn order"
            )
        self.env.step(setpoints[key])
        ended = self._collect(rewards)
        ended += self._skip_done_agents(rewards)
        return self._observe_all(), ended

    def _skip_done_agents(self, rewards: dict[str, float]) -> list[AgentDone]:
        """Step each selected agent that is done with ``None`` (PettingZoo's rule), while another plays on."""
        env, ended = self.env, []
        while _is_done(env, env.agent_selection) and not all(_is_done(env, a) for a in env.agents):
            env.step(None)
            ended += self._collect(rewards)
        return ended

    def _collect(self, rewards: dict[str, float]) -> list[AgentDone]:
        """After one AEC step: add its rewards, and note the agents that are done now."""
        _add(rewards, self.env.rewards)
        return self._mark(self.env.terminations, self.env.truncations)

    def _mark(self, terminations: Mapping[Any, bool], truncations: Mapping[Any, bool]) -> list[AgentDone]:
        """Record which agents just ended, and how (terminated wins over truncated)."""
        ended = []
        for agent in {*terminations, *truncations}:
            name = str(agent)
            if self.done.get(name, AgentDone.PLAYING) is not AgentDone.PLAYING:
                continue
            if terminations.get(agent, False):
                self.done[name] = AgentDone.TERMINATED
            elif truncations.get(agent, False):
                self.done[name] = AgentDone.TRUNCATED
            else:
                continue
            ended.append(self.done[name])
        return ended

    def _observe_all(self) -> dict[Any, Any]:
        observations = {agent: self.env.observe(agent) for agent in self.env.agents}
        return {agent: obs for agent, obs in observations.items() if obs is not None}

    def _readings(self, observations: Mapping[Any, Any]) -> dict[str, Any]:
        readings: dict[str, Any] = {}
        for agent, observation in observations.items():
            name = str(agent)
            obs_keys = self._obs_keys[name]
            if obs_keys is None:
                readings[f"{name}.{OBS}"] = observation
            else:
                readings.update((f"{name}.{key}", observation[key]) for key in obs_keys)
        readings.update((f"{name}.{DONE}", int(done)) for name, done in self.done.items())
        return readings


def make(env: str, api: str | None = None, **kwargs: Any) -> tuple[Any, str]:
    """Build the PettingZoo environment ``env`` names (see the module's docstring) with
    ``kwargs``; return it and its API, ``"parallel"`` or ``"aec"``."""
    builder, api = _builder(env, api)
    built = builder(**kwargs)
    if isinstance(built, ParallelEnv):
        kind = "parallel"
    elif isinstance(built, AECEnv):
        kind = "aec"
    else:
        raise TypeError(f"{env} built {article(type(built).__name__)}, neither a PettingZoo ParallelEnv nor an AECEnv")
    if api is not None and api != kind:
        raise ValueError(f"{env} built an environment of the {kind} API, but api {api!r} was asked for")
    return built, kind


def _builder(env: str, api: str | None) -> tuple[Callable[..., Any], str | None]:
    """The function that builds ``env`` with the file's params, and the API it builds
    (None when only the built environment can tell: ``module:function`` without ``api``).

    Raises ValueError for an unknown ``api``, ComponentLoadError when ``env`` names
    nothing that builds a PettingZoo environment of that API.
    """
    if api is not None and api not in APIS:
        raise ValueError(f"api must be 'parallel', 'aec' or left out, not {api!r}")
    if "/" in env:
        apis = [a for a in APIS if _registered(a, env)]
        if not apis:
            raise ComponentLoadError(f"PettingZoo has no environment {env!r} in its registry")
        if api is None:
            api = apis[0]  # parallel when there is a parallel version
        elif api not in apis:
            raise ComponentLoadError(f"PettingZoo's registry has {env!r} only for the {apis[0]} API, not {api!r}")
        return functools.partial(pettingzoo.make, api, env), api
    if ":" in env:
        module_name, _, function = env.partition(":")
        return attribute(import_module(module_name), function), api
    module = import_module(env)
    if api is None:
        api = "parallel" if hasattr(module, "parallel_env") else "aec"
    name = "parallel_env" if api == "parallel" else "env"
    if not hasattr(module, name):
        raise ComponentLoadError(f"module {env!r} has no {name!r} to build a PettingZoo {api} environment with")
    return getattr(module, name), api


def _registered(api: str, env_id: str) -> bool:
    try:
        pettingzoo.spec(api, env_id)
    except PettingZooRegistryError:
        return False
    return True


def _is_done(env: Any, agent: Any) -> bool:
    return bool(env.terminations.get(agent, False) or env.truncations.get(agent, False))


def _add(rewards: dict[str, float], step_rewards: Mapping[Any, float]) -> None:
    for agent, reward in step_rewards.items():
        rewards[str(agent)] = rewards.get(str(agent), 0.0) + float(reward)
