"""Gymnasium environments as arl environments.

``arl.gym:GymEnvironment`` with ``params: {id: CartPole-v1, ...}`` (in an experiment file,
``name: gym:CartPole-v1`` for short) runs any registered Gymnasium environment; the other
params go to ``gymnasium.make``, except ``wrappers``: the wrappers to put around what
``gymnasium.make`` returns, by name with their params, the first innermost
(:mod:`arl.wrapping`; a bare name is one of ``gymnasium.wrappers``). Its sensors and
actuators come from the (wrapped) spaces: a ``Dict`` space gives one per key, any other
space a single sensor ``obs`` or actuator ``action``. The reward is ``reward``;
terminated and truncated stay apart, as Gymnasium reports them. The ``info`` of each
step is stored with it (:mod:`arl.stepinfo`); that of a reset is not (a reset has no row).

Its state (:meth:`GymEnvironment.save_state`) is the wrapped environment itself, pickled,
with its generator's state and each wrapper's counters (the time limit's steps, say) and
other values that pickle (a reward normaliser's running statistics), in one pickle with
the environment, so that what they share stays shared: Gymnasium has no
API for an environment's inner state (CartPole's ``state``, a physics engine's), so
there is no other general way to continue it exactly. An environment that does not
pickle keeps only its generator and its wrappers' state: it then continues from a fresh
reset's inner state, not exactly (a warning says so).
"""

from __future__ import annotations

import difflib
import json
import logging
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from arl.api import ActuatorInfo, Environment, SensorInfo, StepResult
from arl.classref import import_module
from arl.errors import ComponentLoadError
from arl.spaces import keys, parts
from arl.state import NOT_PICKLABLE
from arl.wrapping import Family, Found, problems, wrap

OBS = "obs"
ACTION = "action"
STATE_FILE = "gym_state.json"
CHAIN_FILE = "environment.pickle"  # the unwrapped environment and its wrappers' values, in one pickle
WRAPPERS_FILE = "wrappers.pickle"  # the wrappers' values alone, of an environment that does not pickle
UNWRAPPED_FILE = "unwrapped.pickle"  # (states saved before CHAIN_FILE: the environment alone)
# A wrapper's attributes of these types are its counters and flags (TimeLimit's
# ``_elapsed_steps``, OrderEnforcing's ``_has_reset``): saved with the state as JSON.
_SIMPLE = (bool, int, float, str, type(None))
# A wrapper's attributes that are its place in the chain or how it was made, not state:
# the loading instance, made alike, has them already.
_MADE = frozenset({"env", "_saved_kwargs", "_cached_spec", "_metadata", "_action_space", "_observation_space"})

WRAPPERS = Family("gymnasium.wrappers", (gymnasium.Wrapper,), "a Gymnasium wrapper")

log = logging.getLogger(__name__)


class GymEnvironment(Environment):
    """Wraps ``gymnasium.make(id, **kwargs)``, in ``wrappers`` (:mod:`arl.wrapping`)."""

    def __init__(self, id: str, wrappers: list[Any] | None = None, **kwargs: Any) -> None:
        self.env = wrap(gymnasium.make(id, **kwargs), wrappers, WRAPPERS)
        self._obs_keys = keys(self.env.observation_space)
        self._action_keys = keys(self.env.action_space)

    @classmethod
    def param_problems(cls, id: str, wrappers: Any = None, **kwargs: Any) -> list[Found]:
        """What is wrong with the ``wrappers`` named, each at its place in the params."""
        return problems(wrappers, WRAPPERS)

    @classmethod
    def problem(cls, id: str, **kwargs: Any) -> str | None:
        """None if Gymnasium knows ``id``, else what is wrong, with the nearest ids: for
        checking a file before anything runs (the environment is built only in its process)."""
        if id in gymnasium.registry:
            return None
        module, colon, name = id.rpartition(":")
        if colon:  # Gymnasium's own "module:Env-v0": the module registers the id when imported
            try:
                import_module(module)  # the user's code: whatever it raises is said, not raised
            except ComponentLoadError as exc:
                return f"the Gymnasium id {id!r} names module {module!r}, which cannot be imported: {exc}"
            if name in gymnasium.registry:
                return None
            id = name
        close = difflib.get_close_matches(id, list(gymnasium.registry), n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"Gymnasium has no environment {id!r}{hint} (an id from another package needs that package imported)"

    def sensors(self) -> Sequence[SensorInfo]:
        return [SensorInfo(key, space) for key, space in parts(self.env.observation_space, OBS)]

    def actuators(self) -> Sequence[ActuatorInfo]:
        return [ActuatorInfo(key, space) for key, space in parts(self.env.action_space, ACTION)]

    def reset(self, *, seed: int) -> Mapping[str, Any]:
        observation, _ = self.env.reset(seed=seed % 2**32)
        return self._readings(observation)

    def step(self, setpoints: Mapping[str, Any]) -> StepResult:
        observation, reward, terminated, truncated, info = self.env.step(self._action(setpoints))
        return StepResult(
            self._readings(observation), {"reward": float(reward)}, bool(terminated), bool(truncated), info
        )

    def close(self) -> None:
        self.env.close()

    def save_state(self, path: Path) -> None:
        unwrapped = self.env.unwrapped
        generator = unwrapped._np_random  # not np_random: that would seed one if none is there yet
        state = {
            "np_random": None if generator is None else generator.bit_generator.state,
            "wrappers": [[type(w).__name__, _counters(w)] for w in _wrappers(self.env)],
        }
        (path / STATE_FILE).write_text(json.dumps(state))
        # pickle, because Gymnasium has no API for an environment's inner state. Loading
        # it runs code from the state folder: load only states from a folder only you can
        # write (a snapshot's hashes find damage, not tampering). The environment and its
        # wrappers' values go in one pickle, so what they share (a wrapper drawing from the
        # environment's generator) is still shared when loaded.
        kept = [_kept(w) for w in _wrappers(self.env)]
        try:
            data = pickle.dumps((unwrapped, kept))
        except NOT_PICKLABLE as exc:
            log.warning("%s does not pickle (%s): its state keeps only its generator and wrappers", unwrapped, exc)
            (path / WRAPPERS_FILE).write_bytes(pickle.dumps(kept))
            return
        (path / CHAIN_FILE).write_bytes(data)

    def load_state(self, path: Path) -> None:
        state = json.loads((path / STATE_FILE).read_text())
        wrappers = _wrappers(self.env)
        names = [type(w).__name__ for w in wrappers]
        if names != [name for name, _ in state["wrappers"]]:  # before anything of it is loaded
            raise ValueError(
                f"{path / STATE_FILE}: saved with the wrappers {[n for n, _ in state['wrappers']]}, not {names}: "
                "load it into the environment (id and wrappers) that saved it"
            )
        saved, kept = _pickled(path)
        unwrapped = self.env.unwrapped
        if saved is not None:
            # Into the wrapped instance (its wrappers keep pointing at it), not a new one.
            vars(unwrapped).clear()
            vars(unwrapped).update(vars(saved))
        elif state["np_random"] is not None:
            unwrapped._np_random = np.random.default_rng()
            unwrapped._np_random.bit_generator.state = state["np_random"]
        for wrapper, (_, counters) in zip(wrappers, state["wrappers"], strict=True):
            for name, value in counters.items():
                setattr(wrapper, name, value)
        if kept is not None:  # (a state saved before arl kept more of a wrapper than its counters has none)
            for wrapper, values in zip(wrappers, kept, strict=True):
                for name, value in values.items():
                    setattr(wrapper, name, value)

    def _readings(self, observation: Any) -> dict[str, Any]:
        if self._obs_keys is None:
            return {OBS: observation}
        return {key: observation[key] for key in self._obs_keys}

    def _action(self, setpoints: Mapping[str, Any]) -> Any:
        action_keys = self._action_keys
        missing = [k for k in (action_keys or [ACTION]) if k not in setpoints]
        if missing:
            raise ValueError(f"no agent set {missing} this step; a Gymnasium environment needs a whole action")
        if action_keys is None:
            return setpoints[ACTION]
        return {key: setpoints[key] for key in action_keys}


def _pickled(path: Path) -> tuple[Any, list[dict[str, Any]] | None]:
    """The pickled environment (None if it did not pickle) and wrappers' values (None in a
    state saved before arl kept them) in the state folder ``path``; also from the files
    of states saved before both went into one pickle."""
    chain = path / CHAIN_FILE
    if chain.exists():
        saved, kept = pickle.loads(chain.read_bytes())
        return saved, kept
    unwrapped, wrappers = path / UNWRAPPED_FILE, path / WRAPPERS_FILE
    saved = pickle.loads(unwrapped.read_bytes()) if unwrapped.exists() else None
    return saved, pickle.loads(wrappers.read_bytes()) if wrappers.exists() else None


def _wrappers(env: gymnasium.Env[Any, Any]) -> list[gymnasium.Wrapper[Any, Any, Any, Any]]:
    """The wrappers around the environment, outermost first."""
    found = []
    while isinstance(env, gymnasium.Wrapper):
        found.append(env)
        env = env.env
    return found


def _counters(wrapper: gymnasium.Wrapper[Any, Any, Any, Any]) -> dict[str, Any]:
    return {name: value for name, value in vars(wrapper).items() if isinstance(value, _SIMPLE)}


def _kept(wrapper: gymnasium.Wrapper[Any, Any, Any, Any]) -> dict[str, Any]:
    """A wrapper's state besides its counters (NormalizeReward's running statistics,
    RecordEpisodeStatistics' queues): each other attribute that pickles. One that does
    not (a function the wrapper was made with) is how it was made, not what it went
    through: the loading instance has its own."""
    values = {
        name: value
        for name, value in vars(wrapper).items()
        if name not in _MADE and not isinstance(value, (*_SIMPLE, gymnasium.Env, gymnasium.spaces.Space))
    }
    try:
        pickle.dumps(values)
    except NOT_PICKLABLE:
        values = {name: value for name, value in values.items() if _pickles(value)}
    return values


def _pickles(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except NOT_PICKLABLE as exc:
        log.debug("a wrapper's %s is not kept in its state: %s", type(value).__name__, exc)
        return False
    return True
