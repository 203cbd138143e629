"""The ``paths:`` key: folders of a run's own modules, checked where they are written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from arl.config import load_experiment, modulepaths
from arl.errors import ConfigError
from experiment_files import write


def _with_paths(tmp_path: Path, paths: str) -> Path:
    path = Path(write(tmp_path, uid="paths"))
    path.write_text(path.read_text() + f"paths: {paths}\n")
    return path


def test_folders_that_are_not_there_are_reported_at_their_line_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "a_file.py").write_text("")
    path = _with_paths(tmp_path, "[lib, missing, a_file.py, 3]")
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, resolve_classes=False)
    said = {p.path: (p.location.line, p.message) for p in caught.value.problems}
    line = len(path.read_text().splitlines())
    assert set(said) == {"paths.1", "paths.2", "paths.3"}
    assert said["paths.1"] == (
        line,
        f"{tmp_path / 'missing'} does not exist: give a folder that holds your modules, absolute or relative "
        f"to the experiment file's folder ({tmp_path})",
    )
    assert said["paths.2"][1].startswith(f"{tmp_path / 'a_file.py'} is a file: ")
    assert "string" in said["paths.3"][1]


def test_a_file_reads_as_its_folder_then_its_paths_resolved_from_there(tmp_path: Path) -> None:
    path = _with_paths(tmp_path, "[lib, /abs/olute, ~/home_lib]")
    assert modulepaths.of_file(str(path)) == [
        str(tmp_path), str(tmp_path / "lib"), "/abs/olute", os.path.expanduser("~/home_lib"),
    ]  # fmt: skip
    (tmp_path / "broken.yml").write_text("paths: [a\n")  # the check says what is wrong with it
    assert modulepaths.of_file(str(tmp_path / "broken.yml")) == [str(tmp_path)]
    assert modulepaths.of_file(str(tmp_path / "absent.yml")) == [str(tmp_path)]


def test_folders_go_on_the_path_last_and_once_never_on_pythonpath(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not PYTHONPATH: a fresh interpreter (the fork server, spawned where the starter has
    threads) puts that before the standard library, where a selectors.py beside the file
    would hide the real one."""
    monkeypatch.setattr(sys, "path", ["/installed"])
    monkeypatch.setenv("PYTHONPATH", "/mine")
    assert modulepaths.use([str(tmp_path), "/installed", str(tmp_path)]) == [str(tmp_path)]
    assert sys.path == ["/installed", str(tmp_path)]
    assert os.environ["PYTHONPATH"] == "/mine"


def test_a_library_callers_path_is_as_it_was_after_the_block(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "path", ["/installed", "/theirs"])
    with modulepaths.using([str(tmp_path), "/theirs"]):
        assert sys.path == ["/installed", "/theirs", str(tmp_path)]
    assert sys.path == ["/installed", "/theirs"]  # what the caller had stays
