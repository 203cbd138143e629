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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from arl.state import snapshot
from arl.testing import arl_processes, check_process_leak, poll_for
from arl_runner import ArlRun

pytest.importorskip("ray", reason="--backend ray needs the ray extra (pip install 'arl-core[ray]')")
from ray.cluster_utils import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CPUS = 6  # a node's: two dummy runs (3 processes each) at a time
DUMMY = Path(__file__).resolve().parents[2] / "experiments" / "dummy.yml"
LONG = ("--set", "schedule.phase_0.phase_config.episodes=1000000")  # a run that goes until it is stopped
ON_NODE = re.compile(r"run (\S+): on node .*, id ([0-9a-f]+)")


@pytest.fixture
def cluster() -> Iterator[tuple[Cluster, str]]:
    """A head node and a worker node of CPUS each; the leak token the runs' processes have."""
    with check_process_leak(timeout=20) as token:
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": CPUS, "include_dashboard": False})
        try:
            nodes.add_node(num_cpus=CPUS)
            nodes.wait_for_nodes()
            yield nodes, token
        finally:
            nodes.shutdown()


def _per_run(url: str) -> dict[str, tuple[Any, ...]]:
    """Each run's status, its rows' counts, and the sum of its agents' objectives."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select r.uid, r.status, count(distinct p.id), count(distinct e.id), count(distinct s.id), "
                    "count(distinct a.id), round(cast(sum(a.objective) as numeric), 6) from experiment_runs r "
                    "join phases p on p.run_id = r.id join episodes e on e.phase_id = p.id "
                    "join environment_steps s on s.episode_id = e.id join agent_actions a on a.episode_id = e.id "
                    "group by r.uid, r.status"
                )
            )
            return {row[0]: tuple(float(v) if not isinstance(v, str | int) else v for v in row[1:]) for row in rows}
    finally:
        engine.dispose()


def _statuses(url: str) -> dict[str, tuple[str, str | None]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select uid, status, error from experiment_runs"))
            return {uid: (status, error) for uid, status, error in rows}
    finally:
        engine.dispose()


def _status(url: str, uid: str) -> str | None:
    return _statuses(url).get(uid, (None, None))[0]


def _resumed(url: str, uid: str) -> bool:
    """Whether run ``uid`` has gone on from a snapshot (a governor recorded it so)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = "select count(*) from events v join experiment_runs r on v.run_id = r.id where r.uid = :uid"
            return bool(conn.execute(text(query + " and v.kind = 'resumed'"), {"uid": uid}).scalar())
    finally:
        engine.dispose()


def _running(url: str) -> int:
    return sum(status == "RUNNING" for status, _ in _statuses(url).values())


def test_a_sweep_goes_over_both_nodes_stores_what_it_does_locally_and_stops_clean_on_ctrl_c(
    cluster: tuple[Cluster, str], postgres_url: str, arl_run: ArlRun
) -> None:
    nodes, token = cluster
    on_ray = ("--backend", "ray", "--ray-address", nodes.address, "--store", postgres_url, "-v")
    done = arl_run.run(str(DUMMY), "--sweep", "seed=1,2,3,4", *on_ray, timeout=120)
    assert done.returncode == 0, done.stderr
    placed = dict(ON_NODE.findall(done.stderr))
    assert len(placed) == 4, placed  # every run
    assert len(set(placed.values())) == 2, placed  # on both nodes
    local = arl_run.run(str(DUMMY), "--sweep", "seed=1,2,3,4", "--parallel", "2", timeout=120)
    assert local.returncode == 0, local.stderr
    stored = _per_run(postgres_url)
    assert len(stored) == 4
    assert stored == _per_run(arl_run.url)
    assert {row[0] for row in stored.values()} == {"FINISHED"}

    # Six long runs: four fit on the nodes, two wait for room. Ctrl-C stops them all.
    proc = arl_run.start(str(DUMMY), "--sweep", "seed=11,12,13,14,15,16", *LONG, *on_ray)
    poll_for(lambda: proc.poll() is not None or _running(postgres_url) == 4, timeout=60, interval=0.1)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (out + err).count("interrupted while it waited for a node with room") == 2, out + err
    ended = {uid: status for uid, (status, _) in _statuses(postgres_url).items() if uid not in stored}
    assert sorted(ended.values()) == ["INTERRUPTED"] * 4, ended
    poll_for(lambda: not arl_processes(token), timeout=20, what="no process of the runs left on the nodes")


def test_a_run_whose_node_is_lost_fails_and_one_that_saves_snapshots_goes_on_on_another(
    postgres_url: str, arl_run: ArlRun
) -> None:
    with check_process_leak(timeout=20) as token:
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            doomed = nodes.add_node(num_cpus=CPUS)
            nodes.wait_for_nodes()
            plain = arl_run.tmp / "plain.yml"
            plain.write_text(DUMMY.read_text().replace("uid: dummy-run", "uid: plain"))
            saved = arl_run.tmp / "saved.yml"
            state = "state: {dir: states, save: {every_steps: 50}}\n"
            saved.write_text(DUMMY.read_text().replace("uid: dummy-run", "uid: saved\n" + state.rstrip()))
            on_ray = ("--backend", "ray", "--ray-address", nodes.address, "--store", postgres_url, "-v")
            proc = arl_run.start(str(plain), str(saved), *LONG, *on_ray)
            poll_for(
                lambda: snapshot.snapshots(arl_run.tmp / "states", "saved") or proc.poll() is not None,
                timeout=60,
                what="a snapshot of run saved",
                interval=0.1,
            )
            assert proc.poll() is None
            nodes.add_node(num_cpus=CPUS)  # where the run that saves snapshots goes on
            nodes.remove_node(doomed)
            try:
                poll_for(
                    lambda: (
                        proc.poll() is not None
                        or (_status(postgres_url, "plain") == "FAILED" and _resumed(postgres_url, "saved"))
                    ),
                    timeout=60,
                    interval=0.1,
                    what="run plain FAILED, run saved going on from its snapshot",
                )
            except TimeoutError:
                proc.kill()
                raise AssertionError(proc.communicate()[1]) from None
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            nodes.shutdown()
    status, error = _statuses(postgres_url)["plain"]
    assert status == "FAILED", error
    assert "was lost" in (error or ""), error
    assert "run saved: the Ray node" in err, err
    assert "it goes on from its snapshot" in err, err
    assert _statuses(postgres_url)["saved"][0] == "INTERRUPTED", err
    assert not arl_processes(token)
