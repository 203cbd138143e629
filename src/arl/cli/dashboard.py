"""``arl-run dashboard``: serve a local web page of the store's runs.

Imported when ``arl-run`` starts, so only click is imported here; Starlette, uvicorn and
SQLAlchemy come in when the command runs.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import TYPE_CHECKING

import click

from arl.cli.common import fail, say, store_option

if TYPE_CHECKING:
    from arl.dashboard.data import StoreView

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@click.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
    help="The port to serve on; 0 picks a free one (printed).",
)  # fmt: skip
@click.option(
    "--host", default=DEFAULT_HOST, show_default=True,
    help="The address to listen on. The page has no login: 0.0.0.0 shows the store to your whole network.",
)  # fmt: skip
@store_option
def dashboard(port: int, host: str, store: str | None) -> None:
    """Serve a web page of the store's runs: status and steps per second, and for each
    run its phases, each agent's return per episode (a chart), metrics, events and
    errors, updated every second while runs go. Ctrl-C stops it.

    \b
    arl-run dashboard                      then open http://127.0.0.1:8765/
    arl-run dashboard --store sqlite:///runs/arl.db --port 9000
    """
    from arl.dashboard.app import listen, serve
    from arl.dashboard.data import StoreView
    from arl.errors import ArlError
    from arl.store.location import store_url

    try:
        view = StoreView(store_url(store))
        sock = listen(host, port)
    except ArlError as exc:
        fail(str(exc))
    serve(view, sock, host=host, started=lambda: announce(view, sock, host))


def announce(view: StoreView, sock: socket.socket, host: str) -> threading.Thread:
    """Print the dashboard's URL (stdout, flushed: a script or a test that started it reads
    it there), warn when it listens beyond this machine, and say what state the store is
    in from a thread of its own, which is returned: a store that does not answer (a
    PostgreSQL server not up yet, as under docker compose) holds up neither the URL nor
    the serving; the page says so too, and tries again every second."""
    from arl.dashboard.app import trusted_hosts, url_of

    click.echo(f"arl-run dashboard: {url_of(sock)} (the store {view.location}; Ctrl-C stops it)")
    sys.stdout.flush()
    if trusted_hosts(sock, host) is None:
        say(f"warning: listening on {host}: whoever can reach it sees the store (the page has no login)")
    checking = threading.Thread(target=_say_store, args=(view,), name="arl-dashboard-store", daemon=True)
    checking.start()
    return checking


def _say_store(view: StoreView) -> None:
    from arl.dashboard.data import StoreBusy
    from arl.store.location import URL_ENV_VAR

    try:
        state = view.store()
    except StoreBusy:  # the page's first requests came first: the page says it
        return
    if not state["found"]:
        say(
            f"no store at {view.location} yet: the page shows its runs once arl-run writes one there "
            f"(or give the store with --store URL or {URL_ENV_VAR})"
        )
    elif state["error"]:
        say(f"warning: {state['error']} (the page says so, and tries again every second)")
