"""What ``--backend ray`` checks before a run goes to a node, without Ray: what a run
needs of a node, whether any node of the cluster has it, whether every node can reach
the store, and the marks that show a node sees the shared folders as this machine does.
Plain data in, a problem's words out (None: no problem), so that it is tested alone."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from arl.config.spec import RunSpec
from arl.errors import ArlError

LOCAL_HOSTS = frozenset({"", "localhost", "localhost.localdomain", "ip6-localhost"})  # and loopback addresses
MARK_PREFIX = ".arl-shared-"  # the file arl-run puts in each shared folder while its runs go


@dataclass(frozen=True)
class Need:
    """What one run takes of a node: a CPU for each of its processes (the governor and
    its children), and GPUs up to the highest CUDA device its agents name."""

    cpus: int
    gpus: int

    def __str__(self) -> str:
        return f"{_count(self.cpus, 'CPU')} and {_count(self.gpus, 'GPU')}" if self.gpus else _count(self.cpus, "CPU")


def _count(number: float, unit: str) -> str:
    return f"{number:g} {unit}{'' if number == 1 else 's'}"


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
    # Ray hands a run its GPUs as CUDA devices 0..n-1 (CUDA_VISIBLE_DEVICES): a run that
    # names cuda:1 needs two of them for cuda:1 to be there.
    indices = [int(device.partition(":")[2] or 0) for device in cuda_devices(spec)]
    return Need(cpus=1 + len(children), gpus=max(indices) + 1 if indices else 0)


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
    # (the most CPUs and the most GPUs may be on different nodes: said apart)
    cpus = _count(max(node.cpus for node in nodes), "CPU")
    gpus = _count(max(node.gpus for node in nodes), "GPU")
    return (
        f"run {uid} needs {need} on one node (a CPU for each of its processes, GPUs up to the highest "
        f"CUDA device it names), and no node of the Ray cluster has that much (the most a node has: {cpus}; "
        f"{gpus}): give a node more (ray start --num-cpus N --num-gpus M), or the run fewer processes"
    )


def unreachable_store(url: str, here: str, nodes: Iterable[Node]) -> str | None:
    """Why some node cannot reach the store ``url``, which this machine (``here``, its
    address) reaches: a SQLite file, or a server named as this machine (``localhost``, a
    loopback address, a local socket), is this machine's alone. The URL is said without
    its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from arl.store.engine import describe_location, sqlite_path

    elsewhere = sorted({node.address for node in nodes if node.address != here})
    if not elsewhere:
        return None
    where = f"the Ray cluster has nodes on other machines ({', '.join(elsewhere[:3])})"
    advice = "give --store a PostgreSQL URL every node can reach, with the server's address (docs/cluster.md)"
    shown = describe_location(url)
    if sqlite_path(url) is not None:
        return f"the store {shown} is a SQLite file on this machine, and {where}: {advice}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # (the check said what is wrong with it)
    # libpq takes the server from the URL's host, else from ?host= (a name, or a socket's
    # folder), else a local socket; several, comma-separated, are tried in turn.
    host = parsed.host or ",".join(parsed.normalized_query.get("host", ()))
    local = [name for name in host.split(",") if _this_machine(name)]
    if local:
        named = f"a local socket in {local[0]}" if local[0].startswith("/") else local[0] or "a local socket"
        return f"the store {shown} names its server as {named}, each node's own, and {where}: {advice}"
    return None


def _this_machine(host: str) -> bool:
    """Whether ``host`` (a server's name or address in a URL) means whichever machine reads it."""
    if host.lower() in LOCAL_HOSTS or host.startswith("/"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


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
