"""The JSON Schema `arl-run schema` prints accepts the shipped examples and flags typos."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

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
