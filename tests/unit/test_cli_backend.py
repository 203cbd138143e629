"""``arl-run run``'s options for where the runs go: ``--backend``, ``--ray-address`` and a
``--checkpoint-dir`` given as a ``file://`` URI, as the command reads them (the check and
the executor replaced: nothing runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from arl.cli import main, runs
from arl.cli.common import EXIT_CONFIG
from arl.config import modulepaths


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """What ``run`` hands the executor, for two checked runs; the module paths the command
    adds are taken off again."""
    monkeypatch.setattr(modulepaths, "_wanted", [])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("ARL_STORE_URL", f"sqlite:///{tmp_path}/arl.db")
    got: dict[str, Any] = {}

    def checked(*args: Any, **kwargs: Any) -> tuple[list[tuple[str, Any]], str]:
        return [("a.yml", object()), ("a.yml", object())], "somewhere"

    def execute(specs: list[Any], url: str, checkpoint_dir: str, where: runs.Where, *args: Any) -> list[Any]:
        got.update(checkpoint_dir=checkpoint_dir, where=where)
        return []

    monkeypatch.setattr(runs, "_preflight", checked)
    monkeypatch.setattr(runs, "_execute", execute)
    return got


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, ["run", "a.yml", *args])


def test_ray_goes_with_its_address_and_as_many_runs_at_once_as_there_are(handed: dict[str, Any]) -> None:
    done = _run("--backend", "ray", "--ray-address", "10.0.0.1:6379")
    assert done.exit_code == 0, done.output
    assert handed["where"] == runs.Where("ray", "10.0.0.1:6379", 2)
    assert _run("--backend", "ray", "-j", "1").exit_code == 0
    assert handed["where"] == runs.Where("ray", None, 1)
    assert _run().exit_code == 0
    assert handed["where"] == runs.Where("local", None, 1)
    assert handed["checkpoint_dir"] == "arl-checkpoints"


def test_an_address_without_the_ray_backend_is_refused(handed: dict[str, Any]) -> None:
    done = _run("--ray-address", "10.0.0.1:6379")
    assert done.exit_code == EXIT_CONFIG
    assert "Invalid value for --ray-address: a Ray cluster's address is for --backend ray" in done.output
    assert handed == {}
    unknown = _run("--backend", "docker")
    assert unknown.exit_code == EXIT_CONFIG
    assert "'docker' is not one of 'local', 'ray'" in unknown.output


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("file:///mnt/shared/ckpt", "/mnt/shared/ckpt"),
        ("file://localhost/mnt/shared/ckpt", "/mnt/shared/ckpt"),
        ("file:///mnt/my%20runs", "/mnt/my runs"),
        ("/mnt/shared/ckpt", "/mnt/shared/ckpt"),
        ("relative/ckpt", "relative/ckpt"),
        ("odd:name", "odd:name"),
    ],
)
def test_a_checkpoint_folder_is_a_path_or_a_file_uri(handed: dict[str, Any], given: str, path: str) -> None:
    done = _run("--backend", "ray", "--checkpoint-dir", given)
    assert done.exit_code == 0, done.output
    assert handed["checkpoint_dir"] == path


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("s3://bucket/x", "of URIs only file:// ones are taken for now: mount the storage on every node"),
        ("file://shared/ckpt", "names the host 'shared'"),
        ("file://", "names no folder"),
    ],
)
def test_other_uris_are_refused_saying_what_to_give(handed: dict[str, Any], given: str, says: str) -> None:
    done = _run("--backend", "ray", "--checkpoint-dir", given)
    assert done.exit_code == EXIT_CONFIG
    assert f"Invalid value for '--checkpoint-dir': {given}: " in done.output
    assert says in done.output
    assert handed == {}
