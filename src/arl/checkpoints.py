"""Where arl saves brains, and the proof that a brain it loads is the one the store recorded.

A run's brains go to ``<checkpoint dir>/<run uid>-<run id>-<key>/<phase>/<agent>/``. The
random key keeps the folder unique across stores: a second store in the same folder has
a run 1 too, and without the key its brains would land on the first store's. Every folder
is created new (never ``exist_ok``), and every path is proven to lie inside the checkpoint
dir (:func:`arl.names.inside`) with each name made one safe component
(:func:`arl.names.path_part`): arl never writes into, let alone removes, a folder it did
not create in this run.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from arl.errors import ArlError
from arl.names import inside, path_part

if TYPE_CHECKING:
    from arl.config.spec import AgentSpec, PhaseSpec

CHUNK = 2**20  # bytes read at a time when hashing a brain
KEY_BYTES = 4  # 8 hex digits: two runs of one id in one folder collide once in ~4e9


@dataclass(frozen=True)
class Saved:
    """A saved brain: its folder and the sha256 recorded when it was saved."""

    path: str
    sha256: str


def directory_digest(directory: Path) -> str:
    """sha256 over every file's relative path and content, in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        with path.open("rb") as file:  # in chunks: a brain may be larger than memory allows twice
            for chunk in iter(lambda: file.read(CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()


def make_folder(path: Path, what: str) -> Path:
    """Create ``path``, which must not exist yet (its parent must). Returns it."""
    try:
        path.mkdir()
    except FileExistsError:
        raise ArlError(
            f"refusing to save {what} into {path}: it exists already, and arl never writes into "
            "a folder it did not create in this run; move it away or choose another --checkpoint-dir"
        ) from None
    return path


def verify(saved: Saved) -> Path:
    """The folder of ``saved``, once its contents are proven to be what the store recorded.

    Raises :class:`ArlError` naming the folder and both digests if it is gone or changed,
    so a brain is never loaded silently from something arl did not save.
    """
    directory = Path(saved.path)
    if not directory.is_dir():
        raise ArlError(
            f"the saved brain {directory} is gone (the store recorded sha256 {saved.sha256}); "
            "restore the folder, or train that brain again"
        )
    actual = directory_digest(directory)
    if actual != saved.sha256:
        raise ArlError(
            f"the saved brain {directory} was changed after arl saved it: its sha256 is {actual}, "
            f"the store recorded {saved.sha256}; refusing to load it. Restore the folder, or train that brain again"
        )
    return directory


class RunCheckpoints:
    """The brains one run saved, and the run's folder for them (made at its first save)."""

    def __init__(self, root: str | Path, uid: str, key: str | None = None) -> None:
        self.root = Path(root)
        self.uid = uid
        self.key = key or secrets.token_hex(KEY_BYTES)
        self.folder: Path | None = None
        self._saved: dict[tuple[str, str], Saved] = {}

    def phase_folder(self, run_id: int | None, phase: str) -> Path:
        """A new folder for ``phase``'s brains, inside the run's folder (made new first)."""
        if self.folder is None:
            folder = inside(self.root, f"{path_part(self.uid)}-{run_id}-{self.key}")
            folder.parent.mkdir(parents=True, exist_ok=True)  # the checkpoint dir: shared, never ours alone
            self.folder = make_folder(folder, f"run {self.uid}'s brains")
        return make_folder(inside(self.folder, path_part(phase)), f"phase {phase}'s brains")

    def brain_folder(self, phase: str, agent: str) -> Path:
        """Where ``agent``'s brain of ``phase`` goes, once :meth:`phase_folder` has made the
        phase's folder; the agent's conductor creates it (:func:`make_folder`)."""
        if self.folder is None:
            raise ArlError(f"run {self.uid} has no checkpoint folder yet")
        return inside(self.root, self.folder.name, path_part(phase), path_part(agent))

    def record(self, phase: str, agent: str, saved: Saved) -> None:
        self._saved[(phase, agent)] = saved

    def find(self, phase: str, agent: str) -> Saved | None:
        """The brain ``agent`` saved in ``phase`` of this run, if it did."""
        return self._saved.get((phase, agent))


def load_from(checkpoints: RunCheckpoints, store_url: str, phase: PhaseSpec, agent: AgentSpec) -> list[str] | None:
    """``SetupAgent.load_from``: the brain's folder and the sha256 recorded when it was
    saved, which the agent checks before loading it (``phase``, ``agent``: the file's specs)."""
    load = agent.load
    if load is None:
        return None
    if load.run is not None:
        from arl.store.query import find_checkpoint

        found = find_checkpoint(store_url, load.run, load.phase, load.agent)
        if found is None:
            raise ValueError(
                f"phase {phase.name}: agent {agent.name}: no saved brain of agent {load.agent} "
                f"in phase {load.phase} of run {load.run} in the store"
            )
    else:
        found = checkpoints.find(load.phase or "", load.agent)
        if found is None:
            raise ValueError(
                f"phase {phase.name}: agent {agent.name}: phase {load.phase} saved no brain of agent "
                f"{load.agent} (only train phases save brains)"
            )
    return [found.path, found.sha256]
