"""Snapshots are written atomically, and only complete, unaltered ones are ever loaded."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arl.errors import ArlError
from arl.state import snapshot
from arl.state.snapshot import MANIFEST, begin, latest, load, snapshot_name

FIELDS = {"run_uid": "r1", "phase": "train", "workers": {"w0": {"episode": 3, "step": 41}}, "store_rows": {"steps": 9}}


def _save(state_dir: Path, name: str, payload: str = "weights") -> Path:
    staging = begin(state_dir, "r1", name)
    (staging.path / "w0" / "brain").mkdir(parents=True)
    (staging.path / "w0" / "brain" / "model.bin").write_text(payload)
    (staging.path / "loop.json").write_text("{}")
    return staging.commit(FIELDS)


def test_commit_renames_into_place_with_a_full_manifest(tmp_path: Path) -> None:
    staging = begin(tmp_path, "r1", "s1")
    assert staging.path.parent == tmp_path / "r1"
    assert staging.path.name.startswith(".")
    (staging.path / "env").mkdir()
    (staging.path / "env" / "state.bin").write_bytes(b"\x00\x01")
    assert not (tmp_path / "r1" / "s1").exists()  # nothing final until commit

    path = staging.commit(FIELDS)

    assert path == (tmp_path / "r1" / "s1").resolve()
    assert not staging.path.exists()
    assert [p.name for p in (tmp_path / "r1").iterdir()] == ["s1"]
    data = json.loads((path / MANIFEST).read_text())
    assert data["format"] == 1
    assert data["arl_version"]
    assert data["phase"] == "train"
    assert data["files"] == {"env/state.bin": snapshot.file_sha256(path / "env" / "state.bin")}
    manifest = load(path)
    assert manifest.fields == FIELDS
    assert manifest.files == data["files"]


def test_an_existing_name_is_refused(tmp_path: Path) -> None:
    _save(tmp_path, "s1")
    with pytest.raises(ArlError, match="exists already"):
        begin(tmp_path, "r1", "s1")
    late = begin(tmp_path, "r1", "s2")  # another writer took the name while this one was staging
    os.rename(_save(tmp_path, "s3"), tmp_path / "r1" / "s2")
    with pytest.raises(ArlError, match="exists already"):
        late.commit(FIELDS)


def test_reserved_fields_and_bad_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArlError, match="reserved"):
        begin(tmp_path, "r1", "s1").commit({"files": {}})
    with pytest.raises(ArlError, match="contains"):
        begin(tmp_path, "r1", "../x")
    with pytest.raises(ArlError, match="gives"):
        snapshot_name("%H:%M")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda p: (p / "w0" / "brain" / "model.bin").write_text("tampered"), "w0/brain/model.bin has changed"),
        (lambda p: (p / "loop.json").unlink(), "loop.json is missing"),
        (lambda p: (p / "w0" / "extra.txt").write_text("x"), "w0/extra.txt is not listed"),
        (lambda p: (p / MANIFEST).unlink(), "manifest.json is missing"),
        (lambda p: (p / MANIFEST).write_text("{"), "cannot be read"),
    ],
)
def test_load_refuses_an_altered_snapshot_naming_the_file(tmp_path: Path, change, named: str) -> None:  # type: ignore[no-untyped-def]
    path = _save(tmp_path, "s1")
    change(path)
    with pytest.raises(ArlError, match="incomplete or was altered") as caught:
        load(path)
    assert named in str(caught.value)


def test_latest_takes_the_newest_complete_snapshot_only(tmp_path: Path) -> None:
    assert latest(tmp_path, "r1") is None
    # names that sort the other way round: the time saved decides, not the name
    older = _save(tmp_path, "b")
    newer = _save(tmp_path, "a")
    assert latest(tmp_path, "r1") == newer
    # a kill -9 mid-save leaves a staging folder (with or without its manifest written)
    crashed = begin(tmp_path, "r1", "z")
    (crashed.path / "w0").mkdir()
    (crashed.path / "w0" / "half").write_text("x")
    (crashed.path / MANIFEST).write_text(json.dumps({"format": 1, "files": {}, "saved_at": "9999-01-01"}))
    # and a folder without a manifest (made by hand; commit never leaves one) is not complete
    (tmp_path / "r1" / "zz").mkdir()
    (tmp_path / "r1" / "zz" / "state").write_text("x")
    assert latest(tmp_path, "r1") == newer
    (newer / "loop.json").write_text("altered")
    assert latest(tmp_path, "r1") == older
    assert [m.path for m in snapshot.snapshots(tmp_path, "r1")] == [older]


def test_abort_removes_the_staging_folder(tmp_path: Path) -> None:
    staging = begin(tmp_path, "r1", "s1")
    (staging.path / "a" / "b").mkdir(parents=True)
    (staging.path / "a" / "b" / "f").write_text("x")
    staging.abort()
    assert list((tmp_path / "r1").iterdir()) == []


def test_default_names_are_utc_timestamps_sortable_as_text() -> None:
    early = snapshot_name(now=datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    late = snapshot_name(now=datetime(2024, 1, 2, 13, 0, 0, tzinfo=UTC))
    assert early == "20240102T030405.000006Z"
    assert early < late
    assert snapshot_name("state-%Y", datetime(2030, 1, 1, tzinfo=UTC)) == "state-2030"


def test_a_link_in_a_snapshot_is_refused(tmp_path: Path) -> None:
    staging = begin(tmp_path, "r1", "s1")
    (staging.path / "link").symlink_to(tmp_path)
    with pytest.raises(ArlError, match="not a plain file"):
        staging.commit(FIELDS)
