"""What ``--backend ray`` checks before a run goes to a node, without Ray: what a run
needs of a node, whether any node of the cluster has it, whether every node can reach
the store, and the marks that show a node sees the shared folders as this machine does.
Plain data in, a problem's words out (None: no problem), so that it is tested alone."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from arl.config.spec import RunSpec
from arl.errors import ArlError

LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", "0.0.0.0"})
MARK_PREFIX = ".arl-shared-"  # the file arl-run puts in each shared folder while its runs go


@dataclass(frozen=True)
class Need:
    """What one run takes of a node: a CPU for each of its processes (the governor and
    its children), and a GPU for each CUDA device its agents name."""

    cpus: int
    gpus: int

    def __str__(self) -> str:
        gpus = f" and {self.gpus} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else ""
        return f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}{gpus}"


@dataclass(frozen=True)
class Node:
    """A live node of the cluster, as ``ray.nodes()`` gives it."""

    node_id: str
    address: str
    cpus: float
    gpus: float

    @classmethod
    def from_ray(cls, entry: dict[str, object]) -> Node:
        resources = entry.get("Resources")
        held = resources if isinstance(resources, dict) else {}
        return cls(
            str(entry.get("NodeID")), str(entry.get("NodeManagerAddress")), held.get("CPU", 0), held.get("GPU", 0)
        )


def need_of(spec: RunSpec) -> Need:
    from arl.governor.plan import plan_children

    children = plan_children(spec, "", "", "").all
    return Need(cpus=1 + len(children), gpus=len(cuda_devices(spec)))


def cuda_devices(spec: RunSpec) -> set[str]:
    """The CUDA devices a run's central agents learn or act on (``cuda`` is ``cuda:0``)."""
    found = set()
    for phase in spec.phases:
        for agent in phase.agents:
            for part in (agent.learner, agent.inference):
                device = getattr(part, "device", "cpu")
                if device.startswith("cuda"):
                    found.add(device if ":" in device else f"{device}:0")
    return found


def unplaceable(uid: str, need: Need, nodes: Sequence[Node]) -> str | None:
    """Why no node of ``nodes`` can take run ``uid``, if none can."""
    if any(node.cpus >= need.cpus and node.gpus >= need.gpus for node in nodes):
        return None
    if not nodes:
        return f"run {uid} needs {need}, and the Ray cluster has no live node"
    cpus = max(node.cpus for node in nodes)
    gpus = max(node.gpus for node in nodes)
    return (
        f"run {uid} needs {need} on one node (a CPU for each of its processes, a GPU for each CUDA "
        f"device it names), and the largest node of the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs: "
        "give a node more (ray start --num-cpus N --num-gpus M), or the run fewer processes"
    )


def unreachable_store(url: str, here: str, nodes: Iterable[Node]) -> str | None:
    """Why some node cannot reach the store ``url``, which this machine (``here``, its
    address) reaches: a SQLite file, or a server named as ``localhost``, is this machine's
    alone."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from arl.store.engine import sqlite_path

    elsewhere = sorted({node.address for node in nodes if node.address != here})
    if not elsewhere:
        return None
    where = f"the Ray cluster has nodes on other machines ({', '.join(elsewhere[:3])})"
    advice = "give --store a PostgreSQL URL every node can reach, with the server's address (docs/cluster.md)"
    if sqlite_path(url) is not None:
        return f"the store {url} is a SQLite file on this machine, and {where}: {advice}"
    try:
        host = make_url(url).host or ""
    except ArgumentError:
        return None  # (the check said what is wrong with it)
    if host in LOCAL_HOSTS:
        return f"the store {url} names its server as {host or 'a local socket'}, each node's own, and {where}: {advice}"
    return None


def resolved(spec: RunSpec, cwd: str) -> RunSpec:
    """``spec`` with its state folder absolute (it is written relative to arl-run's
    working directory, which a node does not share)."""
    if spec.state is None or os.path.isabs(spec.state.dir):
        return spec
    state = dataclasses.replace(spec.state, dir=os.path.join(cwd, spec.state.dir))
    return dataclasses.replace(spec, state=state)


def shared_folders(checkpoint_dir: str, specs: Iterable[RunSpec]) -> list[str]:
    """The folders every node writes to as this machine sees them: the brains' and, for
    each run with ``state``, its snapshots'."""
    folders = [checkpoint_dir]
    for spec in specs:
        if spec.state is not None:
            folders.append(spec.state.dir)
    return list(dict.fromkeys(os.path.abspath(folder) for folder in folders))


def mark(folders: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Make each folder (and its parents) and put a mark of these runs in it; the
    (folder, mark's name) pairs. Raises :class:`ArlError` on a folder that cannot be made."""
    name = f"{MARK_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    made: list[tuple[str, str]] = []
    for folder in folders:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            Path(folder, name).touch()
        except OSError as exc:
            unmark(tuple(made))
            raise ArlError(f"cannot write to {folder}, a folder the runs share: {exc}") from None
        made.append((folder, name))
    return tuple(made)


def unmark(marks: Sequence[tuple[str, str]]) -> None:
    for folder, name in marks:
        Path(folder, name).unlink(missing_ok=True)
