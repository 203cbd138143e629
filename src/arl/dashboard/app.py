"""The dashboard's web server: the page (``static/``) and its JSON API, a Starlette app
served by uvicorn, as the control API is (:mod:`arl.controlapi.server`).

Routes (every answer of the API is JSON, an error ``{"error": message}``):

* ``GET /``: the page; it polls the API every second.
* ``GET /api/runs``: ``{"store": {...}, "runs": [...], "total": n}`` (:meth:`StoreView.runs`).
* ``GET /api/runs/{id}``: ``{"store": {...}, "run": {...}, "phases": [...], ...}``
  (:meth:`StoreView.run`); 404 when the store has no such run (without ``store`` for an
  id no store could hold).
* ``GET /static/...``: the page's script and style.

An API request that waited too long for its turn to read the store is answered 503 (the
page asks again); one that failed unexpectedly, 500.

The store's text (uids, errors, events) reaches the page only as JSON, which the page
puts into the document as text, never as markup; the Content-Security-Policy header
lets the page run its own files only, so text that slipped through could not run. On a
loopback address, only requests for a loopback name (``Host``) are answered: a web page
elsewhere that rebinds its own name to 127.0.0.1 gets 400, not the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arl.asgi import quiet_config
from arl.dashboard.data import ID_MAX, StoreBusy, StoreView
from arl.errors import ArlError

STATIC = Path(__file__).resolve().parent / "static"
CLOSE_TIMEOUT = 2
"""Seconds uvicorn waits for open requests when the dashboard stops."""

SECURITY_HEADERS = {
    # The page's own files only: no inline script, nothing from another origin.
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
"""The names a browser on this machine uses for a loopback address (``Host``)."""
NO_STORE = {"cache-control": "no-store"}


class JSON(Response):
    """JSON by orjson: datetimes as ISO 8601, NaN and infinities as null (Starlette's own
    refuses NaN, which a stored metric may be)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def create_app(view: StoreView, *, hosts: list[str] | None = None) -> Starlette:
    """The dashboard of the store ``view`` reads; with ``hosts``, answering only requests
    whose ``Host`` names one of them (:func:`trusted_hosts`)."""

    def runs(request: Request) -> Response:
        return JSON(view.runs(), headers=NO_STORE)

    def run(request: Request) -> Response:
        run_id: int = request.path_params["run_id"]
        if run_id > ID_MAX:
            error = f"no run with id {run_id}: a store's ids go up to {ID_MAX}"
            return JSON({"error": error}, status_code=404, headers=NO_STORE)
        answer = view.run(run_id)
        if answer["run"] is None and answer["store"]["found"] and not answer["store"]["error"]:
            answer["error"] = f"no run with id {run_id} in the store {view.location}"
            return JSON(answer, status_code=404, headers=NO_STORE)
        return JSON(answer, headers=NO_STORE)

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    middleware = [Middleware(_SecurityHeaders)]
    if hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False))
    # Plain (not async) endpoints: Starlette runs them in its thread pool, so a slow read
    # of the store never stalls the server's event loop.
    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/api/runs", runs, methods=["GET"]),
            Route("/api/runs/{run_id:int}", run, methods=["GET"]),
            Mount("/static", _Static(directory=STATIC), name="static"),
        ],
        middleware=middleware,
        exception_handlers={StoreBusy: _busy, Exception: _failed},
    )


def trusted_hosts(sock: socket.socket, host: str) -> list[str] | None:
    """The names a request to ``sock``, bound for ``--host`` ``host``, may give as its
    ``Host``: on a loopback address its loopback names (and ``host`` as given); None (any)
    on another address, which whoever reaches it reaches anyway."""
    address = sock.getsockname()[0]
    if not ipaddress.ip_address(address.split("%")[0]).is_loopback:
        return None
    names = {*LOOPBACK_NAMES, _bracketed(address), _bracketed(host.lower())}
    return sorted(names)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def _busy(request: Request, exc: Exception) -> Response:
    """A request that waited too long for its turn to read: the page says so and asks again."""
    return JSON({"error": str(exc)}, 503, headers=NO_STORE)


async def _failed(request: Request, exc: Exception) -> Response:
    """A request that failed unexpectedly: JSON for the page to show (uvicorn logs the
    traceback)."""
    error = f"the dashboard failed: {type(exc).__name__}: {exc} (its output has the traceback)"
    return JSON({"error": error}, 500, headers=NO_STORE)


class _Static(StaticFiles):
    """The page's files, which a browser must check again each time (``no-cache``), so that
    a page loaded after an upgrade of arl never runs the old script."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = "no-cache"
        return response


class _SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (0: a free port). Bound here, not by uvicorn:
    the port is known before serving, and a port in use is an :class:`ArlError` that says
    what to do, not uvicorn's exit inside its loop."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ArlError(f"the dashboard cannot listen on {host!r}: {exc.strerror}; give --host an address") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        advice = "; give another with --port (0: any free one)" if port else ""
        raise ArlError(f"the dashboard cannot listen on {host} port {port}: {exc.strerror}{advice}") from exc
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def make_server(view: StoreView, sock: socket.socket, host: str) -> uvicorn.Server:
    """A uvicorn server of the dashboard of ``view``, to serve on ``sock`` (bound for
    ``--host`` ``host``). In the main thread it stops on SIGINT or SIGTERM; in another,
    when its ``should_exit`` is set."""
    return _Server(quiet_config(create_app(view, hosts=trusted_hosts(sock, host)), close_timeout=CLOSE_TIMEOUT))


def serve(
    view: StoreView, sock: socket.socket, *, host: str = "127.0.0.1", started: Callable[[], object] | None = None
) -> None:
    """Serve the dashboard of ``view`` on ``sock`` (see :func:`make_server`) until SIGINT or
    SIGTERM; call ``started`` once uvicorn is about to accept connections. When this
    returns, the socket is closed and the store's engine disposed."""
    server = make_server(view, sock, host)
    try:
        if started is not None:
            started()
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
        view.close()


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by SIGINT or SIGTERM without raising the signal again once
    it has stopped (uvicorn's own does, which would end ``arl-run dashboard`` with a
    traceback or by the signal rather than exit code 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():  # (signals reach the main thread only)
            yield
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
