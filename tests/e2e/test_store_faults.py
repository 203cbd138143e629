"""The store failing under a real run, and runs ended from outside: each ends as
docs/store.md says ("What each end keeps"): the run FAILED with exit code 1 and a message
naming the store, no process left, the rows that are there consistent."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from arl.errors import ArlError
from arl.store.engine import open_store
from arl.store.query import interrupt_dead_runs
from arl.store.schema import AgentActionRow, EnvironmentStepRow, EpisodeRow, RunRow
from arl.testing import poll_for, titled
from experiment_files import write
from store_checks import check_consistent

pytestmark = pytest.mark.e2e

ENDLESS = "{delay: 0.01, episode_length: 100000}"


def start_slow(arl_run, uid: str = "slow", env_params: str = ENDLESS) -> subprocess.Popen[str]:
    """A run of one long episode, started once it has stored 20 steps."""
    file = write(arl_run.tmp, uid=uid, env="arl_test_components:SlowEnvironment", env_params=env_params)
    proc = arl_run.start(file)
    poll_for(lambda: stored_steps(arl_run.url) >= 20 or proc.poll() is not None, timeout=30, what="steps")
    assert proc.poll() is None, proc.communicate()
    return proc


def stored_steps(url: str) -> int:
    """Environment steps in the store at ``url``; 0 while it has none, or no schema yet."""
    try:
        engine = open_store(url, create=False)
    except ArlError:  # not there yet: nothing stored
        return 0
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(EnvironmentStepRow)).scalar_one()
    finally:
        engine.dispose()


@contextlib.contextmanager
def engine_on(url: str) -> Iterator[Engine]:
    engine = open_store(url, create=False)
    try:
        yield engine
    finally:
        engine.dispose()


def test_a_store_that_keeps_nothing_is_refused_before_anything_runs(arl_run, no_leaks) -> None:
    file = write(arl_run.tmp)
    for url, says in [("sqlite://", "is an in-memory SQLite database"), ("", "the store URL is empty")]:
        done = arl_run.run(file, "--store", url)
        assert done.returncode == 2, done.stderr
        assert says in done.stderr
        assert "Nothing was run." in done.stderr
    assert not arl_run.db.exists()  # not even the default store, standing in for the empty one


def test_a_killed_governor_is_summarised_with_what_its_run_stored(arl_run, no_leaks) -> None:
    proc = start_slow(arl_run, uid="killed")
    [governor] = poll_for(lambda: titled(proc.pid, "arl[governor:killed]"), what="the governor")
    governor.kill()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err

    with engine_on(arl_run.url) as engine, engine.connect() as conn:
        steps = conn.execute(select(func.count()).select_from(EnvironmentStepRow)).scalar_one()
        actions = conn.execute(select(func.count()).select_from(AgentActionRow)).scalar_one()
        episode = conn.execute(select(EpisodeRow)).one()
        last_step = conn.execute(select(func.max(EnvironmentStepRow.step))).scalar_one()
        run = conn.execute(select(RunRow)).one()
        check_consistent(engine)
    assert steps >= 20
    assert f"phases 1, episodes 1, steps {steps}, actions {actions}" in out  # what is stored, not zeros
    assert (episode.steps, episode.end_reason) == (last_step, "failed")
    assert run.status == "FAILED"
    assert episode.started_at <= episode.ended_at == run.ended_at


def test_a_store_locked_longer_than_sqlites_old_busy_timeout_is_waited_for(arl_run, no_leaks) -> None:
    # 5 s was SQLite's busy timeout: a lock held longer failed the run ("database is
    # locked", seen with --parallel 20 on two cores). Now the run waits up to its patience.
    proc = start_slow(arl_run, env_params="{delay: 0.01, episode_length: 120}")
    with sqlite3.connect(arl_run.db, timeout=10) as blocker:
        blocker.execute("begin exclusive")
        time.sleep(5.5)  # the lock is the point of the test; the run must wait it out
        blocker.rollback()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "FINISHED" in out
    assert arl_run.scalar("select count(*) from environment_steps") == 120


def test_the_store_file_deleted_mid_run_fails_the_run_naming_it(arl_run, no_leaks) -> None:
    proc = start_slow(arl_run)
    for leftover in arl_run.tmp.glob("arl.db*"):  # rm arl.db*
        leftover.unlink()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert f"error: the store failed: the store file {arl_run.db} was deleted" in out
    assert not arl_run.db.exists()  # ending the run did not make an empty store in its place


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, to fill up. Skipped where this process may not mount one."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def fill(disk: Path) -> Path:
    """Write zeros into a file on ``disk`` until it is full; returns the file."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def test_a_full_disk_fails_the_run_naming_the_store(arl_run, no_leaks, small_disk: Path) -> None:
    arl_run.db = small_disk / "arl.db"
    arl_run.url = f"sqlite:///{arl_run.db}"
    proc = start_slow(arl_run)
    filler = fill(small_disk)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert f"error: the store failed: writing to {arl_run.db}: " in out
    assert "full" in out

    filler.unlink()
    with engine_on(arl_run.url) as engine:
        check_consistent(engine)
        with engine.connect() as conn:
            status = conn.execute(select(RunRow.status)).scalar_one()
        # Ending the run needs a little room too: with none, the run stays RUNNING until the
        # store is opened again, which finds its process gone.
        if status == "RUNNING":
            assert len(interrupt_dead_runs(engine)) == 1
        else:
            assert status == "FAILED"


def test_the_postgresql_server_stopped_mid_episode_fails_the_run(arl_run, no_leaks, postgres_server, postgres_url):
    # The test server acknowledges commits before writing them (synchronous_commit=off);
    # this database gets PostgreSQL's default, durable commits, as a real store has.
    database = postgres_url.rsplit("/", 1)[1]
    postgres_server.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = on')
    arl_run.url = postgres_url
    proc = start_slow(arl_run)
    poll_for(lambda: stored_steps(postgres_url) >= 40, what="steps committed mid-episode")
    postgres_server.crash()
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        postgres_server.restart()
    assert proc.returncode == 1, err
    assert "error: the store failed: writing to postgresql+psycopg://postgres@127.0.0.1:" in out

    with engine_on(postgres_url) as engine:
        check_consistent(engine)
        # Every commit before the crash is kept: what the summary counted is there.
        assert f"steps {stored_steps(postgres_url)}, " in out
        # Nobody could end the run while the server was down; the next opening does.
        assert len(interrupt_dead_runs(engine)) == 1
        with engine.connect() as conn:
            assert conn.execute(select(RunRow.status)).scalar_one() == "INTERRUPTED"
