"""PettingZoo environments as arl environments, through either of PettingZoo's APIs.

``arl.pettingzoo:PettingZooEnvironment`` with ``params: {env: ..., api: ..., ...}`` (in an
experiment file, ``name: pettingzoo:<env>`` for short) runs a PettingZoo environment; the
other params go to the function that builds it. ``env`` is

* a module such as ``pettingzoo.classic.rps_v2``: its ``parallel_env(**params)`` or
  ``env(**params)`` builds it (PettingZoo's module convention);
* ``module:function``: that function builds it;
* a registry id such as ``classic/rps-v2`` (it has a ``/``): ``pettingzoo.make`` builds it.

``wrappers`` (a param of its own, not passed on): wrappers to put around the built
environment, by name with their params, the first innermost (:mod:`arl.wrapping`; a bare
name is one of ``pettingzoo.utils.wrappers``). An AEC environment takes AEC wrappers
(``BaseWrapper``'s), a parallel one parallel wrappers (``BaseParallelWrapper``'s).

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

A setpoint the step does not pass on (a done agent's, another agent's in AEC) is not
checked against its space either (:meth:`PettingZooEnvironment.applies`): such agents
send ``None``, as PettingZoo's own loops do.

A step's ``info`` (stored with it, :mod:`arl.stepinfo`) is ``{agent: its info}`` for the
agents whose info says anything: the parallel step's ``infos``, or the AEC environment's
``infos`` after the arl step.

The episode is over when no agent plays on (every agent of ``env.agents`` is done, or
none is left). It is *truncated* if an agent was truncated on that last step (it was cut
short and could have gone on), else *terminated*. Before that, both are False even when
some agents are done: their ``done`` sensors say so. A step after the end is an error.

Its state (:meth:`PettingZooEnvironment.save_state`) is the PettingZoo environment with
all its wrappers, pickled (an AEC wrapper keeps whose turn it is and the actions of the
round so far, so the whole chain is needed), and the adapter's own record of which
agents are done. PettingZoo has no API for an environment's inner state, so there is no
other general way to continue it exactly. An environment that does not pickle (one with
a window) keeps only the numpy generators of its layers: it then continues from the
loading instance's inner state, not exactly (a warning says so).
"""

from __future__ import annotations

import functools
import json
import logging
import pickle
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import pettingzoo
from gymnasium import spaces
from pettingzoo.env_registry.exceptions import PettingZooRegistryError
from pettingzoo.utils.env import AECEnv, ParallelEnv
from pettingzoo.utils.wrappers import BaseParallelWrapper, BaseWrapper

from arl.api import ActuatorInfo, Environment, SensorInfo, StepResult
from arl.classref import article, attribute, import_module, params_problems
from arl.errors import ComponentLoadError
from arl.spaces import keys, parts
from arl.state import NOT_PICKLABLE
from arl.wrapping import Family, Found, entries, problems, resolve, wrap

OBS = "obs"
ACTION = "action"
DONE = "done"
APIS = ("parallel", "aec")
STATE_FILE = "pettingzoo_state.json"
ENV_FILE = "env.pickle"
WRAPPERS = Family("pettingzoo.utils.wrappers", (BaseWrapper, BaseParallelWrapper), "a PettingZoo wrapper")
_WRAPPER_API = {"aec": BaseWrapper, "parallel": BaseParallelWrapper}

log = logging.getLogger(__name__)


class AgentDone(IntEnum):
    """The value of an agent's ``done`` sensor."""

    PLAYING = 0
    TERMINATED = 1
    TRUNCATED = 2


class PettingZooEnvironment(Environment):
    """Wraps a PettingZoo ``ParallelEnv`` or ``AECEnv`` (see the module's docstring)."""

    def __init__(self, env: str, api: str | None = None, wrappers: list[Any] | None = None, **kwargs: Any) -> None:
        built, self.api = make(env, api, **kwargs)
        self.env = wrap(built, wrappers, WRAPPERS)
        if _api(self.env) != self.api:
            raise ValueError(f"{env}: its wrappers made the {self.api} environment {_api(self.env) or 'neither API'}")
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
    def problem(cls, env: str, api: str | None = None, wrappers: Any = None, **kwargs: Any) -> str | None:
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
        return "; ".join(found) + f"; params other than 'api' and 'wrappers' go to {target}"

    @classmethod
    def param_problems(cls, env: str, api: str | None = None, wrappers: Any = None, **kwargs: Any) -> list[Found]:
        """What is wrong with the ``wrappers`` named, each at its place in the params; a
        wrapper of the other API too, when the API is known before the environment is built."""
        found = problems(wrappers, WRAPPERS)
        if found:
            return found
        try:
            known = _builder(env, api)[1]
        except (ComponentLoadError, ValueError):  # problem() says so
            return []
        if known is None:  # module:function without api: only the built environment tells
            return []
        base = _WRAPPER_API[known]
        for entry in entries(wrappers)[0]:
            if not issubclass(resolve(entry.name, WRAPPERS), base):
                message = f"{entry.name} does not wrap a {known} environment (it subclasses no {base.__name__})"
                found.append((entry.at, message, entry.keyed))
        return found

    def sensors(self) -> Sequence[SensorInfo]:
        return self._sensors

    def actuators(self) -> Sequence[ActuatorInfo]:
        return self._actuators

    def applies(self, actuator: str) -> bool:
        """Whether the next step passes ``actuator``'s setpoint on: in AEC, the action of
        the agent whose turn it is; in parallel, those of the live agents."""
        name, _, kind = actuator.rpartition(".")
        agent = self._agents.get(name)
        if kind != ACTION or agent is None:
            return True
        if self.api == "aec":
            return bool(agent == self.env.agent_selection)
        return any(agent == live for live in self.env.agents)

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
            observations, ended, infos = self._step_parallel(setpoints, rewards)
        else:
            observations, ended = self._step_aec(setpoints, rewards)
            infos = self.env.infos
        self._over = all(self.done.get(str(a)) not in (None, AgentDone.PLAYING) for a in self.env.agents)
        truncated = self._over and AgentDone.TRUNCATED in ended
        info = {str(agent): value for agent, value in infos.items() if _says_something(value)}
        return StepResult(self._readings(observations), rewards, self._over and not truncated, truncated, info)

    def close(self) -> None:
        self.env.close()

    def save_state(self, path: Path) -> None:
        layers = _layers(self.env)
        state = {
            "api": self.api,
            "layers": [_type_name(layer) for layer in layers],
            "done": {name: int(done) for name, done in self.done.items()},
            "over": self._over,
            "generators": [_generators(layer) for layer in layers],
        }
        (path / STATE_FILE).write_text(json.dumps(state))
        # The whole chain: PettingZoo's wrappers hold state of their own (whose turn it is,
        # the parallel-to-AEC conversion's actions of the round so far). Loading it runs
        # code from the state folder: load only states from a folder only you can write.
        try:
            data = pickle.dumps(self.env)
        except NOT_PICKLABLE as exc:
            log.warning("%s does not pickle (%s): its state keeps only its generators", self.env, exc)
            return
        (path / ENV_FILE).write_bytes(data)

    def load_state(self, path: Path) -> None:
        state = json.loads((path / STATE_FILE).read_text())
        names = [_type_name(layer) for layer in _layers(self.env)]
        if (state["api"], state["layers"]) != (self.api, names):  # before anything of it is loaded
            raise ValueError(
                f"{path / STATE_FILE}: saved from a {state['api']} environment made of {state['layers']}, "
                f"not a {self.api} one made of {names}: load it into the environment (env, api, params) that saved it"
            )
        pickled = path / ENV_FILE
        if pickled.exists():
            self.env = pickle.loads(pickled.read_bytes())
        else:
            log.warning(
                "%s holds no %s: %s continues from this instance's inner state with the saved generators only",
                path,
                ENV_FILE,
                self.env,
            )
            for layer, generators in zip(_layers(self.env), state["generators"], strict=True):
                for name, generator_state in generators.items():
                    setattr(layer, name, _generator(generator_state))
        self.done = {name: AgentDone(value) for name, value in state["done"].items()}
        self._over = bool(state["over"])

    def _step_parallel(
        self, setpoints: Mapping[str, Any], rewards: dict[str, float]
    ) -> tuple[Any, list[AgentDone], Mapping[Any, Any]]:
        live = list(self.env.agents)
        missing = [str(agent) for agent in live if f"{agent}.{ACTION}" not in setpoints]
        if missing:
            raise ValueError(
                f"no action for live agent(s) {missing} this step: a PettingZoo parallel environment steps every "
                f"live agent at once; let an arl agent set {', '.join(f'{m}.{ACTION}' for m in missing)}"
            )
        actions = {agent: setpoints[f"{agent}.{ACTION}"] for agent in live}
        observations, step_rewards, terminations, truncations, infos = self.env.step(actions)
        _add(rewards, step_rewards)
        return observations, self._mark(terminations, truncations), infos

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


def _layers(env: Any) -> list[Any]:
    """The environment and each one it wraps, outermost first (PettingZoo's wrappers keep
    the next as ``env``; its AEC-to-parallel conversion as ``aec_env``)."""
    found = [env]
    while True:
        attributes = getattr(found[-1], "__dict__", {})  # a layer with __slots__ wraps nothing we know of
        inner = attributes.get("env", attributes.get("aec_env"))
        if not isinstance(inner, AECEnv | ParallelEnv) or any(inner is layer for layer in found):
            return found
        found.append(inner)


def _type_name(layer: Any) -> str:
    return f"{type(layer).__module__}:{type(layer).__qualname__}"


def _generators(layer: Any) -> dict[str, Any]:
    """The numpy generators ``layer`` holds (PettingZoo's envs keep theirs as ``np_random``)."""
    return {
        name: _jsonable(value.bit_generator.state)
        for name, value in getattr(layer, "__dict__", {}).items()
        if isinstance(value, np.random.Generator)
    }


def _jsonable(value: Any) -> Any:
    """A generator's state as JSON: MT19937 and Philox keep arrays in theirs."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value.tolist() if isinstance(value, np.ndarray) else value


def _generator(state: dict[str, Any]) -> np.random.Generator:
    """A generator of the saved kind (PCG64, say) in the saved state."""
    kind = getattr(np.random, str(state["bit_generator"]), None)
    if not (isinstance(kind, type) and issubclass(kind, np.random.BitGenerator)):
        raise ValueError(f"a saved generator names {state['bit_generator']!r}, which is not a numpy bit generator")
    generator = np.random.Generator(kind())
    generator.bit_generator.state = state
    return generator


def _api(env: Any) -> str | None:
    return "parallel" if isinstance(env, ParallelEnv) else "aec" if isinstance(env, AECEnv) else None


def _says_something(info: Any) -> bool:
    """Whether an agent's info is worth keeping: not None, nor an empty mapping or list
    (an array says something; ``if info`` would raise on one of several values)."""
    if info is None:
        return False
    return not isinstance(info, Mapping | list | tuple | str) or len(info) > 0


def _is_done(env: Any, agent: Any) -> bool:
    return bool(env.terminations.get(agent, False) or env.truncations.get(agent, False))


def _add(rewards: dict[str, float], step_rewards: Mapping[Any, float]) -> None:
    for agent, reward in step_rewards.items():
        rewards[str(agent)] = rewards.get(str(agent), 0.0) + float(reward)
