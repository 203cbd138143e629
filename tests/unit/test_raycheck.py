"""What ``--backend ray`` checks before a run goes to a node (arl.backends.raycheck), the
node's side of the shared folders' marks, ``import_ray`` without Ray, and the folders of
the runs' modules a node puts on its path: plain data in, no Ray, no processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from arl.backends import NotOpened
from arl.backends.raycheck import (
    MARK_PREFIX,
    Need,
    Node,
    cuda_devices,
    mark,
    need_of,
    resolved,
    shared_folders,
    unmark,
    unplaceable,
    unreachable_store,
)
from arl.backends.rayhost import Shared, unshared
from arl.config import modulepaths
from arl.config.loader import load_experiment, load_experiment_text
from arl.config.spec import RunSpec
from arl.errors import ArlError
from experiment_files import DUMMY_AGENT, three_agents

DUMMY = Path(__file__).parents[2] / "experiments" / "dummy.yml"
HERE = "10.0.0.1"


def _central(red: str = "", blue: str = "", workers: int = 2, more: str = "") -> RunSpec:
    """Agents red (plain), blue and green (central when given ``learner:``/``inference:``
    lines: ``red`` gives green's, as it did), ``workers`` controllers; ``more``: a second
    phase or top-level keys."""
    return load_experiment_text(three_agents("gpus", blue=blue, green=red, workers=str(workers), more=more), "gpus.yml")


def _node(address: str = HERE, cpus: float = 4, gpus: float = 0) -> Node:
    return Node(f"id-{address}", address, cpus, gpus)


# -- what a run needs -------------------------------------------------------------------


def test_the_dummy_run_needs_a_cpu_for_its_governor_its_agents_process_and_its_controller() -> None:
    need = need_of(load_experiment(DUMMY))
    assert need == Need(cpus=3, gpus=0)
    assert str(need) == "3 CPUs"


def test_a_central_agents_cuda_devices_count_up_to_the_highest_and_its_processes_as_cpus() -> None:
    # blue: a learner and 2 inference servers on cuda (cuda:0); green: learner on cuda:1,
    # inference on the CPU. Processes: red's agent process, 2 learners, 2 + 1 inference
    # servers, 3 controllers, and the governor.
    spec = _central(
        blue="          learner: {device: cuda}\n          inference: {servers: 2, device: 'cuda:0'}\n",
        red="          learner: {device: 'cuda:1'}\n          inference: {device: cpu}\n",
        workers=3,
    )
    assert cuda_devices(spec) == {"cuda:0", "cuda:1"}
    need = need_of(spec)
    assert need == Need(cpus=1 + 1 + 2 + 3 + 3, gpus=2)
    assert str(need) == "10 CPUs and 2 GPUs"


def test_devices_other_than_cuda_need_no_gpu_and_one_gpu_reads_in_the_singular() -> None:
    assert cuda_devices(_central(blue="          inference: {device: mps}\n")) == set()
    # The governor, red and green's process, blue's learner and its inference server, a controller.
    assert need_of(_central(blue="          inference: {device: cpu}\n", workers=1)) == Need(cpus=5, gpus=0)
    one = need_of(_central(blue="          inference: {device: 'cuda:0'}\n", workers=1))
    assert (one, str(one)) == (Need(cpus=5, gpus=1), "5 CPUs and 1 GPU")
    # Ray numbers a run's GPUs from 0 (CUDA_VISIBLE_DEVICES): cuda:2 is there only with three.
    assert need_of(_central(blue="          inference: {device: 'cuda:2'}\n", workers=1)).gpus == 3
    assert str(Need(cpus=1, gpus=0)) == "1 CPU"


def test_the_devices_of_every_phase_count() -> None:
    later = f"""  - q:
      agents:{DUMMY_AGENT.format(name="blue")}
          learner: {{device: 'cuda:3'}}
"""
    spec = _central(blue="          learner: {device: cuda}\n", more=later)
    assert len(spec.phases) == 2
    assert cuda_devices(spec) == {"cuda:0", "cuda:3"}
    assert need_of(spec).gpus == 4


# -- whether a node can take it ------------------------------------------------------------


def test_a_run_goes_where_one_node_has_both_its_cpus_and_its_gpus() -> None:
    need = Need(cpus=4, gpus=1)
    assert unplaceable("r", need, [_node(cpus=2, gpus=1), _node("10.0.0.2", cpus=4, gpus=1)]) is None
    assert unplaceable("r", Need(cpus=4, gpus=0), [_node(cpus=4)]) is None


def test_cpus_on_one_node_and_gpus_on_another_do_not_make_room_and_the_message_says_what_to_do() -> None:
    nodes = [_node(cpus=8, gpus=0), _node("10.0.0.2", cpus=2, gpus=1)]
    said = unplaceable("sweep-1", Need(cpus=4, gpus=1), nodes)
    assert said == (
        "run sweep-1 needs 4 CPUs and 1 GPU on one node (a CPU for each of its processes, GPUs up to the highest "
        "CUDA device it names), and no node of the Ray cluster has that much (the most a node has: 8 CPUs; 1 GPU): "
        "give a node more (ray start --num-cpus N --num-gpus M), or the run fewer processes"
    )
    assert "(the most a node has: 1.5 CPUs; 0 GPUs)" in str(unplaceable("r", Need(cpus=2, gpus=0), [_node(cpus=1.5)]))


def test_a_cluster_without_live_nodes_takes_no_run() -> None:
    assert unplaceable("r", Need(cpus=1, gpus=0), []) == "run r needs 1 CPU, and the Ray cluster has no live node"


def test_a_node_reads_from_an_entry_of_ray_nodes() -> None:
    entry: dict[str, object] = {
        "NodeID": "abc123",
        "Alive": True,
        "NodeManagerAddress": "10.0.0.7",
        "Resources": {"CPU": 16.0, "GPU": 2.0, "memory": 1e10, "node:10.0.0.7": 1.0},
    }
    assert Node.from_ray(entry) == Node("abc123", "10.0.0.7", 16.0, 2.0)
    assert Node.from_ray({"NodeID": "x", "NodeManagerAddress": "h", "Resources": {"CPU": 1.0}}).gpus == 0
    assert (Node.from_ray({"NodeID": "x", "NodeManagerAddress": "h"}).cpus, Node.from_ray({}).gpus) == (0, 0)


# -- whether every node reaches the store --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://arl:secret@db.example.org:5432/arl",
        "postgresql://arl@10.0.0.9/arl",
        "postgresql:///arl?host=db.example.org",  # (libpq's way to name the server)
    ],
)
def test_a_server_named_by_its_address_is_reached_from_every_node(url: str) -> None:
    assert unreachable_store(url, HERE, [_node(), _node("10.0.0.2"), _node("10.0.0.3")]) is None


@pytest.mark.parametrize(
    "url",
    ["sqlite:///arl.db", "postgresql://arl@localhost/arl", "postgresql://arl@127.0.0.1:5432/arl", "postgresql:///arl"],
)
def test_any_store_does_while_every_node_is_this_machine(url: str) -> None:
    assert unreachable_store(url, HERE, [_node(), _node()]) is None
    assert unreachable_store(url, HERE, []) is None


def test_a_sqlite_file_is_refused_once_a_node_is_elsewhere_naming_up_to_three_of_them(tmp_path: Path) -> None:
    nodes = [_node(), *(_node(f"10.0.0.{i}") for i in (5, 2, 4, 3, 2))]
    url = f"sqlite:///{tmp_path}/arl.db"
    assert unreachable_store(url, HERE, nodes) == (
        f"the store {tmp_path}/arl.db is a SQLite file on this machine, and the Ray cluster has nodes on other "
        "machines (10.0.0.2, 10.0.0.3, 10.0.0.4): give --store a PostgreSQL URL every node can reach, with the "
        "server's address (docs/cluster.md)"
    )


@pytest.mark.parametrize(
    ("url", "shown", "named"),
    [
        ("postgresql://arl@localhost/arl", "postgresql://arl@localhost/arl", "localhost"),
        ("postgresql://arl@LocalHost/arl", "postgresql://arl@LocalHost/arl", "LocalHost"),
        (
            "postgresql+psycopg://arl:pw@127.0.0.1:5432/arl",
            "postgresql+psycopg://arl:***@127.0.0.1:5432/arl",
            "127.0.0.1",
        ),
        ("postgresql://arl@127.0.1.1/arl", "postgresql://arl@127.0.1.1/arl", "127.0.1.1"),
        ("postgresql://arl@[::1]:5432/arl", "postgresql://arl@[::1]:5432/arl", "::1"),
        ("postgresql:///arl", "postgresql:///arl", "a local socket"),
        (
            "postgresql:///arl?host=/var/run/postgresql",
            "postgresql:///arl?host=%2Fvar%2Frun%2Fpostgresql",
            "a local socket in /var/run/postgresql",
        ),
        (
            "postgresql://arl@/arl?host=db.example.org,localhost",
            "postgresql://arl@/arl?host=db.example.org%2Clocalhost",
            "localhost",
        ),
    ],
)
def test_a_server_named_as_this_machine_is_refused_once_a_node_is_elsewhere(url: str, shown: str, named: str) -> None:
    said = unreachable_store(url, HERE, [_node(), _node("10.0.0.2")])
    assert said == (
        f"the store {shown} names its server as {named}, each node's own, and the Ray cluster has nodes on other "
        "machines (10.0.0.2): give --store a PostgreSQL URL every node can reach, with the server's address "
        "(docs/cluster.md)"
    )


def test_a_url_that_does_not_parse_is_left_to_the_store_check() -> None:
    assert unreachable_store("not a url", HERE, [_node("10.0.0.2")]) is None


# -- the folders the runs share ---------------------------------------------------------


def test_a_relative_state_folder_becomes_absolute_from_arl_runs_working_directory() -> None:
    relative = _central(more="state: {dir: snaps/here}\n")
    moved = resolved(relative, "/work/place")
    assert moved.state is not None
    assert relative.state is not None
    assert moved.state.dir == "/work/place/snaps/here"
    assert moved.state.save == relative.state.save
    assert moved.uid == relative.uid
    absolute = _central(more="state: {dir: /scratch/snaps}\n")
    assert resolved(absolute, "/work/place") is absolute
    stateless = _central()
    assert resolved(stateless, "/work/place") is stateless


def test_shared_folders_are_the_checkpoints_and_each_state_folder_once_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    specs = [
        _central(more="state: {dir: snaps}\n"),
        _central(),
        _central(more="state: {dir: /scratch/snaps}\n"),
        _central(more=f"state: {{dir: {tmp_path}/snaps}}\n"),
    ]
    assert shared_folders("ckpt", specs) == [str(tmp_path / "ckpt"), str(tmp_path / "snaps"), "/scratch/snaps"]
    assert shared_folders("/data/ckpt/", []) == ["/data/ckpt"]


def test_marks_are_put_in_each_folder_seen_by_a_node_and_taken_away(tmp_path: Path) -> None:
    folders = [str(tmp_path / "ckpt"), str(tmp_path / "deep" / "snaps")]
    marks = mark(folders)
    assert [folder for folder, _ in marks] == folders
    (name,) = {name for _, name in marks}  # one name for all: the runs' mark
    assert name.startswith(f"{MARK_PREFIX}{os.getpid()}-")
    assert all(os.listdir(folder) == [name] for folder in folders)
    assert unshared(Shared(marks)) == []
    os.remove(os.path.join(folders[1], name))  # as a node with another disk at that path sees it
    assert unshared(Shared(marks)) == [folders[1]]
    unmark(marks)
    assert all(os.listdir(folder) == [] for folder in folders)
    assert unshared(Shared(marks)) == folders
    assert mark(folders)[0][1] != name  # each arl-run its own


def test_a_folder_that_cannot_be_made_is_said_and_the_marks_made_before_it_are_taken_away(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    folders = [str(tmp_path / "ckpt"), str(tmp_path / "a_file" / "snaps")]
    with pytest.raises(ArlError, match=rf"^cannot write to {folders[1]}, a folder the runs share: "):
        mark(folders)
    assert os.listdir(folders[0]) == []


# -- Ray missing -------------------------------------------------------------------------


def test_without_ray_installed_the_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from arl.backends.raycluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(NotOpened) as refused:
        import_ray()
    assert str(refused.value).startswith("--backend ray needs Ray, which is not installed here: ")
    assert "pip install 'arl-core[ray]'" in str(refused.value)
    assert "every node" in str(refused.value)


# -- the folders of the runs' modules, for the nodes ----------------------------------------


@pytest.fixture
def clean_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modulepaths, "_wanted", [])
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.mark.usefixtures("clean_paths")
def test_wanted_are_the_folders_use_was_given_even_those_already_on_the_path(tmp_path: Path) -> None:
    on_path = sys.path[0]
    assert modulepaths.wanted() == ()
    assert modulepaths.use([str(tmp_path / "a"), on_path, str(tmp_path / "a")]) == [str(tmp_path / "a")]
    modulepaths.use([str(tmp_path / "b"), on_path])
    assert modulepaths.wanted() == (str(tmp_path / "a"), on_path, str(tmp_path / "b"))


@pytest.mark.usefixtures("clean_paths")
def test_using_takes_off_only_what_it_was_given(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    modulepaths.use([a])
    with modulepaths.using([b, a, a]):
        assert modulepaths.wanted() == (a, b)
    assert modulepaths.wanted() == (a,)  # what use() was given before stays, for the nodes
    assert a in sys.path
    assert b not in sys.path
    with modulepaths.using([b]):
        pass
    assert modulepaths.wanted() == (a,)


def test_an_address_where_nothing_listens_is_said_at_once_and_one_that_answers_passes() -> None:
    import socket

    from arl.backends.raycluster import _answers

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        _answers(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(ConnectionError, match=f"nothing answers at 127.0.0.1:{port} within 2 s"):
        _answers(f"127.0.0.1:{port}", timeout=2)
    _answers("auto")  # (Ray's own forms are Ray's to try)
    _answers("ray://head:10001")
