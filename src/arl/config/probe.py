"""Probing: every environment set up once, as its process would set it up, and reset, so
that the sensor and actuator ids agents name are checked against what it really provides.
A prober made with ``check`` also runs :func:`arl.check_environment` on each (``arl-run
check --probe``): it steps the environment with sampled setpoints, which a run's own
probe does not do (an environment's steps may act on the world: that is for the run).

That runs the user's environment code, so it is done in a process of its own (``arl-run``
does it in its checking child, before a run starts anything). An environment is probed
once per :class:`Prober`: phases that inherit it, and the runs of a sweep that give it
the same class, uid and params, share the outcome.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from arl.api import Environment
from arl.config.filemodels import EnvironmentFile
from arl.config.report import DocPath, did_you_mean
from arl.config.shorthands import class_ref
from arl.seeding import probe_seed

if TYPE_CHECKING:
    from arl.config.checker import Checker
    from arl.config.phases import Phase

Ids = tuple[list[str], list[str]]  # an environment's sensor and actuator ids, unqualified
Outcome = tuple[Ids | None, list[str]]  # its ids (None: it could not be set up), and its problems


class Prober:
    """Probes environments, each distinct one once; with ``check``, each is also checked
    by :func:`arl.check_environment`."""

    def __init__(self, check: bool = False) -> None:
        self.check = check
        self._outcomes: dict[tuple[str, str, str], Outcome] = {}

    def probe(self, checker: Checker, phases: list[Phase], seed: int) -> None:
        """Probe every environment of ``phases`` and report, through ``checker``, each one
        that cannot be set up or reset and each id an agent names that its environment
        does not provide."""
        for phase in phases:
            ids: dict[str, Ids] = {}
            for i, entry in enumerate(phase.body["environments"]):
                rel: DocPath = ("environments", i, "environment")
                env = EnvironmentFile.model_validate(entry["environment"])
                found, problems = self._outcome(env, phase.index, seed, functools.partial(checker.announce, phase, rel))
                for problem in problems:
                    checker.add(phase, (*rel, "name"), problem, contextual=True)
                if found is not None:
                    ids[env.uid] = found
            _check_ids(checker, phase, ids)

    def _outcome(self, env: EnvironmentFile, phase: int, seed: int, announce: Callable[[str], None]) -> Outcome:
        ref = class_ref(env, Environment)
        key = (ref.entry_point, json.dumps(ref.params, sort_keys=True), env.uid)
        if key not in self._outcomes:
            announce(f"{'checking' if self.check else 'probing'} environment {env.uid!r}")
            self._outcomes[key] = probe_environment(env, phase, seed, check=self.check)
        return self._outcomes[key]


def _check_ids(checker: Checker, phase: Phase, ids: dict[str, Ids]) -> None:
    for j, agent in enumerate(phase.body["agents"]):
        for k, kind in enumerate(("sensor", "actuator")):
            for n, qualified in enumerate(agent.get(kind + "s") or []):
                uid, _, local = qualified.partition(".")
                if uid in ids and local not in ids[uid][k]:
                    message = _not_provided(uid, local, kind, ids[uid][k])
                    checker.add(phase, ("agents", j, kind + "s", n), message, contextual=True)


def probe_environment(env: EnvironmentFile, phase: int, seed: int, *, check: bool = False) -> Outcome:
    """The environment's sensor and actuator ids (unqualified) and, with ``check``, the
    problems :func:`arl.check_environment` finds; or no ids and what went wrong setting
    it up or resetting it in arl's environment conductor, in this process."""
    from arl.conductors.environment import EnvironmentConductor
    from arl.envcheck import environment_problems
    from arl.messages import control
    from arl.messages.environment import Reset

    ref = class_ref(env, Environment)
    conductor = EnvironmentConductor()
    problems: list[str] = []
    try:
        ready = conductor.setup(control.SetupEnvironment(phase, env.uid, ref.entry_point, ref.params))
        conductor.reset(Reset(probe_seed(seed, env.uid)))
        if check and conductor.env is not None:
            found = environment_problems(conductor.env, seed=probe_seed(seed, env.uid))
            problems = [f"arl.check_environment on environment {env.uid!r}: {p}" for p in found]
    except SystemExit as exc:  # the check must go on to report it
        return None, [f"probing environment {env.uid!r}: it called sys.exit({exc.code!r})"]
    except Exception as exc:  # the user's environment code: whatever it raises is the finding
        return None, [f"probing environment {env.uid!r}: {type(exc).__name__}: {exc}"]
    finally:
        conductor.close()
    cut = len(env.uid) + 1
    return ([str(s[0])[cut:] for s in ready.sensors], [str(a[0])[cut:] for a in ready.actuators]), problems


def _not_provided(uid: str, local: str, kind: str, ids: list[str]) -> str:
    hint = did_you_mean(local, ids)
    listed = ", ".join(map(repr, ids[:12])) + (", ..." if len(ids) > 12 else "")
    return f"environment {uid!r} provides no {kind} {local!r}{hint} (its {kind}s: {listed or 'none'})"
