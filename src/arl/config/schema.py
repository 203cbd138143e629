"""A JSON Schema of the experiment file, for editors to validate and complete with.

Built from the same pydantic models the loader validates with. Phases are validated
after inheritance, so in the schema every key of a phase is optional.
"""

from __future__ import annotations

from typing import Any

from arl.config.spec import PhaseFile, RunFile

SCHEMA_ID = "https://arl.invalid/schema/experiment-file/v1"


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with nothing required: a later phase may inherit any key."""
    schema = dict(schema)
    schema.pop("required", None)
    return schema


def json_schema() -> dict[str, Any]:
    """The experiment file's JSON Schema (draft 2020-12)."""
    run = RunFile.model_json_schema(ref_template="#/$defs/{model}")
    phase = PhaseFile.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**run.pop("$defs", {}), **phase.pop("$defs", {})}
    defs["PhaseFile"] = _optional(phase)
    run["properties"]["schedule"]["items"] = {
        "type": "object",
        "description": "One phase: {<phase name>: {...}}; keys not given are inherited from the previous phase.",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": {"$ref": "#/$defs/PhaseFile"},
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **run, "$defs": defs}
