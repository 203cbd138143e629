"""arl.run_experiment end to end: ``arl-run FILE`` as a call, in this process, with real
processes and a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from arl.errors import ArlError
from arl.messages.executor import RunOutcome
from arl.preflight import Refused
from arl.runner import run_experiment
from experiment_files import write

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
DUMMY = Path(__file__).resolve().parents[2] / "experiments" / "dummy.yml"


def test_a_file_runs_as_arl_run_runs_it_and_its_outcome_is_what_the_store_holds(tmp_path: Path, no_leaks) -> None:
    db = tmp_path / "arl.db"
    outcome = run_experiment(DUMMY, store=db, checkpoint_dir=tmp_path / "ckpt")
    assert isinstance(outcome, RunOutcome)
    assert (outcome.run_uid, outcome.status, outcome.error) == ("dummy-run", "FINISHED", None)
    with sqlite3.connect(db) as conn:
        run = conn.execute("select id, uid, status, end_reason, error from experiment_runs").fetchall()
        assert run == [(outcome.run_id, outcome.run_uid, outcome.status, outcome.reason, outcome.error)]
        counts = [
            conn.execute(f"select count(*) from {table}").fetchone()[0]
            for table in ("phases", "episodes", "environment_steps", "agent_actions")
        ]
        saved = conn.execute("select path from brain_checkpoints").fetchall()
    assert [outcome.phases, outcome.episodes, outcome.steps, outcome.actions] == counts == [2, 2, 20, 40]
    # The brains went where checkpoint_dir said, as --checkpoint-dir sends them.
    assert len(saved) == 2
    assert all(Path(path).is_relative_to(tmp_path / "ckpt") for (path,) in saved)


def test_a_module_beside_the_file_hides_nothing_and_the_callers_path_is_left_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaks
) -> None:
    """The file's folder goes on the path after the standard library, in the fork server
    too (a fresh interpreter here, which a PYTHONPATH would have given the folder first):
    a selectors.py beside the file is not the one asyncio and ZeroMQ import."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "selectors.py").write_text("raise ImportError('the selectors.py beside the file was imported')\n")
    file = folder / "dummy.yml"
    file.write_text(DUMMY.read_text())
    monkeypatch.delenv("PYTHONPATH", raising=False)
    path_before = list(sys.path)
    outcome = run_experiment(file, store=tmp_path / "arl.db", checkpoint_dir=tmp_path / "ckpt")
    assert (outcome.status, outcome.error) == ("FINISHED", None)
    assert sys.path == path_before
    assert "PYTHONPATH" not in os.environ


def test_a_wrong_experiment_raises_naming_the_place_in_the_file_or_the_document(tmp_path: Path) -> None:
    db = tmp_path / "arl.db"
    file = write(tmp_path, muscle="arl.dummy:NoSuchMuscle")
    lines = Path(file).read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "NoSuchMuscle" in text)
    column = lines[line - 1].index("arl.dummy:NoSuchMuscle") + 1
    with pytest.raises(Refused) as caught:
        run_experiment(file, store=db, checkpoint_dir=tmp_path / "ckpt")
    assert isinstance(caught.value, ArlError)
    assert caught.value.code == 2  # arl-run's exit code for a wrong file
    first = f"error: {file}:{line}:{column}: schedule.0.train.agents.0.muscle.name: "
    assert caught.value.lines[0].startswith(first), caught.value.lines
    assert str(caught.value).startswith(first)
    assert caught.value.lines[-1] == "1 problem found; nothing was run."

    # The same mistake in a document already read: named by its path in the document.
    document = YAML(typ="safe").load(Path(file).read_text())
    with pytest.raises(Refused) as caught:
        run_experiment(document, store=f"sqlite:///{db}", checkpoint_dir=tmp_path / "ckpt")
    assert caught.value.lines[0].startswith("error: <document>: schedule.0.train.agents.0.muscle.name: ")
    assert str(tmp_path) not in str(caught.value)  # not the private file the check read
    assert not db.exists()  # a wrong experiment creates no store
