"""A JSON Schema of the experiment file, for editors to validate and complete with.

Built from the same pydantic models the loader validates with. Phases are validated
after inheritance, so in the schema every key of a phase is optional.
"""

from __future__ import annotations

from typing import Any

from arl.config.filemodels import PhaseFile, RunFile

SCHEMA_ID = "https://arl.invalid/schema/experiment-file/v1"
_VALUES = frozenset({"examples", "default", "const", "enum"})
"""Keywords whose value is a document's value, not a schema."""


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with nothing required: a later phase may inherit any key."""
    schema = dict(schema)
    schema.pop("required", None)
    return schema


def _unwrapped(node: Any) -> Any:
    """``node`` with every description on one line: docstrings wrap at the source's width,
    an editor's hover at its own. Values (examples, defaults) are left as they are."""
    if isinstance(node, list):
        return [_unwrapped(item) for item in node]
    if not isinstance(node, dict):
        return node
    unwrapped = {key: value if key in _VALUES else _unwrapped(value) for key, value in node.items()}
    if isinstance(unwrapped.get("description"), str):
        unwrapped["description"] = " ".join(unwrapped["description"].split())
    return unwrapped


def json_schema() -> dict[str, Any]:
    """The experiment file's JSON Schema (draft 2020-12), with a description and examples
    for every key (from the docstrings and ``examples`` of the file models in spec.py)."""
    run = RunFile.model_json_schema(ref_template="#/$defs/{model}")
    phase = PhaseFile.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**run.pop("$defs", {}), **phase.pop("$defs", {})}
    defs["PhaseFile"] = _optional(phase)
    schedule = run["properties"]["schedule"]
    schedule["items"] = {
        "type": "object",
        "title": "Phase",
        "description": "One phase: {<phase name>: {...}}, the name 1 to 100 ASCII letters, digits, _, - and . "
        "(not first); keys not given are inherited from the previous phase.",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": {"$ref": "#/$defs/PhaseFile"},
        "examples": schedule["examples"][0],
    }
    run["title"] = "arl experiment file"
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **run, "$defs": defs}
    return dict(_unwrapped(document))
