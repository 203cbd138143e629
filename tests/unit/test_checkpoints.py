"""Saved brains stay inside the checkpoint dir, never replace a folder, and load only unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arl.checkpoints import RunCheckpoints, Saved, directory_digest, verify
from arl.conductors.agent import AgentConductor
from arl.errors import ArlError
from arl.messages import control

DUMMY = ["arl.dummy:DummyBrain", {}], ["arl.dummy:DummyMuscle", {}], ["arl.dummy:DummyObjective", {}]


def _agent(name: str, load_from: list[str] | None = None) -> AgentConductor:
    agent = AgentConductor()
    agent.setup(control.SetupAgent(0, name, *DUMMY, [], [], 1, True, 7, load_from))
    return agent


def _victim(tmp_path: Path) -> Path:
    """A folder arl did not create, with something in it."""
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "precious.txt").write_text("mine")
    return victim


def test_names_that_climb_out_are_saved_inside_the_checkpoint_dir(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    root = tmp_path / "ckpt" / "deep"
    checkpoints = RunCheckpoints(root, "../../../x", key="k")
    checkpoints.phase_folder(1, "../..")
    directory = checkpoints.brain_folder("../..", "../../x")
    assert directory.is_relative_to(root.resolve())
    reply = _agent("../../x").save(control.SaveBrain("../../x", str(directory)))
    assert Path(reply.directory) == directory
    assert (directory / "dummy_brain.json").is_file()
    assert reply.sha256 == directory_digest(directory)
    assert [p.name for p in victim.iterdir()] == ["precious.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "x"]


def test_saving_into_a_folder_that_exists_refuses_and_keeps_it(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    with pytest.raises(ArlError, match=f"refusing to save agent a's brain into {victim}: it exists already"):
        _agent("a").save(control.SaveBrain("a", str(victim)))
    assert (victim / "precious.txt").read_text() == "mine"


def test_two_runs_of_one_id_get_folders_of_their_own(tmp_path: Path) -> None:
    # Two stores in one folder both have a run 1.
    first, second = RunCheckpoints(tmp_path, "exp", key="aaaa"), RunCheckpoints(tmp_path, "exp", key="bbbb")
    assert first.phase_folder(1, "train") != second.phase_folder(1, "train")
    assert first.folder is not None
    assert first.folder.name == "exp-1-aaaa"
    assert second.folder is not None
    assert second.folder.name == "exp-1-bbbb"
    assert RunCheckpoints(tmp_path, "exp").key != RunCheckpoints(tmp_path, "exp").key
    # A run folder that exists already (the same key) is an error, and keeps what it holds.
    (tmp_path / "sweep-a=1,b=[2]-2-cccc").mkdir()
    (tmp_path / "sweep-a=1,b=[2]-2-cccc" / "kept").write_text("")
    with pytest.raises(ArlError, match="exists already"):
        RunCheckpoints(tmp_path, "sweep-a=1,b=[2]", key="cccc").phase_folder(2, "train")
    assert (tmp_path / "sweep-a=1,b=[2]-2-cccc" / "kept").exists()
    # ... and so is saving one phase's brains twice.
    with pytest.raises(ArlError, match="exists already"):
        first.phase_folder(1, "train")


def test_a_brain_is_loaded_only_as_it_was_saved(tmp_path: Path) -> None:
    checkpoints = RunCheckpoints(tmp_path, "run", key="k")
    checkpoints.phase_folder(1, "train")
    directory = checkpoints.brain_folder("train", "a")
    reply = _agent("a").save(control.SaveBrain("a", str(directory)))
    assert verify(Saved(reply.directory, reply.sha256)) == directory
    assert _agent("a", [reply.directory, reply.sha256]).brain is not None

    brain_file = directory / "dummy_brain.json"
    state = json.loads(brain_file.read_text())
    brain_file.write_text(json.dumps({**state, "experiences": 1_000_000}))
    changed = directory_digest(directory)
    with pytest.raises(ArlError) as caught:
        _agent("a", [reply.directory, reply.sha256])
    message = str(caught.value)
    assert str(directory) in message
    assert reply.sha256 in message
    assert changed in message
    assert "changed after arl saved it" in message

    brain_file.unlink()
    directory.rmdir()
    with pytest.raises(ArlError, match=f"the saved brain {directory} is gone"):
        _agent("a", [reply.directory, reply.sha256])
