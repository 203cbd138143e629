"""The runs' processes' own output on the live table's terminal (``arl.childoutput``) from a
fork server that was spawned (a fresh interpreter: ``arl.run_experiment``'s, or a process
with threads), not forked from ``arl-run`` (the e2e test of the live table has that one)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from arl.childoutput import OutputRelay
from arl.errors import ComponentCrashed
from arl.proc import forkserver
from arl.proc.child import ChildSpec, SupervisedChild
from logging_kit import log_server

pytestmark = pytest.mark.timeout(30)


WRITER = """
import os

def write(context):
    os.write(1, b"to stdout\\n")
    os.write(2, b"to stderr\\n")
"""


@pytest.mark.usefixtures("no_leaks")
def test_a_spawned_fork_servers_children_write_to_the_terminal_it_was_given(
    rundir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Their stdout only: arl-run's stderr is not that terminal (``arl-run x.yml 2>err.log``),
    so what they write to theirs goes where it goes (the server was started with it)."""
    (tmp_path / "writer.py").write_text(WRITER)
    monkeypatch.syspath_prepend(str(tmp_path))  # (the spawned server is given this sys.path)
    said: list[str] = []
    relay = OutputRelay(lambda lines, _: said.append(lines or ""), 80, 24, takes_stderr=False)
    with forkserver.serving(preload=()) as server, log_server(rundir) as logs:  # (none yet: spawned)
        server.send_output(relay.terminal(), stderr=relay.takes_stderr)
        relay.handed_over()
        # A child whose target writes to its stdout and stderr, then returns before ready.
        child = SupervisedChild(ChildSpec("test", "writer", "writer:write"), logs.config)

        async def start() -> None:
            try:
                with pytest.raises(ComponentCrashed, match="test:writer"):
                    await child.start(20.0)
            finally:
                await child.stop(grace=0.0)

        asyncio.run(start())
    assert relay.finish(5.0)  # (every writer gone with the server: all of it read)
    assert said == ["to stdout"]
    assert "to stderr" in capfd.readouterr().err
