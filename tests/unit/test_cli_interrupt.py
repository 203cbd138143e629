"""Ctrl-C in the moment between the file check and the executor taking the signals over."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from arl import cli


def test_ctrl_c_before_the_executor_starts_exits_130_saying_nothing_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    def checked(*args: Any, **kwargs: Any) -> tuple[list[tuple[str, Any]], str]:
        return [("a.yml", object())], "sqlite:///arl.db"

    def interrupted(*args: Any) -> list[Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_preflight", checked)
    monkeypatch.setattr(cli, "_execute", interrupted)
    result = CliRunner().invoke(cli.main, ["run", "a.yml", "--store", "sqlite:///x.db"])
    assert result.exit_code == cli.EXIT_INTERRUPTED
    assert "interrupted before the runs started; nothing was run." in result.output
    assert "Aborted!" not in result.output
