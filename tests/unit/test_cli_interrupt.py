"""The run command before the executor takes over: Ctrl-C in that moment, unusable timeouts."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from arl.cli import main, runs
from arl.cli.common import EXIT_CONFIG, EXIT_INTERRUPTED


def test_ctrl_c_before_the_executor_starts_exits_130_saying_nothing_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    def checked(*args: Any, **kwargs: Any) -> tuple[list[tuple[str, Any]], str]:
        return [("a.yml", object())], "sqlite:///arl.db"

    def interrupted(*args: Any) -> list[Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "_preflight", checked)
    monkeypatch.setattr(runs, "_execute", interrupted)
    result = CliRunner().invoke(main, ["run", "a.yml", "--store", "sqlite:///x.db"])
    assert result.exit_code == EXIT_INTERRUPTED
    assert "interrupted before the runs started; nothing was run." in result.output
    assert "Aborted!" not in result.output


def test_unusable_timeouts_exit_2_before_the_store_is_touched(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the files were checked (and the store opened) despite unusable timeouts")

    monkeypatch.setattr(runs, "_preflight", never)
    monkeypatch.setenv("ARL_TIMEOUTS", "start=soon")
    result = CliRunner().invoke(main, ["run", "a.yml", "--store", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code == EXIT_CONFIG
    assert "ARL_TIMEOUTS: cannot use 'start=soon'" in result.output
    assert not (tmp_path / "x.db").exists()
