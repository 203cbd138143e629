"""The experiment file most end-to-end tests run: a defender and an attacker on one
DummyEnvironment, every part replaceable by a keyword. Lines 1-13 never move (tests
assert locations in them); extra phases and top-level keys go at the end."""

from __future__ import annotations

from pathlib import Path

TEMPLATE = """\
uid: {uid}
seed: 7
schedule:
  - {phase}:
      environments:
        - environment:
            name: {env}
            uid: env
            params: {env_params}
      agents:
        - name: defender
          brain: {{name: {brain}}}
          muscle: {{name: {muscle}, params: {muscle_params}}}
          objective: {{name: {objective}}}
          sensors: [env.s0, env.s1]
          actuators: [env.a0, env.a1]
        - name: attacker
          brain: {{name: arl.dummy:DummyBrain}}
          muscle: {{name: arl.dummy:DummyMuscle}}
          objective: {{name: arl.dummy:DummyObjective, params: {{sign: -1}}}}
          sensors: [env.s2, env.s3]
          actuators: [env.a2, env.a3]
      simulation: {simulation}
      phase_config: {{mode: {mode}, episodes: {episodes}, workers: {workers}}}
{more}"""

DEFAULTS: dict[str, object] = {
    "uid": "e2e",
    "phase": "train",
    "env": "arl.dummy:DummyEnvironment",
    "env_params": "{}",
    "brain": "arl.dummy:DummyBrain",
    "muscle": "arl.dummy:DummyMuscle",
    "muscle_params": "{}",
    "objective": "arl.dummy:DummyObjective",
    "simulation": "{name: vanilla}",
    "mode": "train",
    "episodes": 1,
    "workers": 1,
    "more": "",  # more phases, then more top-level keys, as YAML text
}


def write(tmp: Path, **fields: object) -> str:
    """An experiment file from TEMPLATE in ``tmp``, named after its uid; ``fields``
    override DEFAULTS."""
    unknown = fields.keys() - DEFAULTS.keys()
    assert not unknown, f"write() has no field {unknown}"
    values = {**DEFAULTS, **fields}
    path = tmp / f"{values['uid']}.yml"
    path.write_text(TEMPLATE.format(**values))
    return str(path)


DUMMY_AGENT = """
        - name: {name}
          brain: {{name: arl.dummy:DummyBrain}}
          muscle: {{name: arl.dummy:DummyMuscle}}
          objective: {{name: arl.dummy:DummyObjective}}
          sensors: [env.s0]
          actuators: [env.a0]"""
"""One agent of the dummy components in a phase's ``agents:`` list (``.format(name=...)``),
sensing ``env.s0`` and setting ``env.a0``."""


def three_agents(uid: str, *, blue: str = "", green: str = "", workers: str = "2", more: str = "") -> str:
    """A one-phase document of agents red, blue and green (:data:`DUMMY_AGENT`), each of
    blue and green followed by its extra lines (``learner:``/``inference:`` make it a
    central agent), ``workers`` the phase's (text: ``"2, envs_per_worker: 3"`` goes too);
    ``more``: top-level keys or a second phase, after the schedule."""
    extra = {"red": "", "blue": blue, "green": green}
    agents = "".join(
        DUMMY_AGENT.format(name=name) + ("\n" + extra[name].rstrip("\n") if extra[name] else "")
        for name in ("red", "blue", "green")
    )
    return f"""uid: {uid}
schedule:
  - p:
      environments:
        - environment: {{name: arl.dummy:DummyEnvironment, uid: env}}
      agents:{agents}
      simulation: {{name: vanilla}}
      phase_config: {{workers: {workers}}}
{more}"""
