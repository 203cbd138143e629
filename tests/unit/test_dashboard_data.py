"""The dashboard's reading of a store (arl.dashboard.data) and its arithmetic
(arl.dashboard.series): a real store (SQLite, and PostgreSQL where the store tests run
it) written by the store's own Recorder, read while it is written, checked against
arl.results' queries."""

from __future__ import annotations

import contextlib
import fnmatch
import math
import re
import socket
import sqlite3
import subprocess
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from arl.codec import encode
from arl.dashboard.data import StoreView
from arl.dashboard.series import Episode, RateMeter, returns_chart
from arl.errors import ArlError
from arl.messages.store import AgentAction, EnvironmentStep, EpisodeEnded, EpisodeStarted, Event, Metrics, RunEnded
from arl.results import queries
from arl.store.recorder import Recorder
from store_writing import T0, begun_recorder

pytestmark = pytest.mark.timeout(30)

# -- steps per second -----------------------------------------------------------------------


def test_a_rate_needs_half_a_second_of_counts_then_spans_the_window() -> None:
    meter = RateMeter(window=5.0, min_span=0.5, min_gap=0.25)
    assert meter.rate("run", 100.0, 0) is None
    assert meter.rate("run", 100.3, 300) is None  # 0.3 s: too short to tell
    assert meter.rate("run", 101.0, 1000) == pytest.approx(1000.0)
    # Counts come in jumps (the writer commits in batches): the rate is over the window.
    for second in range(2, 9):
        rate = meter.rate("run", 100.0 + second, 1000 * second)
    assert rate == pytest.approx(1000.0)
    assert meter.rate("run", 109.0, 9000) == pytest.approx(1000.0)  # a stall: not yet seen in 5 s...
    assert meter.rate("run", 114.5, 9000) == pytest.approx(0.0)  # ...but once the window has passed


def test_many_pages_polling_at_once_add_no_samples_and_forgotten_runs_start_over() -> None:
    meter = RateMeter(window=5.0, min_span=0.5, min_gap=0.25)
    meter.rate("a", 0.0, 0)
    meter.rate("a", 0.1, 100)  # within min_gap of the last sample: not kept as a base
    assert meter.rate("a", 1.0, 1000) == pytest.approx(1000.0)
    meter.rate("b", 1.0, 7)
    meter.keep(["b"])
    assert meter.rate("a", 2.0, 5000) is None  # "a" was forgotten: a new first sample
    assert meter.rate("b", 2.0, 1007) == pytest.approx(1000.0)


# -- the returns chart ----------------------------------------------------------------------


def test_the_chart_has_a_point_per_episode_and_agent_and_marks_the_phases() -> None:
    episodes = [
        Episode(0, "train", {"a": 1.0, "b": -1.0}),
        Episode(0, "train", {"a": 2.0}),  # b did not act
        Episode(1, "test", {"a": math.nan, "b": 3.0}),  # a's return is not a number
        Episode(1, "test", {"a": 4.0, "b": 4.0}, open=True),
    ]
    chart = returns_chart(episodes)
    assert chart["agents"] == ["a", "b"]
    assert chart["lines"] == {"a": [[0, 1.0], [1, 2.0], [3, 4.0]], "b": [[0, -1.0], [2, 3.0], [3, 4.0]]}
    assert chart["phases"] == [{"phase": 0, "name": "train", "x": 0}, {"phase": 1, "name": "test", "x": 2}]
    assert (chart["episodes"], chart["per_point"], chart["open"]) == (4, 1, 1)


def test_more_episodes_than_points_are_averaged_in_bins() -> None:
    episodes = [Episode(0, "train", {"a": float(i)}) for i in range(1001)]
    chart = returns_chart(episodes, max_points=100)
    assert chart["per_point"] == 11
    line = chart["lines"]["a"]
    assert len(line) == 91
    assert line[0] == [5.0, 5.0]  # episodes 0..10: at their middle, their mean
    assert line[-1] == [995.0, 995.0]


def test_no_episodes_is_an_empty_chart() -> None:
    assert returns_chart([]) == {"agents": [], "episodes": 0, "per_point": 1, "lines": {}, "phases": [], "open": 0}


# -- a store read while it is written -------------------------------------------------------


def _send(recorder: Recorder, *records: Any) -> None:
    for record in records:
        assert recorder.handle(encode(record)) is None
    recorder.commit()


def _steps(episode: int, first: int, last: int, objective: float = 1.0, worker: int = 0) -> list[Any]:
    """Steps ``first``..``last`` of ``worker``'s episode ``episode`` of phase 0: each an
    environment step and both agents' actions (the attacker's objective the defender's,
    negated)."""
    records: list[Any] = []
    for step in range(first, last + 1):
        records.append(EnvironmentStep(0, worker, episode, step, "env", {"env.s": 0.5}, {"r": 1.0}, False, False))
        for agent, sign in (("defender", 1.0), ("attacker", -1.0)):
            records.append(AgentAction(0, worker, episode, step, agent, {}, {}, {}, sign * objective * step))
    return records


@contextlib.contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL statements any engine executes meanwhile."""
    seen: list[str] = []

    def executing(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", executing)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", executing)


def _store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'arl.db'}"


def _compared(answer: dict[str, Any]) -> dict[str, Any]:
    """What two reads of one run at one moment must agree on."""
    run = {key: answer["run"][key] for key in ("status", "phases", "episodes", "steps")}
    phases = [{key: value for key, value in phase.items() if key != "duration_s"} for phase in answer["phases"]]
    return {"run": run, "phases": phases, "returns": answer["returns"], "metrics": answer["metrics"]}


def test_a_run_followed_poll_by_poll_reads_as_it_reads_whole(store_url: str) -> None:
    """Two workers whose episodes are stored out of the run's order (phase, episode,
    worker): a view that has followed the run, reading only what came since its last
    request, says at each request what a view that reads the run whole says."""
    follower = StoreView(store_url)
    batches = [
        [EpisodeStarted(0, 1, 0, T0), *_steps(0, 1, 3, worker=1)],
        [*_steps(0, 1, 4), EpisodeEnded(0, 0, 0, 4, "terminated", T0 + 1), EpisodeStarted(0, 0, 1, T0 + 1)],
        [*_steps(1, 1, 2, objective=3.0), *_steps(0, 4, 6, worker=1)],  # both workers' open episodes grow
        [EpisodeEnded(0, 0, 1, 2, "terminated", T0 + 2), EpisodeStarted(0, 0, 2, T0 + 2), *_steps(2, 1, 1)],
        [EpisodeEnded(0, 1, 0, 6, "terminated", T0 + 3), EpisodeStarted(0, 1, 1, T0 + 3)],  # worker 1's 2nd: no step
        [Metrics(0, "defender", [[None, "loss", 1, 0.5, T0]]), *_steps(1, 1, 2, worker=1)],
        [EpisodeEnded(0, 0, 2, 1, "terminated", T0 + 4), RunEnded("FINISHED", None, T0 + 5, "completed")],
    ]
    try:
        with begun_recorder(store_url) as recorder:
            for number, batch in enumerate(batches):
                _send(recorder, *batch)
                [listed] = follower.runs()["runs"]
                followed = follower.run(listed["id"])
                whole = StoreView(store_url)
                try:
                    assert _compared(followed) == _compared(whole.run(listed["id"])), f"after batch {number}"
                finally:
                    whole.close()
        places = followed["returns"]["lines"]["defender"]
        assert [y for _, y in places] == [10.0, 21.0, 9.0, 3.0, 1.0]  # (0, w0) (0, w1) (1, w0) (1, w1) (2, w0)
        assert (followed["run"]["episodes"], followed["run"]["steps"], followed["returns"]["open"]) == (5, 15, 0)
    finally:
        follower.close()


def test_an_ended_run_costs_one_statement_a_request(store_url: str) -> None:
    """Once read after it ended, a run's page is kept whole: a request reads its row only.
    The list reads the runs' rows only."""
    view = StoreView(store_url)
    try:
        with begun_recorder(store_url) as recorder:
            _send(
                recorder, *_steps(0, 1, 5), EpisodeEnded(0, 0, 0, 5, "terminated", T0 + 1),
                Metrics(0, "defender", [[None, "loss", 1, 0.5, T0]]), Event("note", {"error": "a worker died"}, T0),
                RunEnded("FINISHED", None, T0 + 5, "completed"),
            )  # fmt: skip
        listed = view.runs()
        first = view.run(1)
        with _statements() as seen:
            again = view.run(1)
        assert len(seen) == 1, seen
        assert "FROM experiment_runs" in seen[0]
        assert again == first
        assert (again["returns"]["episodes"], again["metrics"][0]["count"], again["events_total"]) == (1, 1, 1)
        with _statements() as seen:
            assert view.runs() == listed
        assert all("FROM experiment_runs" in statement for statement in seen), seen
    finally:
        view.close()


def test_a_store_that_appears_later_is_shown_once_it_exists(tmp_path: Path) -> None:
    view = StoreView(_store_url(tmp_path))
    try:
        answer = view.runs()
        assert answer["store"] == {"location": str(tmp_path / "arl.db"), "found": False, "error": None}
        assert answer["runs"] == []
        assert not (tmp_path / "arl.db").exists()  # reading creates nothing
        with begun_recorder(_store_url(tmp_path)) as recorder:
            recorder.commit()
            answer = view.runs()
        assert answer["store"]["found"] is True
        assert [run["uid"] for run in answer["runs"]] == ["exp-1"]
    finally:
        view.close()


def test_counts_returns_and_rate_follow_a_run_as_it_writes(store_url: str) -> None:
    now = [1000.0]
    view = StoreView(store_url, clock=lambda: now[0])
    try:
        with begun_recorder(store_url) as recorder:
            _send(recorder, *_steps(0, 1, 10))
            [run] = view.runs()["runs"]
            assert (run["status"], run["phases"], run["episodes"], run["steps"]) == ("RUNNING", 1, 1, 10)
            assert (run["steps_per_s"], run["died"]) == (None, False)
            detail = view.run(run["id"])
            assert detail["returns"]["lines"]["defender"] == [[0, 55.0]]  # 1 + ... + 10, so far
            assert detail["returns"]["open"] == 1

            now[0] += 2.0
            _send(recorder, *_steps(0, 11, 20), EpisodeEnded(0, 0, 0, 20, "terminated", T0 + 2))
            _send(recorder, EpisodeStarted(0, 0, 1, T0 + 3), *_steps(1, 1, 5, objective=2.0))
            [run] = view.runs()["runs"]
            assert (run["episodes"], run["steps"]) == (2, 25)
            assert run["steps_per_s"] == pytest.approx(15 / 2.0)
            detail = view.run(run["id"])
            assert detail["returns"]["lines"] == {
                "attacker": [[0, -210.0], [1, -30.0]],
                "defender": [[0, 210.0], [1, 30.0]],
            }
            assert detail["returns"]["open"] == 1
            assert [(p["phase"], p["episodes"], p["steps"]) for p in detail["phases"]] == [(0, 2, 25)]

            _send(recorder, *_steps(1, 6, 8, objective=2.0), EpisodeEnded(0, 0, 1, 8, "terminated", T0 + 4))
            _send(recorder, RunEnded("FINISHED", None, T0 + 5, "completed"))
            detail = view.run(run["id"])
        assert detail["run"]["status"] == "FINISHED"
        assert (detail["run"]["steps"], detail["run"]["steps_per_s"]) == (28, None)
        assert detail["returns"]["open"] == 0
        # The same returns as arl.results reads with one query over every action.
        with queries.reading(store_url) as reader:
            expected = queries.agent_returns(reader, run["id"])
        defender = [expected[e]["defender"] for e in sorted(expected)]
        assert [y for _, y in detail["returns"]["lines"]["defender"]] == defender == [210.0, 72.0]
    finally:
        view.close()


def test_metrics_are_summed_up_as_they_come_and_errors_are_gathered(store_url: str) -> None:
    view = StoreView(store_url)
    try:
        with begun_recorder(store_url) as recorder:
            _send(recorder, Metrics(0, "defender", [[None, "loss", 1, 0.5, T0], [None, "loss", 2, 0.25, T0]]))
            run_id = view.runs()["runs"][0]["id"]
            [loss] = view.run(run_id)["metrics"]
            assert (loss["count"], loss["min"], loss["max"], loss["last"], loss["last_step"]) == (2, 0.25, 0.5, 0.25, 2)
            _send(
                recorder,
                Metrics(0, "defender", [[None, "loss", 3, 0.75, T0], [0, "epsilon", 3, 0.1, T0]]),
                Event("worker-died", {"worker": 0, "error": "arl[controller:0] was killed by SIGKILL"}, T0 + 1),
                RunEnded("FAILED", "env.env.0: RuntimeError: boom\nTraceback ...", T0 + 2, "failed"),
                Event("failed", {"error": "env.env.0: RuntimeError: boom\nTraceback ..."}, T0 + 2),
            )
            detail = view.run(run_id)
        loss, epsilon = detail["metrics"]  # the brain's (no worker) first
        assert (loss["name"], loss["worker"], loss["count"], loss["max"], loss["last"]) == ("loss", None, 3, 0.75, 0.75)
        assert (epsilon["name"], epsilon["worker"], epsilon["count"]) == ("epsilon", 0, 1)
        assert [(e["source"], e["text"].splitlines()[0]) for e in detail["errors"]] == [
            ("run", "env.env.0: RuntimeError: boom"),
            ("worker-died", "arl[controller:0] was killed by SIGKILL"),
        ]  # the failed event says what the run's error says: once
        assert [e["kind"] for e in detail["events"]] == ["failed", "worker-died"]  # newest first
        [listed] = view.runs()["runs"]
        assert listed["error"] == "env.env.0: RuntimeError: boom"  # the list: its first line
    finally:
        view.close()


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=10)
    return proc.pid


def test_a_run_whose_process_died_shows_interrupted_and_the_store_is_left_as_it_is(tmp_path: Path) -> None:
    view = StoreView(_store_url(tmp_path))
    try:
        with begun_recorder(_store_url(tmp_path)) as recorder:
            _send(recorder, *_steps(0, 1, 3))
            run_id = view.runs()["runs"][0]["id"]
        with sqlite3.connect(tmp_path / "arl.db") as db:
            db.execute("update experiment_runs set pid = ? where id = ?", (_dead_pid(), run_id))
        [run] = view.runs()["runs"]
        assert (run["status"], run["died"]) == ("RUNNING", False)  # of another host: not to be judged from here
        with sqlite3.connect(tmp_path / "arl.db") as db:
            db.execute("update experiment_runs set host = ? where id = ?", (socket.gethostname(), run_id))
        [run] = view.runs()["runs"]
        assert (run["status"], run["died"], run["end_reason"]) == ("INTERRUPTED", True, "process died")
        assert "died without ending the run" in run["error"]
        assert run["ended_at"] is not None
        assert run["steps"] == 3
        detail = view.run(run_id)
        assert detail["phases"][0]["end_reason"] == "process died"
        assert detail["returns"]["open"] == 0
        with sqlite3.connect(tmp_path / "arl.db") as db:
            assert db.execute("select status from experiment_runs").fetchall() == [("RUNNING",)]
            assert db.execute("select count(*) from events").fetchone() == (0,)
    finally:
        view.close()


def test_a_run_written_anew_is_counted_anew(tmp_path: Path) -> None:
    """A run resumed from a snapshot keeps its id but loses its rows past the snapshot and
    has a new writer: its counts and returns are not the old ones plus the new."""
    view = StoreView(_store_url(tmp_path))
    try:
        with begun_recorder(_store_url(tmp_path)) as recorder:
            _send(recorder, *_steps(0, 1, 10))
            run_id = view.runs()["runs"][0]["id"]
            assert view.run(run_id)["returns"]["lines"]["defender"] == [[0, 55.0]]
        with sqlite3.connect(tmp_path / "arl.db") as db:  # as arl.store.marks.rewind does
            db.execute("delete from agent_actions where step > 4")
            db.execute("delete from environment_steps where step > 4")
            db.execute("update experiment_runs set pid = pid + 1 where id = ?", (run_id,))
        assert view.runs()["runs"][0]["steps"] == 4
        assert view.run(run_id)["returns"]["lines"]["defender"] == [[0, 10.0]]
    finally:
        view.close()


def test_a_store_deleted_and_made_anew_is_read_anew(tmp_path: Path) -> None:
    """Whether or not a request came while the file was gone (`rm arl.db; arl-run ...` in a
    script takes less than the page's second)."""

    def make_anew(steps: int) -> None:
        for path in tmp_path.glob("arl.db*"):
            path.unlink()
        with begun_recorder(_store_url(tmp_path)) as recorder:
            _send(recorder, *_steps(0, 1, steps), RunEnded("FINISHED", None, T0 + 5, "completed"))

    view = StoreView(_store_url(tmp_path))
    try:
        make_anew(10)
        assert view.runs()["runs"][0]["steps"] == 10
        assert view.run(1)["phases"][0]["steps"] == 10
        make_anew(2)  # no request in between
        [run] = view.runs()["runs"]  # the same id, 1: not the settled counts of the old one
        assert run["steps"] == 2
        assert view.run(1)["phases"][0]["steps"] == 2
        for path in tmp_path.glob("arl.db*"):
            path.unlink()
        assert view.runs()["store"]["found"] is False
        make_anew(3)
        assert view.runs()["runs"][0]["steps"] == 3
    finally:
        view.close()


def test_the_page_is_package_data() -> None:
    """Every file of the page ships with arl (pyproject's package-data), and the page names
    only files it has: nothing from another address (the machine may have no network)."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["arl"]
    static = resources.files("arl.dashboard") / "static"
    names = sorted(entry.name for entry in static.iterdir())
    assert names == ["app.js", "chart.js", "index.html", "style.css"]
    for name in names:
        assert any(fnmatch.fnmatch(f"dashboard/static/{name}", pattern) for pattern in patterns), name
    page = (static / "index.html").read_text()
    assert sorted(re.findall(r'(?:src|href)="([^"#]+)"', page)) == [
        "data:,", "static/app.js", "static/chart.js", "static/style.css"
    ]  # fmt: skip
    for name in names:
        assert not re.search(r"https?://", (static / name).read_text().replace("http://www.w3.org/2000/svg", ""))


@pytest.mark.parametrize(
    ("url", "said"),
    [("sqlite://", "in-memory SQLite"), ("bogus://x", "Can't load plugin"), ("not a url", "Could not parse")],
)
def test_a_url_no_later_try_could_open_is_refused_at_once(url: str, said: str) -> None:
    with pytest.raises(ArlError, match=said):
        StoreView(url)
