"""The control API's server: Starlette routes served by uvicorn, as a task of the executor's
event loop (no thread), on 127.0.0.1 and a free port.

Routes (every request needs ``Authorization: Bearer <token>``; every answer is JSON, an
error ``{"error": message}``):

* ``GET /runs``: ``{"runs": [uid, ...]}``, the live runs.
* ``GET /runs/{uid}/status``: ``{"run": uid, **status}`` (:meth:`Controls.status`).
* ``POST /runs/{uid}/{word}``, ``word`` one of :data:`arl.controlapi.COMMANDS`:
  ``{"run": uid, "command": word, "result": {...}}`` once the command is carried out.

Commands wait in a bounded queue and are carried out one at a time, in the order they
came, by one consumer task: a pause and a save of the same run never interleave. A full
queue is 503 (retry later); a command not carried out within the server's timeout is 504
(one not yet begun is then dropped, one begun goes on); an :class:`ArlError` of the target
is 409; an unknown run 404, saying which runs are live; a missing or wrong token 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import socket
from collections.abc import Coroutine, Generator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from arl.asgi import quiet_config
from arl.controlapi import COMMANDS, TOKEN_FILE, Controls
from arl.errors import ArlError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
QUEUE_SIZE = 16
"""Commands that may wait for the one being carried out (pamiq-core's
``web_api_command_queue_size``)."""
COMMAND_TIMEOUT = 60.0
"""Seconds a request waits for its command's (or a status's) result before it is 504."""
CLOSE_TIMEOUT = 5.0
"""Seconds :meth:`ControlServer.close` waits for uvicorn to finish its connections."""
START_TIMEOUT = 10.0
"""Seconds :meth:`ControlServer.start` waits for uvicorn to listen (a few loop turns)."""
CLOSING = "the control API is closing: arl-run is ending"


def new_token() -> str:
    """A fresh token for one executor's API: 32 random bytes, URL-safe text."""
    return secrets.token_urlsafe(32)


def write_token(folder: Path, token: str) -> Path:
    """Write ``token`` to ``folder/control.token`` (``folder`` created if missing) and return
    that path.

    The file is created with mode 0600 (``O_CREAT | O_EXCL``, never a chmod after the fact),
    so no other user can read it even for an instant, and it replaces an earlier one by a
    rename: a reader sees the old token or the new one, never half of one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TOKEN_FILE
    temporary = folder / f".{TOKEN_FILE}.{secrets.token_hex(8)}"
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(token + "\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _TokenGate:
    """ASGI middleware: every HTTP request must carry the token, whatever its path (an
    unknown path without the token is 401, not 404: nothing is told to a caller without
    it). Compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("authorization")
            refusal = self._refusal(given)
            if refusal is not None:
                challenge = {"WWW-Authenticate": 'Bearer realm="arl"'}
                await _error(401, refusal, challenge)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, given: str | None) -> str | None:
        if given is None:
            return f"no token: send the header `Authorization: Bearer <token>`, the token in the run's {TOKEN_FILE}"
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.expected):
            return f"wrong token: the token is in the run's {TOKEN_FILE}, written anew each time arl-run starts"
        return None


@dataclass(eq=False)
class _Command:
    uid: str
    word: str
    result: asyncio.Future[dict[str, Any]]
    begun: bool = field(default=False)


class _Uncontrollable(Exception):
    """A request the API refuses with ``status``; the handlers' one way of saying no."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlServer:
    """The HTTP control API of ``controls``, served in the running event loop.

    ``await start(token)`` binds 127.0.0.1 on a free port and returns the URL once the API
    answers; ``await close()`` stops it: when it returns, the port is closed, the consumer
    task has ended (a command being carried out is cancelled), and every request still
    waiting was answered 503. Both are idempotent; ``async with`` closes.
    """

    def __init__(
        self, controls: Controls, *, queue_size: int = QUEUE_SIZE, command_timeout: float = COMMAND_TIMEOUT
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        self.controls = controls
        self.queue_size = queue_size
        self.command_timeout = command_timeout
        self._queue: asyncio.Queue[_Command] = asyncio.Queue(maxsize=queue_size)
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._url: str | None = None
        self._current: _Command | None = None  # the command being carried out
        self._closing = False

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; raises :class:`RuntimeError` before :meth:`start`."""
        if self._url is None:
            raise RuntimeError("the control API has not started")
        return self._url

    @property
    def waiting(self) -> int:
        """Commands in the queue, not yet begun."""
        return self._queue.qsize()

    async def start(self, token: str) -> str:
        """Serve the API, protected by ``token``; return its URL once it accepts connections."""
        if self._closing:
            raise RuntimeError("the control API was closed; make a new ControlServer")
        if self._url is not None:
            return self._url
        # The socket is bound here, not by uvicorn: the port is known at once, and a failure
        # to bind is an OSError to report, not uvicorn's sys.exit inside a task.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((HOST, 0))
            sock.listen(64)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ArlError(f"the control API cannot listen on {HOST}: {exc}") from exc
        self._server = server = _QuietServer(self._config(token))
        self._consumer = asyncio.create_task(self._consume(), name="control-api-commands")
        self._serving = serving = asyncio.create_task(server.serve(sockets=[sock]), name="control-api")
        await self._started(server, serving, sock)
        self._url = f"http://{HOST}:{sock.getsockname()[1]}"
        log.info("control API at %s", self._url)
        return self._url

    async def _started(self, server: uvicorn.Server, serving: asyncio.Task[None], sock: socket.socket) -> None:
        """Wait until uvicorn listens (its startup is a few loop turns), or report why it did not."""
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while not server.started:
            if serving.done() or asyncio.get_running_loop().time() > deadline:
                why = repr(serving.exception()) if serving.done() else f"not within {START_TIMEOUT:g} s"
                await self.close()
                sock.close()
                raise ArlError(f"the control API did not start: {why}")
            await asyncio.sleep(0.005)

    def _config(self, token: str) -> uvicorn.Config:
        app = Starlette(
            routes=[
                Route("/runs", self._runs, methods=["GET"]),
                Route("/runs/{uid}/status", self._status, methods=["GET"]),
                Route("/runs/{uid}/{word}", self._command, methods=["POST"]),
            ],
            middleware=[Middleware(_TokenGate, token=token)],
            exception_handlers={HTTPException: _http_error},
        )
        return quiet_config(app, close_timeout=int(CLOSE_TIMEOUT))  # (the executor logs what the commands do)

    async def close(self) -> None:
        """Stop serving; see the class for what holds when this returns."""
        self._closing = True
        self._refuse_waiting()  # before the consumer is cancelled, which forgets its current command
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        if self._server is not None and self._serving is not None:
            await self._stop_serving(self._server, self._serving)

    async def _stop_serving(self, server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
        """Have uvicorn close its port and finish its connections; a failure of uvicorn is
        logged, not raised: closing always finishes."""
        server.should_exit = True
        if not server.server_state.connections:
            # Nothing in flight: stop now rather than at uvicorn's next tick (up to 0.1 s,
            # which every arl-run would wait at its end), closing the port ourselves.
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            for listening in server.servers:
                listening.close()
                await listening.wait_closed()
            return
        try:
            await asyncio.wait_for(asyncio.shield(serving), CLOSE_TIMEOUT + 1)
        except TimeoutError:
            server.force_exit = True  # uvicorn has cancelled its requests by now; stop waiting on them
            await asyncio.gather(serving, return_exceptions=True)
        except Exception:
            log.exception("control API: uvicorn failed")

    def _refuse_waiting(self) -> None:
        """Answer the command cut short by closing, and those still queued, with 503."""
        waiting = [self._current] if self._current is not None else []
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for command in waiting:
            if not command.result.done():
                command.result.set_exception(_Uncontrollable(503, CLOSING))

    async def __aenter__(self) -> ControlServer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the commands' queue ------------------------------------------------------------------

    async def _consume(self) -> None:
        """Carry out the queued commands one at a time, in order. A command whose request
        gave up before it began is dropped: it is not carried out by surprise later."""
        while True:
            command = await self._queue.get()
            if command.result.done():
                continue
            command.begun, self._current = True, command
            try:
                outcome = await self.controls.command(command.uid, command.word)
            except Exception as exc:  # the target's error goes back to its request
                if not command.result.done():
                    command.result.set_exception(exc)
            else:
                if not command.result.done():
                    command.result.set_result(outcome)
            finally:
                self._current = None

    def _enqueue(self, uid: str, word: str) -> _Command:
        if self._closing:
            raise _Uncontrollable(503, CLOSING)
        command = _Command(uid, word, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(command)
        except asyncio.QueueFull:
            raise _Uncontrollable(
                503, f"the queue of commands is full ({self.queue_size} waiting): retry in a moment"
            ) from None
        return command

    # -- the routes ---------------------------------------------------------------------------

    async def _runs(self, request: Request) -> Response:
        return JSONResponse({"runs": self.controls.live()})

    async def _status(self, request: Request) -> Response:
        uid = request.path_params["uid"]

        async def answer() -> dict[str, Any]:
            self._check_live(uid)
            status = await asyncio.wait_for(self.controls.status(uid), self.command_timeout)
            return {"run": uid, **status}

        return await _answered(answer(), f"the status of run {uid!r}", self.command_timeout)

    async def _command(self, request: Request) -> Response:
        uid, word = request.path_params["uid"], request.path_params["word"]

        async def answer() -> dict[str, Any]:
            if word not in COMMANDS:
                raise _Uncontrollable(404, f"no command {word!r}: the commands are {', '.join(COMMANDS)}")
            self._check_live(uid)
            command = self._enqueue(uid, word)
            try:
                result = await asyncio.wait_for(command.result, self.command_timeout)
            except TimeoutError:
                raise _Uncontrollable(504, _late(word, uid, self.command_timeout, command.begun)) from None
            return {"run": uid, "command": word, "result": result}

        return await _answered(answer(), f"{word!r} for run {uid!r}", self.command_timeout)

    def _check_live(self, uid: str) -> None:
        live = self.controls.live()
        if uid not in live:
            which = f"the live runs are {', '.join(map(repr, live))}" if live else "no run is live"
            raise _Uncontrollable(404, f"no live run {uid!r} here: {which}")


async def _answered(answer: Coroutine[Any, Any, dict[str, Any]], what: str, timeout: float) -> Response:
    """The one error boundary of the routes: ``answer``'s result as JSON, or its error as a
    JSON error with its status (ArlError: 409, an unexpected one: 500, logged)."""
    try:
        return JSONResponse(await answer)
    except _Uncontrollable as exc:
        return _error(exc.status, str(exc))
    except ArlError as exc:
        return _error(409, str(exc))
    except TimeoutError:
        return _error(504, f"{what} did not come within {timeout:g} s: the run is busy or stuck; try again")
    except Exception as exc:
        log.exception("control API: %s failed", what)
        return _error(500, f"{what} failed in arl-run: {type(exc).__name__}: {exc} (its log has the traceback)")


def _late(word: str, uid: str, timeout: float, begun: bool) -> str:
    if begun:
        return (
            f"{word!r} for run {uid!r} did not finish within {timeout:g} s; it goes on and may still take effect: "
            "`arl-run ctl status` shows"
        )
    return f"{word!r} for run {uid!r} did not begin within {timeout:g} s (earlier commands took long): dropped"


async def _http_error(request: Request, exc: Exception) -> Response:
    """The router's own refusals (no such route, wrong method) as JSON, as every other error."""
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", dict(exc.headers or {}))


class _QuietServer(uvicorn.Server):
    """uvicorn's server without its signal handlers: signals are the executor's (arl-run
    turns SIGINT and SIGTERM into stopping the runs), and a library never installs them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
