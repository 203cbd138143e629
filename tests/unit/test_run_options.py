"""What a run is started with: timeouts from $ARL_TIMEOUTS, exits described, ipc folders."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from arl.errors import ArlError
from arl.governor.options import Timeouts, describe_exit, timeouts_from
from arl.proc import ipc


def test_timeouts_come_from_the_environment_by_name() -> None:
    assert timeouts_from({}) == Timeouts()
    assert timeouts_from({"ARL_TIMEOUTS": " "}) == Timeouts()
    got = timeouts_from({"ARL_TIMEOUTS": "store=1.5, start=90,"})
    assert (got.store, got.start, got.request) == (1.5, 90.0, Timeouts().request)


@pytest.mark.parametrize("text", ["store", "store=", "store=-1", "store=0", "store=nan", "store=inf", "storage=5"])
def test_a_timeout_that_cannot_be_used_is_refused_saying_what_can(text: str) -> None:
    with pytest.raises(ValueError, match=r"\$ARL_TIMEOUTS: cannot use .*NAME one of start, request, .*above 0"):
        timeouts_from({"ARL_TIMEOUTS": text})


def test_an_exit_is_described_with_the_signal_by_name() -> None:
    assert describe_exit(-9) == "was killed by signal 9 (SIGKILL)"
    assert describe_exit(-15) == "was killed by signal 15 (SIGTERM)"
    assert describe_exit(-99) == "was killed by signal 99"
    assert describe_exit(1) == "exited with code 1"


def test_a_private_folder_is_made_where_its_ipc_paths_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    shallow = Path(tempfile.mkdtemp(prefix="arl-t-", dir="/tmp"))
    made = []
    try:
        for parent in (shallow, deep):
            monkeypatch.setattr(tempfile, "tempdir", str(parent))
            made.append(Path(ipc.private_dir("arl-t-")))
        near, short = made
        assert near.parent == shallow  # $TMPDIR is used while it leaves room
        assert short.parent in {Path(p) for p in ipc.SHORT_FOLDERS}  # else a short system folder
        for folder in made:
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            assert len(os.fsencode(folder / "g12345" / "broker")) <= ipc.IPC_PATH_MAX
    finally:
        for folder in made:
            folder.rmdir()
        shallow.rmdir()


def test_no_short_folder_is_an_error_saying_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("d" * 100)))
    missing = tmp_path / "missing"  # short enough, but cannot be written in
    monkeypatch.setattr(ipc, "SHORT_FOLDERS", (str(missing),))
    with pytest.raises(ArlError, match="set TMPDIR to a short folder you can write"):
        ipc.private_dir("arl-t-", room=ipc.IPC_PATH_MAX - len(os.fsencode(missing / "arl-t-12345678")))
