"""The JSON Schema `arl-run schema` prints accepts the shipped examples and flags typos."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from ruamel.yaml import YAML

from arl.config import filemodels
from arl.config.schema import json_schema

EXPERIMENTS = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_is_valid(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    document = json.loads(json.dumps(YAML(typ="safe").load(path.read_text())))
    assert [e.message for e in validator.iter_errors(document)] == []


def test_a_misspelled_key_is_flagged(validator: jsonschema.Draft202012Validator) -> None:
    agent = {"name": "a", "brain": {"name": "m:B"}, "muscel": {"name": "m:M"}, "objective": {"name": "m:O"}}
    document = {"uid": "x", "schedule": [{"p": {"agents": [agent]}}]}
    messages = [e.message for e in validator.iter_errors(document)]
    assert "Additional properties are not allowed ('muscel' was unexpected)" in messages


def test_a_later_phase_may_state_only_what_changes(validator: jsonschema.Draft202012Validator) -> None:
    document = {"uid": "x", "schedule": [{"a": {"phase_config": {"mode": "train"}}}, {"b": {}}]}
    assert list(validator.iter_errors(document)) == []


def test_the_phase_config_keys_say_what_they_mean_and_episodes_counts_per_worker() -> None:
    from arl.config.schema import json_schema

    properties = json_schema()["$defs"]["PhaseConfigFile"]["properties"]
    assert "EACH WORKER" in properties["episodes"]["description"]
    assert all(properties[key].get("description") for key in properties)


def _keys(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every key's subschema, named: the top level's keys, each $defs entry's, and the schedule's item."""
    yield from schema["properties"].items()
    for name, definition in schema["$defs"].items():
        for key, subschema in definition.get("properties", {}).items():
            yield f"{name}.{key}", subschema
    yield "schedule item", schema["properties"]["schedule"]["items"]


def test_every_key_and_mapping_says_what_it_is_with_examples() -> None:
    schema = json_schema()
    lacking = [
        f"{key}: no {what}" for key, sub in _keys(schema) for what in ("description", "examples") if not sub.get(what)
    ]
    lacking += [
        f"{name}: no description" for name, definition in schema["$defs"].items() if not definition.get("description")
    ]
    assert lacking == []
    # Docstrings wrap at the source's width; an editor's hover wraps the text itself.
    assert [key for key, sub in _keys(schema) if "\n" in sub["description"]] == []


def test_every_example_is_valid_for_its_key() -> None:
    schema = json_schema()
    wrong = []
    for key, subschema in _keys(schema):
        validator = jsonschema.Draft202012Validator({**subschema, "$defs": schema["$defs"]})
        examples = subschema["examples"]
        assert isinstance(examples, list), key
        wrong += [f"{key}: {example!r}: {e.message}" for example in examples for e in validator.iter_errors(example)]
    assert wrong == []


FILE_MODELS = filemodels._FileModel.__subclasses__()


@pytest.mark.parametrize("model", FILE_MODELS, ids=lambda m: m.__name__)
def test_every_example_passes_the_loaders_own_strict_validation(model: type[BaseModel]) -> None:
    # The JSON Schema is derived from the models; this holds the examples to the models themselves.
    wrong = []
    for key, info in model.model_fields.items():
        # The field alone, as strict as the file models (strictness is a model's config).
        annotation: Any = info.annotation
        field = create_model("Field", __config__=ConfigDict(strict=True), value=(annotation, info))
        for example in info.examples or []:
            try:
                field.model_validate({"value": example})
            except ValidationError as error:
                wrong.append(f"{model.__name__}.{key}: {example!r}: {error}")
    assert wrong == []
