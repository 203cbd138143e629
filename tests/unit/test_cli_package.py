"""How arl is packaged: the ``arl-run`` entry point, the ``arl.cli`` package's import
cost, and the annotations shipped for users' type checkers."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import click

import arl.cli

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def test_the_entry_point_is_the_cli_group() -> None:
    module, _, name = PYPROJECT["project"]["scripts"]["arl-run"].partition(":")
    assert module == "arl.cli"
    group = getattr(arl.cli, name)
    assert isinstance(group, click.Group)
    assert sorted(group.commands) == ["check", "ctl", "dashboard", "db", "results", "run", "schema"]


def test_importing_the_cli_leaves_what_the_commands_need_to_the_commands() -> None:
    # (asyncio and numpy are arl.preflight's to keep out: `run` and `check` show its defaults.)
    heavy = ("zmq", "sqlalchemy", "alembic", "pandas", "matplotlib", "pydantic", "ruamel.yaml", "csv")
    heavy += ("arl.executor", "arl.config", "arl.store.engine", "arl.results.queries", "starlette", "uvicorn")
    code = f"import sys, arl.cli; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.split() == []


def test_arl_ships_its_annotations() -> None:
    assert (resources.files("arl") / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["arl"]


def test_a_mistyped_command_is_named_not_taken_for_a_file(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from arl.cli.app import main

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    said = runner.invoke(main, ["chekc", "a.yml"])
    assert said.exit_code == 2
    assert "no command 'chekc' (nor a file of that name); did you mean 'check'?" in said.output
    assert "did you mean 'results'" in runner.invoke(main, ["reslts", "list"]).output
    # A file of that name, or a word like no command, is still a file to run.
    (tmp_path / "chekc").write_text("not: an experiment\n")
    assert "did you mean" not in runner.invoke(main, ["chekc"]).output
    assert "did you mean" not in runner.invoke(main, ["zzzz.yml"]).output
