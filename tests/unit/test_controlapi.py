"""The control API (arl.controlapi) and ``arl-run ctl``: a real uvicorn on a real port of
127.0.0.1, real HTTP requests, and for ``ctl`` a real SQLite store. What the API controls
is a fake here (:class:`FakeRuns`, the :class:`arl.controlapi.Controls` protocol): these
tests are of the HTTP layer, its queue and the command line; the executor's own controls
are tested with real runs.

The client is synchronous (urllib), so each request runs in a thread while the test's
event loop serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from arl.cli import main
from arl.controlapi import CONTROL_EVENT, TOKEN_FILE
from arl.controlapi.client import call
from arl.controlapi.server import ControlServer, new_token, write_token
from arl.errors import ArlError
from arl.store.engine import describe_location, open_store
from arl.store.query import this_process
from arl.store.schema import EventRow, RunRow

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE = 5.0


class FakeRuns:
    """Live runs as the executor would offer them: commands are recorded; a word in
    ``gates`` waits for its event first; a word in ``refusals`` raises an ArlError."""

    def __init__(self, *live: str) -> None:
        self.uids = list(live)
        self.gates: dict[str, asyncio.Event] = {}  # by command word, or "status"
        self.refusals: dict[str, str] = {}
        self.begun: list[tuple[str, str]] = []
        self.done: list[tuple[str, str]] = []
        self.running = 0
        self.most_at_once = 0

    def live(self) -> list[str]:
        return list(self.uids)

    async def status(self, uid: str) -> dict[str, Any]:
        if "status" in self.gates:
            await self.gates["status"].wait()
        workers = [{"worker": 0, "episode": 2, "step": 5}, {"worker": 1, "episode": 1, "step": 17}]
        return {"state": "RUNNING", "phase": "train", "workers": workers, "steps_per_s": 812.25,
                "last_snapshot": None, "paused": False}  # fmt: skip

    async def command(self, uid: str, word: str) -> dict[str, Any]:
        self.begun.append((uid, word))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if word in self.gates:
                await self.gates[word].wait()
            if word in self.refusals:
                raise ArlError(self.refusals[word])
        finally:
            self.running -= 1
        self.done.append((uid, word))
        return {"word": word, "order": len(self.done)}


@contextlib.asynccontextmanager
async def serving(runs: FakeRuns, **options: Any) -> AsyncIterator[tuple[ControlServer, str]]:
    """A started server of ``runs`` and its token; closed on exit."""
    token = new_token()
    async with ControlServer(runs, **options) as server:
        await server.start(token)
        yield server, token


def raw(url: str, method: str, path: str, authorization: str | None) -> tuple[int, dict[str, Any], Any]:
    """An HTTP request as any client would send it: the status, the headers and the JSON body."""
    headers = {} if authorization is None else {"Authorization": authorization}
    request = urllib.request.Request(url + path, method=method, headers=headers)
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=DEADLINE) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), json.loads(exc.read())


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.005)


async def refusal(url: str, token: str, method: str, path: str) -> str:
    """The message of the ArlError the client raises for this request."""
    with pytest.raises(ArlError) as refused:
        await asyncio.to_thread(call, url, token, method, path)
    return str(refused.value)


def answered(code: int, method: str, path: str) -> str:
    """How the client's errors end."""
    return f"(the run's control API answered {code} to {method} {path})"


# -- the server ------------------------------------------------------------------------------


def test_every_request_needs_the_token() -> None:
    runs = FakeRuns("a")

    async def check() -> None:
        async with serving(runs) as (server, token):
            for method, path in [("GET", "/runs"), ("POST", "/runs/a/stop"), ("GET", "/nothing-here")]:
                code, headers, body = await asyncio.to_thread(raw, server.url, method, path, None)
                assert (code, headers["www-authenticate"]) == (401, 'Bearer realm="arl"')
                assert body["error"].startswith("no token: send the header `Authorization: Bearer <token>`")
                code, _, body = await asyncio.to_thread(raw, server.url, method, path, f"Bearer {token}x")
                assert code == 401
                assert body["error"].startswith("wrong token")
            for wrong in ["", token, f"bearer {token}", f"Bearer  {token}", "Bearer \u00e9"]:
                code, _, _ = await asyncio.to_thread(raw, server.url, "GET", "/runs", wrong)
                assert code == 401, wrong
            code, _, body = await asyncio.to_thread(raw, server.url, "GET", "/runs", f"Bearer {token}")
        assert (code, body) == (200, {"runs": ["a"]})
        assert runs.begun == []

    asyncio.run(check())


def test_status_and_commands_of_a_live_run_and_what_is_refused() -> None:
    runs = FakeRuns("a", "b")
    runs.refusals["save"] = "run 'a' has no state dir: give state: {dir: ...} in its file"

    async def check() -> None:
        async with serving(runs) as (server, token):
            url = server.url
            status = await asyncio.to_thread(call, url, token, "GET", "/runs/a/status")
            assert status == {"run": "a", **await runs.status("a")}
            done = await asyncio.to_thread(call, url, token, "POST", "/runs/b/pause")
            assert done == {"run": "b", "command": "pause", "result": {"word": "pause", "order": 1}}
            assert runs.done == [("b", "pause")]
            said = await refusal(url, token, "POST", "/runs/a/save")
            assert said == f"{runs.refusals['save']} {answered(409, 'POST', '/runs/a/save')}"
            for path in ["/runs/c/pause", "/runs/c/status"]:
                method = "GET" if path.endswith("status") else "POST"
                said = await refusal(url, token, method, path)
                assert said == f"no live run 'c' here: the live runs are 'a', 'b' {answered(404, method, path)}"
            assert "no command 'jump': the commands are pause, resume, save, stop" in (
                await refusal(url, token, "POST", "/runs/a/jump")
            )
            code, _, body = await asyncio.to_thread(raw, url, "GET", "/runs/a/pause", f"Bearer {token}")
            assert (code, body) == (405, {"error": "GET /runs/a/pause: Method Not Allowed"})
        assert runs.begun == [("b", "pause"), ("a", "save")]

    asyncio.run(check())


def test_commands_run_one_at_a_time_in_order_and_a_full_queue_is_503() -> None:
    runs = FakeRuns("a")
    runs.gates["pause"] = asyncio.Event()

    async def check() -> None:
        async with serving(runs, queue_size=1) as (server, token):
            first = asyncio.create_task(asyncio.to_thread(call, server.url, token, "POST", "/runs/a/pause"))
            await until(lambda: runs.begun == [("a", "pause")], "the pause to begin")
            second = asyncio.create_task(asyncio.to_thread(call, server.url, token, "POST", "/runs/a/save"))
            await until(lambda: server.waiting == 1, "the save to wait in the queue")
            code, _, body = await asyncio.to_thread(raw, server.url, "POST", "/runs/a/stop", f"Bearer {token}")
            assert (code, body) == (503, {"error": "the queue of commands is full (1 waiting): retry in a moment"})
            status = await asyncio.to_thread(call, server.url, token, "GET", "/runs/a/status")
            assert status["state"] == "RUNNING"  # a status does not queue behind commands
            runs.gates["pause"].set()
            assert (await first)["result"] == {"word": "pause", "order": 1}
            assert (await second)["result"] == {"word": "save", "order": 2}
        assert (runs.done, runs.most_at_once) == ([("a", "pause"), ("a", "save")], 1)

    asyncio.run(check())


def test_a_command_not_carried_out_in_time_is_504_and_dropped_if_it_had_not_begun() -> None:
    runs = FakeRuns("a")
    runs.gates["pause"] = asyncio.Event()

    async def check() -> None:
        async with serving(runs, command_timeout=0.2) as (server, token):
            first = asyncio.create_task(refusal(server.url, token, "POST", "/runs/a/pause"))
            await until(lambda: runs.begun == [("a", "pause")], "the pause to begin")
            runs.gates["status"] = asyncio.Event()
            second, status = await asyncio.gather(
                refusal(server.url, token, "POST", "/runs/a/stop"), refusal(server.url, token, "GET", "/runs/a/status")
            )
            assert second == (
                "'stop' for run 'a' did not begin within 0.2 s (earlier commands took long): dropped "
                + answered(504, "POST", "/runs/a/stop")
            )
            assert status == (
                "the status of run 'a' did not come within 0.2 s: the run is busy or stuck; try again "
                + answered(504, "GET", "/runs/a/status")
            )
            assert "'pause' for run 'a' did not finish within 0.2 s; it goes on and may still take effect" in (
                await first
            )
            runs.gates["pause"].set()
            await until(lambda: runs.done == [("a", "pause")] and server.waiting == 0, "the pause to end")
            await asyncio.to_thread(call, server.url, token, "POST", "/runs/a/resume")
        assert runs.begun == [("a", "pause"), ("a", "resume")]  # the stop was never carried out

    asyncio.run(check())


def test_closing_answers_the_waiting_requests_and_frees_the_port() -> None:
    runs = FakeRuns("a")
    runs.gates["pause"] = asyncio.Event()

    async def check() -> None:
        async with serving(runs) as (server, token):
            running = asyncio.create_task(refusal(server.url, token, "POST", "/runs/a/pause"))
            await until(lambda: runs.begun == [("a", "pause")], "the pause to begin")
            waiting = asyncio.create_task(refusal(server.url, token, "POST", "/runs/a/save"))
            await until(lambda: server.waiting == 1, "the save to wait")
            await server.close()
            assert [await running, await waiting] == [
                f"the control API is closing: arl-run is ending {answered(503, 'POST', path)}"
                for path in ["/runs/a/pause", "/runs/a/save"]
            ]
            url = server.url
        message = await refusal(url, token, "GET", "/runs")
        assert message == (
            f"the run's control API at {url} does not answer (connection refused): the run has ended or its "
            "arl-run was killed"
        )

    asyncio.run(check())


def test_the_token_file_is_the_owners_alone_from_its_creation(tmp_path: Path) -> None:
    folder = tmp_path / "states" / "run-a"
    before = os.umask(0)  # a file created with the default mode would be readable by anyone now
    try:
        first = write_token(folder, "one")
        assert (first, first.read_text()) == (folder / TOKEN_FILE, "one\n")
        assert stat.S_IMODE(first.stat().st_mode) == 0o600
        second = write_token(folder, "two")
    finally:
        os.umask(before)
    assert (second, second.read_text(), stat.S_IMODE(second.stat().st_mode)) == (first, "two\n", 0o600)
    assert sorted(p.name for p in folder.iterdir()) == [TOKEN_FILE]  # no temporary file left
    assert len({new_token() for _ in range(3)}) == 3
    assert len(new_token()) >= 43  # 32 random bytes


# -- arl-run ctl -------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A real SQLite store, and its URL."""
    url = f"sqlite:///{tmp_path / 'arl.db'}"
    engine = open_store(url)
    yield url, engine
    engine.dispose()


def add_run(engine: Engine, uid: str, status: str, *, control: dict[str, Any] | None = None,
            end_reason: str | None = None, host: str | None = None) -> int:  # fmt: skip
    """A run as a governor records it; a RUNNING one is this process's (so alive), with a
    ``control`` event when given."""
    pid, started = this_process() if host is None else (None, None)
    ended = None if status == "RUNNING" else T0 + timedelta(minutes=5)
    with Session(engine) as session:
        run = RunRow(uid=uid, status=status, seed=1, document={}, arl_version="t", host=host or socket.gethostname(),
                     pid=pid, pid_started_at=started, started_at=T0, ended_at=ended, end_reason=end_reason)  # fmt: skip
        session.add(run)
        session.flush()
        if control is not None:
            session.add(EventRow(run_id=run.id, at=T0, kind=CONTROL_EVENT, detail=control))
        session.commit()
        return run.id


def ctl(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["ctl", *args, "--store", url], catch_exceptions=False)


def free_port_url() -> str:
    """The URL of a port of 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_ctl_says_a_run_that_has_ended_has_ended(store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    empty = ctl(f"sqlite:///{tmp_path / 'empty.db'}", "status")
    assert (empty.exit_code, empty.stderr) == (
        1,
        f"error: no store at {tmp_path / 'empty.db'}: give --store URL or set ARL_STORE_URL\n",
    )
    open_store(f"sqlite:///{tmp_path / 'empty.db'}").dispose()
    empty = ctl(f"sqlite:///{tmp_path / 'empty.db'}", "status")
    assert empty.exit_code == 1
    assert empty.stderr.endswith("holds no runs\n")

    add_run(engine, "done", "FINISHED", end_reason="completed", control={"url": free_port_url(), "token_file": "x"})
    add_run(engine, "cut", "INTERRUPTED", end_reason="max-uptime")
    location = describe_location(url)
    newest = ctl(url, "status")
    assert (newest.exit_code, newest.stdout) == (1, "")
    assert newest.stderr == (
        f"error: no run is running in {location}; the newest, run 'cut' (id 2), has ended (INTERRUPTED at "
        "2025-03-01 12:05:00 UTC, max-uptime): there is nothing to control; `arl-run run FILE --resume` continues "
        "it from its latest snapshot\n"
    )
    for run in ["done", "1"]:
        finished = ctl(url, "pause", "--run", run)
        assert (finished.exit_code, finished.stderr) == (
            1,
            "error: run 'done' (id 1) has ended (FINISHED at 2025-03-01 12:05:00 UTC, completed): there is nothing "
            "to control\n",
        )


def test_ctl_shows_a_running_runs_status_and_commands_it(store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    runs = FakeRuns("live-1")
    runs.refusals["save"] = "the run is stopping"
    add_run(engine, "live-1", "FINISHED", end_reason="completed")  # an earlier run of the same file

    async def check() -> None:
        async with serving(runs) as (server, token):
            token_file = write_token(tmp_path / "run-folder", token)
            add_run(engine, "live-1", "RUNNING", control={"url": server.url, "token_file": str(token_file)})
            status = await asyncio.to_thread(ctl, url, "status")
            assert (status.exit_code, status.stderr) == (0, "")
            assert status.stdout.splitlines() == [
                "run live-1: RUNNING",
                "phase: train",
                "steps/s: 812.2",
                "last snapshot: -",
                "worker 0: episode 2, step 5",
                "worker 1: episode 1, step 17",
            ]
            paused = await asyncio.to_thread(ctl, url, "pause", "--run", "live-1", "--json")
            assert (paused.exit_code, json.loads(paused.stdout)) == (
                0, {"run": "live-1", "command": "pause", "result": {"word": "pause", "order": 1}},
            )  # fmt: skip
            stopped = await asyncio.to_thread(ctl, url, "stop")
            assert (stopped.exit_code, stopped.stdout) == (0, "stop: done for run live-1\nword: stop\norder: 2\n")
            refused = await asyncio.to_thread(ctl, url, "save")
            assert (refused.exit_code, refused.stderr) == (
                1, "error: the run is stopping (the run's control API answered 409 to POST /runs/live-1/save)\n",
            )  # fmt: skip
        assert runs.done == [("live-1", "pause"), ("live-1", "stop")]

    asyncio.run(check())


def test_ctl_says_why_it_cannot_reach_a_running_run(store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    token_file = tmp_path / "gone" / TOKEN_FILE
    add_run(engine, "r1", "RUNNING")
    add_run(engine, "r2", "RUNNING", control={"url": free_port_url(), "token_file": str(token_file)})
    two = ctl(url, "status")
    assert (two.exit_code, two.stderr) == (
        1,
        f"error: 2 runs are running in {describe_location(url)}: 'r1' (id 1), 'r2' (id 2); pass --run UID (or id)\n",
    )
    bare = ctl(url, "status", "--run", "r1")
    assert bare.stderr == "error: run 'r1' (id 1) was started without a control API (it recorded no 'control' event)\n"
    no_token = ctl(url, "status", "--run", "r2")
    assert no_token.stderr.startswith(
        f"error: cannot read the run's token file {token_file}: No such file or directory"
    )
    write_token(token_file.parent, "t")
    gone = ctl(url, "stop", "--run", "r2")
    assert gone.exit_code == 1
    assert gone.stderr.endswith("does not answer (connection refused): the run has ended or its arl-run was killed\n")
    add_run(engine, "far", "RUNNING", host="elsewhere", control={"url": "http://127.0.0.1:1", "token_file": "t"})
    far = ctl(url, "status", "--run", "far")
    assert far.stderr.startswith("error: run 'far' (id 3) runs on host 'elsewhere'")
    assert (ctl(url, "jump").exit_code, ctl(url, "pause", "--run").exit_code) == (2, 2)  # usage
