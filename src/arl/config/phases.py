"""The schedule's phases after inheritance, remembering where each part's text really is.

palaestrAI's semantics: a phase takes the sections it omits from the previous phase
whole, and merges its ``phase_config`` over the previous one key by key. A problem in
inherited text is reported where the text is written (:meth:`Phase.source`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from arl.config.report import DocPath

SECTIONS = ("environments", "agents", "simulation")


@dataclass
class Phase:
    """One phase after inheritance, and where the text of each of its parts really is."""

    name: str
    index: int
    path: DocPath  # ("schedule", i, name)
    body: dict[str, Any]
    origin: dict[str, DocPath] = field(default_factory=dict)  # section -> source path
    config_origin: dict[str, DocPath] = field(default_factory=dict)  # phase_config key -> path
    missing_before: set[str] = field(default_factory=set)  # absent earlier too: reported there

    def source(self, rel: DocPath) -> DocPath:
        """The path of the text that ``rel`` (relative to this phase) came from."""
        if len(rel) > 1 and rel[0] == "phase_config" and rel[1] in self.config_origin:
            return self.config_origin[str(rel[1])] + rel[2:]
        if rel and rel[0] in self.origin:
            return self.origin[str(rel[0])] + rel[1:]
        return self.path + rel

    def context(self, source: DocPath) -> str:
        """A note for messages about inherited text whose problem is this phase's."""
        if source[: len(self.path)] == self.path:
            return ""
        return f" (in phase {self.name!r}, which inherits this from phase {source[2]!r})"


def inherit(name: str, index: int, body: dict[str, Any], previous: Phase | None) -> Phase:
    """Phase ``name`` with what it omits taken from ``previous`` (palaestrAI's semantics):
    a missing section is inherited whole, phase_config is merged key by key."""
    path: DocPath = ("schedule", index, name)
    phase = Phase(name, index, path, dict(body), {k: (*path, k) for k in body})
    if previous is None:
        _merge_config(phase, body.get("phase_config"), None)
        return phase
    for key in SECTIONS:
        if key in body:
            continue
        if key in previous.body:
            phase.body[key], phase.origin[key] = previous.body[key], previous.origin[key]
        else:
            phase.missing_before.add(key)
    if "phase_config" not in body and "phase_config" in previous.origin:
        phase.origin["phase_config"] = previous.origin["phase_config"]
    _merge_config(phase, body.get("phase_config"), previous)
    return phase


_CONFIG_ALIASES = {"worker": "workers", "workers": "worker"}


def _merge_config(phase: Phase, own: Any, previous: Phase | None) -> None:
    """Lay this phase's phase_config over the previous phase's, key by key.

    ``worker`` and ``workers`` are one setting, so stating either replaces both. A
    phase_config that is not a mapping is left alone for the schema check to report.
    """
    own = {} if own is None else own
    before = previous.body.get("phase_config") if previous is not None else None
    if not isinstance(own, dict):
        return
    merged: dict[str, Any] = {}
    if isinstance(before, dict) and previous is not None:
        merged.update(before)
        phase.config_origin.update(previous.config_origin)
    for key in own:
        if _CONFIG_ALIASES.get(key) in merged and _CONFIG_ALIASES[key] not in own:
            del merged[_CONFIG_ALIASES[key]]
            phase.config_origin.pop(_CONFIG_ALIASES[key], None)
    merged.update(own)
    phase.config_origin.update({k: (*phase.path, "phase_config", k) for k in own})
    if merged or "phase_config" in phase.body:
        phase.body["phase_config"] = merged
