"""The runs' processes' own output on the live table's terminal (``arl.childoutput``) from a
fork server that was spawned (a fresh interpreter: ``arl.run_experiment``'s, or a process
with threads), not forked from ``arl-run`` (the e2e test of the live table has that one)."""

from __future__ import annotations

import asyncio

import pytest

from arl.childoutput import OutputRelay
from arl.errors import ComponentCrashed
from arl.proc import forkserver
from arl.proc.child import ChildSpec, SupervisedChild
from logging_kit import log_server

pytestmark = pytest.mark.timeout(30)


@pytest.mark.usefixtures("no_leaks")
def test_a_spawned_fork_servers_children_write_to_the_terminal_it_was_given(rundir: str) -> None:
    said: list[str] = []
    relay = OutputRelay(said.append, 80, 24)
    with forkserver.serving(preload=()) as server, log_server(rundir) as logs:  # (none yet: spawned)
        server.send_output(relay.terminal())
        relay.handed_over()
        # A child whose target prints what it is given (its context), then returns before ready.
        child = SupervisedChild(ChildSpec("test", "printer", "builtins:print"), logs.config)

        async def start() -> None:
            try:
                with pytest.raises(ComponentCrashed, match="test:printer"):
                    await child.start(20.0)
            finally:
                await child.stop(grace=0.0)

        asyncio.run(start())
    assert relay.finish(5.0)  # (every writer gone with the server: all of it read)
    assert "ChildContext" in "\n".join(said)
