"""``arl-run run --backend ray`` on a real Ray cluster of nodes on this machine
(``ray.cluster_utils.Cluster``: each node its own raylet), into the real PostgreSQL
server the suite starts.

The nodes are started with a leak token in their environment, which every Ray worker, and
so every process of the runs, inherits: :func:`arl.testing.arl_processes` finds what the
runs left on the nodes, whoever started it.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from arl.state import snapshot
from arl.testing import arl_processes, check_process_leak, poll_for
from arl_runner import ArlRun

pytest.importorskip("ray", reason="--backend ray needs the ray extra (pip install 'arl-core[ray]')")
from ray.cluster_utils import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.long(60), pytest.mark.timeout(170)]

CPUS = 3  # a node's: one dummy run (3 processes) at a time
DUMMY = Path(__file__).resolve().parents[2] / "experiments" / "dummy.yml"
COMPONENTS = Path(__file__).resolve().parents[1] / "components"
SLOW = "arl_test_components:SlowEnvironment"


def _long(arl_run: ArlRun, uid: str, state: str = "") -> Path:
    """A dummy run that goes until it is stopped, stepping every 5 ms (so that two of them
    leave the cores to the rest of the suite), its environment found on each node through
    ``paths:``."""
    text = DUMMY.read_text().replace("uid: dummy-run", f"uid: {uid}\npaths: [{COMPONENTS}]\n{state}")
    text = text.replace("name: arl.dummy:DummyEnvironment", f"name: {SLOW}")
    text = text.replace("params: {sensors: 10, actuators: 10, episode_length: 10}", "params: {delay: 0.005}")
    text = text.replace("episodes: 1\n        workers: 1", "episodes: 1000000\n        workers: 1", 1)
    path = arl_run.tmp / f"{uid}.yml"
    path.write_text(text)
    return path


ON_NODE = re.compile(r"run (\S+): on node .*, id ([0-9a-f]+)")


@pytest.fixture
def cluster() -> Iterator[tuple[Cluster, str]]:
    """A head node that takes no run and two nodes with room for one dummy run each; the
    leak token the runs' processes have."""
    with check_process_leak(timeout=20) as token:
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            for _ in range(2):
                nodes.add_node(num_cpus=CPUS)
            nodes.wait_for_nodes()
            yield nodes, token
        finally:
            nodes.shutdown()


@pytest.fixture
def store(postgres_url: str) -> Iterator[Engine]:
    """The PostgreSQL store the runs go to, polled through one pool (a connection is a
    server process of its own: a new one every poll costs the cores)."""
    engine = create_engine(postgres_url)
    yield engine
    engine.dispose()  # (before the database is dropped)


def _per_run(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """Each run's status, its rows' counts, and the sum of its agents' objectives."""
    query = (
        "select r.uid, r.status, count(distinct p.id), count(distinct e.id), count(distinct s.id), "
        "count(distinct a.id), round(cast(sum(a.objective) as numeric), 6) from experiment_runs r "
        "join phases p on p.run_id = r.id join episodes e on e.phase_id = p.id "
        "join environment_steps s on s.episode_id = e.id join agent_actions a on a.episode_id = e.id "
        "group by r.uid, r.status"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(query))
        return {row[0]: tuple(float(v) if not isinstance(v, str | int) else v for v in row[1:]) for row in rows}


def _statuses(engine: Engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(text("select uid, status, error from experiment_runs"))
        return {uid: (status, error) for uid, status, error in rows}


def _status(engine: Engine, uid: str) -> str | None:
    return _statuses(engine).get(uid, (None, None))[0]


def _resumed(engine: Engine, uid: str) -> bool:
    """Whether run ``uid`` has gone on from a snapshot (a governor recorded it so)."""
    query = "select count(*) from events v join experiment_runs r on v.run_id = r.id where r.uid = :uid"
    with engine.connect() as conn:
        return bool(conn.execute(text(query + " and v.kind = 'resumed'"), {"uid": uid}).scalar())


def _snapshotted(states: Path, uid: str) -> bool:
    """Whether run ``uid`` has a complete snapshot (only the newest is loaded and hashed)."""
    return snapshot.latest(states, uid) is not None


def _ended(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """What arl-run printed once it has ended; if it does not within ``timeout``, it is
    killed and the test fails with what it printed."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"arl-run did not end within {timeout:g} s:\n{out}\n{err}") from None


def _running(engine: Engine) -> int:
    return sum(status == "RUNNING" for status, _ in _statuses(engine).values())


def test_a_sweep_goes_over_both_nodes_as_it_goes_locally_ctrl_c_stops_it_clean_and_a_lost_node_fails_its_run(
    cluster: tuple[Cluster, str], postgres_url: str, store: Engine, arl_run: ArlRun
) -> None:
    """One cluster for the three, as starting one takes a few seconds of both cores."""
    nodes, token = cluster
    on_ray = ("--backend", "ray", "--ray-address", nodes.address, "--store", postgres_url, "-v")
    done = arl_run.run(str(DUMMY), "--sweep", "seed=1,2,3,4", *on_ray, timeout=120)
    assert done.returncode == 0, done.stderr
    placed = dict(ON_NODE.findall(done.stderr))
    assert len(placed) == 4, placed  # every run
    assert len(set(placed.values())) == 2, placed  # on both nodes
    local = arl_run.run(str(DUMMY), "--sweep", "seed=1,2,3,4", "--parallel", "2", timeout=120)
    assert local.returncode == 0, local.stderr
    stored = _per_run(store)
    assert len(stored) == 4
    local_store = create_engine(arl_run.url)
    try:
        assert stored == _per_run(local_store)
    finally:
        local_store.dispose()
    assert {row[0] for row in stored.values()} == {"FINISHED"}

    # Three long runs: two fit on the nodes, one waits for room. Ctrl-C stops them all.
    proc = arl_run.start(str(_long(arl_run, "long")), "--sweep", "seed=11,12,13", *on_ray)
    poll_for(lambda: proc.poll() is not None or _running(store) == 2, timeout=60, interval=0.2)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = _ended(proc)
    assert proc.returncode == 130, err
    assert (out + err).count("interrupted while it waited for a node with room") == 1, out + err
    ended = {uid: status for uid, (status, _) in _statuses(store).items() if uid not in stored}
    assert sorted(ended.values()) == ["INTERRUPTED"] * 2, ended
    poll_for(
        lambda: not arl_processes(token), timeout=20, interval=0.2, what="no process of the runs left on the nodes"
    )

    _a_lost_node_fails_its_run_and_one_that_saves_snapshots_goes_on_on_another(nodes, postgres_url, store, arl_run)
    poll_for(
        lambda: not arl_processes(token), timeout=20, interval=0.2, what="no process of the runs left on the nodes"
    )


def _a_lost_node_fails_its_run_and_one_that_saves_snapshots_goes_on_on_another(
    nodes: Cluster, postgres_url: str, store: Engine, arl_run: ArlRun
) -> None:
    """Two runs, one a node (there is room for one on each); a third node is added, then
    both nodes of the runs are removed."""
    plain = _long(arl_run, "plain")
    saved = _long(arl_run, "saved", "state: {dir: states, save: {every_steps: 50}}")
    doomed = [node for node in nodes.list_all_nodes() if not node.head]
    on_ray = ("--backend", "ray", "--ray-address", nodes.address, "--store", postgres_url, "-v")
    proc = arl_run.start(str(plain), str(saved), *on_ray)
    poll_for(
        lambda: _snapshotted(arl_run.tmp / "states", "saved") or proc.poll() is not None,
        timeout=60,
        what="a snapshot of run saved",
        interval=0.1,
    )
    assert proc.poll() is None
    nodes.add_node(num_cpus=CPUS)  # where the run that saves snapshots goes on
    for node in doomed:
        nodes.remove_node(node)
    try:
        poll_for(
            lambda: proc.poll() is not None or (_status(store, "plain") == "FAILED" and _resumed(store, "saved")),
            timeout=60,
            interval=0.1,
            what="run plain FAILED, run saved going on from its snapshot",
        )
    except TimeoutError:
        proc.kill()
        raise AssertionError(proc.communicate()[1]) from None
    proc.send_signal(signal.SIGINT)
    _, err = _ended(proc)
    status, error = _statuses(store)["plain"]
    assert status == "FAILED", error
    assert "died because its node has died" in (error or ""), error
    assert "run saved: the run's Ray actor on node" in err, err
    assert "it goes on from its snapshot" in err, err
    assert _statuses(store)["saved"][0] == "INTERRUPTED", err
