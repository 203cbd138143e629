"""The control API of live runs: a small HTTP API on 127.0.0.1 that the executor serves
while its runs go (:mod:`arl.controlapi.server`), the client ``arl-run ctl`` calls it with
(:mod:`arl.controlapi.client`), and what both sides agree on, here.

This module imports nothing heavy: ``arl-run ctl`` needs only it and the client (the
standard library), never Starlette or uvicorn.
"""

from __future__ import annotations

from typing import Any, Protocol

COMMANDS = ("pause", "resume", "save", "stop")
"""The words ``POST /runs/{uid}/{word}`` takes."""

TOKEN_FILE = "control.token"
"""The name of the file, in a run's folder, that holds the API's token (mode 0600)."""

CONTROL_EVENT = "control"
"""The kind of the event a run records at its start, whose detail says where its control API
answers: ``{"url": "http://127.0.0.1:PORT", "token_file": "/abs/path/control.token"}``."""


class Controls(Protocol):
    """What the API controls: the live runs of one executor.

    ``status`` and ``command`` raise :class:`arl.errors.ArlError`, with a message for the
    user, when they cannot do what is asked (the run is ending, a save is refused); the API
    answers that as 409 Conflict.
    """

    def live(self) -> list[str]:
        """The uids of the runs this executor is running now."""

    async def status(self, uid: str) -> dict[str, Any]:
        """Run ``uid``'s status, JSON-able: ``state``, ``phase``, ``workers`` (a list of
        ``{"worker", "episode", "step"}``), ``steps_per_s``, ``last_snapshot``, ``paused``."""

    async def command(self, uid: str, word: str) -> dict[str, Any]:
        """Carry out ``word`` (one of :data:`COMMANDS`) on run ``uid``; a JSON-able result."""
