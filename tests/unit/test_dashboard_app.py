"""The dashboard's web server (arl.dashboard.app) and what `arl-run dashboard` says as it
starts (arl.cli.dashboard.announce): a real uvicorn on a free port in a thread, asked over
HTTP with urllib, reading a real SQLite store; a PostgreSQL "server" that takes the
connection and never answers, for the timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arl.cli.dashboard import announce
from arl.codec import encode
from arl.dashboard.app import SECURITY_HEADERS, listen, make_server, trusted_hosts, url_of
from arl.dashboard.data import StoreBusy, StoreView
from arl.errors import ArlError
from arl.messages.store import RunEnded
from arl.testing import poll_for
from store_writing import T0, begun_recorder

pytestmark = pytest.mark.timeout(30)


@contextlib.contextmanager
def _serving(view: StoreView) -> Iterator[str]:
    """The dashboard of ``view`` served on 127.0.0.1 by a thread; yields its URL."""
    sock = listen("127.0.0.1", 0)
    server = make_server(view, sock, "127.0.0.1")
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        poll_for(lambda: server.started, timeout=10, what="the dashboard to serve")
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive()


def _get(url: str, host: str | None = None) -> tuple[int, Any, str]:
    """Status, headers and text of a GET of ``url`` (with ``Host: host``)."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read().decode()


def test_the_server_answers_json_with_its_headers_and_only_to_loopback_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'arl.db'}"
    with begun_recorder(url) as recorder:
        assert recorder.handle(encode(RunEnded("FINISHED", None, T0 + 1, "completed"))) is None
        recorder.commit()
    with sqlite3.connect(tmp_path / "arl.db") as db:  # a seed JSON numbers would round (above 2**53)
        db.execute("update experiment_runs set seed = ?", (2**63 - 1,))
    view = StoreView(url, wait=0.1)
    try:
        with _serving(view) as base:
            status, headers, text = _get(base)
            assert (status, headers["cache-control"]) == (200, "no-cache")
            for name, value in SECURITY_HEADERS.items():
                assert headers[name] == value, name
            status, headers, _ = _get(base + "static/app.js")  # checked again by the browser after an upgrade
            assert (status, headers["cache-control"]) == (200, "no-cache")
            assert headers["content-security-policy"] == SECURITY_HEADERS["content-security-policy"]

            status, headers, text = _get(base + "api/runs/1")
            assert (status, headers["cache-control"], headers["content-type"]) == (200, "no-store", "application/json")
            assert '"seed":"9223372036854775807"' in text
            status, _, text = _get(base + "api/runs/999999")
            answer = json.loads(text)
            assert (status, answer["run"], answer["store"]["found"]) == (404, None, True)
            assert answer["error"] == f"no run with id 999999 in the store {tmp_path / 'arl.db'}"
            huge = 10**30  # more than a store's id can be: SQLite cannot even be asked
            status, _, text = _get(base + f"api/runs/{huge}")
            assert (status, json.loads(text)) == (
                404,
                {"error": f"no run with id {huge}: a store's ids go up to {2**63 - 1}"},
            )
            assert view.run(huge)["run"] is None

            # A page elsewhere whose name was rebound to 127.0.0.1 (DNS rebinding) gets nothing.
            port = base.rsplit(":", 1)[1].rstrip("/")
            assert _get(base + "api/runs", host="evil.example")[0] == 400
            assert _get(base + "api/runs", host=f"evil.example:{port}")[0] == 400
            for name in ("localhost", "127.0.0.1", "[::1]"):
                assert _get(base + "api/runs", host=f"{name}:{port}")[0] == 200, name

            with view._lock:  # a read that hangs: the next request is told, not queued for ever
                status, headers, text = _get(base + "api/runs")
            assert (status, headers["cache-control"]) == (503, "no-store")
            assert json.loads(text)["error"].startswith("the dashboard is busy: another request has been reading")

            with sqlite3.connect(tmp_path / "arl.db") as db:  # a row arl cannot read: the server fails
                db.execute("update experiment_runs set started_at = 'not a time'")
            status, _, text = _get(base + "api/runs")
            assert status == 500
            assert json.loads(text)["error"].startswith("the dashboard failed: ValueError: ")
    finally:
        view.close()


def test_it_warns_when_listening_beyond_this_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    view = StoreView(f"sqlite:///{tmp_path / 'arl.db'}")
    for host, warned in (("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)):
        with listen(host, 0) as sock:
            announce(view, sock, host).join(timeout=10)
            assert (trusted_hosts(sock, host) is None) is warned
            url = url_of(sock)
        out, err = capsys.readouterr()
        assert out.startswith(f"arl-run dashboard: {url} (the store {tmp_path / 'arl.db'}; Ctrl-C")
        assert ("warning: listening on 0.0.0.0: whoever can reach it sees the store" in err) is warned, err
        assert f"no store at {tmp_path / 'arl.db'} yet" in err
    view.close()


def test_a_port_in_use_is_an_error_that_says_what_to_do() -> None:
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ArlError, match=rf"cannot listen on 127\.0\.0\.1 port {port}: .*give another with --port"):
            listen("127.0.0.1", port)


def test_a_postgresql_server_that_never_answers_holds_up_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """As under docker compose, where the dashboard may start before PostgreSQL: the URL is
    printed at once, a request behind the one connecting is told the dashboard is busy,
    closing (Ctrl-C) does not wait for it, and the connecting one gives up after the
    connect timeout, which the page and the terminal say."""
    with socket.socket() as silent:  # takes connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        view = StoreView(
            f"postgresql+psycopg://arl@127.0.0.1:{silent.getsockname()[1]}/arl", wait=0.2, connect_timeout=2
        )
        with listen("127.0.0.1", 0) as sock:
            started = time.monotonic()
            checking = announce(view, sock, "127.0.0.1")
            assert time.monotonic() - started < 1.0
            assert capsys.readouterr().out.startswith("arl-run dashboard: http://127.0.0.1:")
            poll_for(view._lock.locked, timeout=5, what="the store's check to connect")
            with pytest.raises(StoreBusy, match="busy: another request has been reading the store"):
                view.runs()
            view.close()  # as at Ctrl-C: it does not wait for the connection
            assert checking.is_alive()
            checking.join(timeout=15)
            assert not checking.is_alive()
        assert 2.0 <= time.monotonic() - started < 10.0
        assert "connection timeout expired (the page says so, and tries again every second)" in capsys.readouterr().err
        view.close()
