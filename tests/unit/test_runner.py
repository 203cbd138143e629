"""arl.run_experiment's parts that need no process: a document given as a mapping, the
callers that cannot run it, the export. (Runs: tests/e2e/test_run_experiment.py.)"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

import arl
from arl import runner
from arl.config import load_experiment
from arl.preflight import Refused

DUMMY = Path(__file__).resolve().parents[2] / "experiments" / "dummy.yml"


def test_arl_exports_run_experiment_lazily() -> None:
    assert arl.run_experiment is runner.run_experiment


def test_a_mapping_is_checked_as_the_file_it_was_read_from() -> None:
    document = YAML(typ="safe").load(DUMMY.read_text())
    with runner._experiment_file(document) as (file, shown):
        assert shown == "<document>"
        assert load_experiment(file, resolve_classes=False) == load_experiment(DUMMY, resolve_classes=False)
        private = Path(file)
    assert not private.exists()  # removed after the check
    values = (1.5e-05, float("inf"), "yes", "null", "", None, 2**62, "a: b # c")  # a tuple becomes a list
    with runner._experiment_file({**document, "run_config": {"values": values}}) as (file, _):
        spec = load_experiment(file, resolve_classes=False)
    assert spec.document["run_config"] == {"values": list(values)}


@pytest.mark.parametrize(
    ("value", "where", "says"),
    [
        ({1: "x"}, "run_config", "keys must be text, not int (1)"),
        ([{1, 2}], "run_config.0", "a set is not plain data"),
        ({"a": "\ud800"}, "run_config.a", "the text is not valid Unicode"),
    ],
)
def test_a_mapping_that_is_not_plain_data_is_refused_at_its_path(value: Any, where: str, says: str) -> None:
    document = {"uid": "x", "run_config": value}
    with pytest.raises(Refused) as caught, runner._experiment_file(document):
        pass
    assert caught.value.lines[0].startswith(f"error: <document>: {where}: {says}")
    assert caught.value.code == 2


def test_a_mapping_nested_beyond_the_bound_or_in_a_cycle_is_refused_not_a_recursion_error() -> None:
    looped: dict[str, Any] = {"uid": "x"}
    looped["run_config"] = looped
    with pytest.raises(Refused) as caught, runner._experiment_file(looped):
        pass
    assert "mappings and lists nest more than 64 deep here" in caught.value.lines[0]


def test_lines_about_the_private_file_name_the_document_instead() -> None:
    lines = ["error: /tmp/arl-doc-1/experiment.yml:3:5: seed: expected an integer", "1 problem found"]
    assert runner._relabelled(lines, "/tmp/arl-doc-1/experiment.yml", "<document>") == [
        "error: <document>: seed: expected an integer",
        "1 problem found",
    ]


def test_callers_that_cannot_hand_the_signals_over_are_refused_before_anything_is_checked(tmp_path: Path) -> None:
    async def in_a_loop() -> None:
        runner.run_experiment(DUMMY, store=tmp_path / "arl.db")

    with pytest.raises(RuntimeError, match="inside a running event loop"):
        asyncio.run(in_a_loop())
    caught: list[BaseException] = []

    def in_a_thread() -> None:
        try:
            runner.run_experiment(DUMMY, store=tmp_path / "arl.db")
        except RuntimeError as exc:
            caught.append(exc)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(timeout=30)
    assert [str(e) for e in caught] == [
        "run_experiment must be called from the main thread: it handles SIGINT and SIGTERM"
    ]
    assert not (tmp_path / "arl.db").exists()
