"""Snapshots are written atomically, and only complete, unaltered ones are ever loaded."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from arl.errors import ArlError
from arl.state import snapshot
from arl.state.snapshot import (
    DIGEST,
    FORMAT,
    MANIFEST,
    STAGING_PATTERN,
    begin,
    latest,
    load,
    snapshot_name,
    snapshots,
    sweep_staging,
)
from arl.testing import poll_for

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
    assert data["format"] == FORMAT == 2
    assert data["seq"] == 1
    digest = hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest()
    assert (path / DIGEST).read_text() == f"{digest}  manifest.json\n"  # sha256sum -c reads it
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
        (lambda p: (p / MANIFEST).write_text("{"), "manifest.json does not match the sha256 in"),
        (lambda p: (p / DIGEST).unlink(), "manifest.sha256 is missing"),
        (lambda p: (p / MANIFEST).write_text((p / MANIFEST).read_text().replace("train", "test")), "does not match"),
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


def test_seq_orders_the_snapshots_whatever_the_clock_and_the_names_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wall clock steps back between saves (NTP, a VM restored): the order is still
    the order they were made in, by their sequence numbers."""
    times = iter(datetime(2030, 1, 1, tzinfo=UTC) - timedelta(hours=i) for i in range(10))

    class SteppingBack(datetime):
        @classmethod
        def now(cls, tz: object = None) -> SteppingBack:  # type: ignore[override]
            return next(times)  # type: ignore[return-value]

    monkeypatch.setattr(snapshot, "datetime", SteppingBack)
    made = [_save(tmp_path, name) for name in ["c", "b", "a"]]
    found = snapshots(tmp_path, "r1")
    assert [m.path for m in found] == made
    assert [m.seq for m in found] == [1, 2, 3]
    assert found[0].saved_at > found[2].saved_at  # the clock went back
    assert latest(tmp_path, "r1") == made[-1]
    snapshot.shutil.rmtree(made[1])  # a keeper removed one: the next is still 1 + the highest
    assert load(_save(tmp_path, "d")).seq == 4


def test_a_component_may_not_write_the_digest_and_format_1_is_refused_clearly(tmp_path: Path) -> None:
    staging = begin(tmp_path, "r1", "s1")
    (staging.path / DIGEST).write_text("x")
    with pytest.raises(ArlError, match=r"manifest\.sha256 was written by a component"):
        staging.commit(FIELDS)
    old = tmp_path / "r1" / "old"
    old.mkdir()
    (old / MANIFEST).write_text(json.dumps({"format": 1, "files": {}, "arl_version": "0.1.0", "saved_at": "x"}))
    with pytest.raises(ArlError, match=r"format 1 \(written by arl 0.1.0\); this arl .* reads format 2 only"):
        load(old)
    with pytest.raises(ArlError, match="reserved"):
        begin(tmp_path, "r1", "s2").commit({"seq": 9})


def test_latest_hashes_only_the_newest_down_to_one_that_loads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    oldest, middle, newest = (_save(tmp_path, name) for name in ["s1", "s2", "s3"])
    (oldest / "loop.json").write_text("damaged")  # latest never gets that far down
    with caplog.at_level(logging.WARNING, logger="arl.state.snapshot"):
        assert latest(tmp_path, "r1") == newest
    assert caplog.text == ""
    (newest / "loop.json").write_text("damaged")
    with caplog.at_level(logging.WARNING, logger="arl.state.snapshot"):
        assert latest(tmp_path, "r1") == middle
    assert "s3" in caplog.text
    assert "s1" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arl.state.snapshot"):
        assert [m.path for m in snapshots(tmp_path, "r1")] == [middle]  # the full listing hashes all
    assert "s1" in caplog.text


def test_sweep_staging_removes_only_this_runs_staging_folders(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kept = _save(tmp_path, "s1")
    empty = begin(tmp_path, "r1", "s2").path  # killed before any file was written
    full = begin(tmp_path, "r1", "s3")
    (full.path / "w0" / "env").mkdir(parents=True)
    (full.path / "w0" / "env" / "state.bin").write_bytes(b"x" * 100)
    (full.path / "w0" / "env" / "link").symlink_to(kept)  # removed as a link, never followed
    other_run = begin(tmp_path, "r2", "s1").path
    run = tmp_path / "r1"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    (run / ".staging-evil-0123abcd").symlink_to(outside, target_is_directory=True)
    (run / ".staging-file-89abcdef").write_text("a file, not a folder")
    (run / ".staging-notes").mkdir()  # not a name begin() gives
    (run / "keepme").mkdir()

    assert sweep_staging(tmp_path, "r1", older_than=3600) == []  # all just made
    hour_ago = time.time() - 3601
    os.utime(empty, (hour_ago, hour_ago))
    assert sweep_staging(tmp_path, "r1", older_than=3600) == [empty]
    with caplog.at_level(logging.WARNING, logger="arl.state.snapshot"):
        assert sweep_staging(tmp_path, "r1") == [full.path]
    assert "staging-evil-0123abcd" in caplog.text
    assert sorted(p.name for p in run.iterdir()) == [
        ".staging-evil-0123abcd", ".staging-file-89abcdef", ".staging-notes", "keepme", "s1",
    ]  # fmt: skip
    assert (outside / "precious").exists()
    assert load(kept).path == kept
    assert other_run.exists()
    assert sweep_staging(tmp_path, "nothing-here") == []
    with pytest.raises(ArlError, match="older_than"):
        sweep_staging(tmp_path, "r1", older_than=-1)


WRITER = """
import os, sys
from pathlib import Path
from arl.state.snapshot import begin

state_dir, ready = sys.argv[1], Path(sys.argv[2])
payload = os.urandom(4096)
ready.touch()
for i in range(1, 10**6):
    staging = begin(state_dir, "r1", f"p{os.getpid()}-{i:06d}")
    for j in range(40):
        folder = staging.path / f"w{j % 4}" / f"part{j % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{j}.bin").write_bytes(payload[: 512 + 64 * j])
    staging.commit({"i": i, "pid": os.getpid()})
"""


def test_a_snapshot_killed_at_random_moments_is_complete_or_ignored(tmp_path: Path) -> None:
    """A writer (a real process) saves snapshots of 40 files in a loop and is killed -9 at
    random moments: every folder a listing returns loads, hashes verified; the staging
    folders the kills left are ignored, then swept."""
    delays = random.Random(12)
    run = tmp_path / "r1"
    for attempt in range(7):
        ready = tmp_path / f"ready{attempt}"
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(ready)])
        try:
            poll_for(ready.exists, timeout=10, what="the writer to start")
            if attempt == 0:  # at least one complete snapshot, however slow the disk
                # (the run's folder appears with the first staging folder, after "ready")
                poll_for(
                    lambda: run.is_dir() and any(p.name[0] != "." for p in run.iterdir()),
                    timeout=10, what="a snapshot",
                )  # fmt: skip
            time.sleep(delays.uniform(0.02, 0.2))  # the random moment, not a wait for something
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL

    final = sorted(p for p in run.iterdir() if not p.name.startswith("."))
    staging = sorted(p for p in run.iterdir() if p.name.startswith("."))
    assert final, "no snapshot completed: the writer never got that far"
    assert staging, "no kill fell mid-save"
    assert all(STAGING_PATTERN.fullmatch(p.name) for p in staging)
    found = snapshots(tmp_path, "r1")
    assert sorted(m.path for m in found) == final  # every final folder is complete
    assert [m.seq for m in found] == list(range(1, len(final) + 1))  # one writer after the other
    assert latest(tmp_path, "r1") == found[-1].path
    for manifest in found:
        assert manifest.files == load(manifest.path).files
        assert len(manifest.files) == 40
    assert sorted(sweep_staging(tmp_path, "r1")) == staging
    assert sorted(run.iterdir()) == final
    assert [m.path for m in snapshots(tmp_path, "r1")] == [m.path for m in found]
