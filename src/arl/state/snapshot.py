"""Snapshots of a run on disk: written atomically, loaded only when complete and unaltered.

A snapshot is the folder ``<state dir>/<run uid>/<name>``. It is written into a staging
folder beside it (``.staging-<name>-<random>``: the same file system, so the final rename
is atomic; a leading '.' so listings skip it), every file is hashed and fsynced, the
manifest (``manifest.json``) is written last, and only then is the folder renamed into
place and the parent fsynced. A process killed at any moment leaves either a staging
folder, which :func:`latest` never looks at, or a complete snapshot; never a final folder
with half its files. :func:`load` re-hashes every file before anything is read from it.

Process-free: the pause barrier and the governor that call this live elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import arl
from arl.checkpoints import CHUNK
from arl.errors import ArlError
from arl.names import inside, name_problem, path_part

log = logging.getLogger(__name__)

FORMAT = 1  # the manifest's layout; a loader refuses a format it does not know
MANIFEST = "manifest.json"
STAGING = ".staging-"
# UTC, sortable as text, and a valid arl name (no ':'): 20240102T030405.123456Z
NAME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
RESERVED = frozenset({"files", "format", "arl_version", "name", "saved_at"})


@dataclass(frozen=True)
class Manifest:
    """A verified snapshot: its folder, the caller's fields and what commit added."""

    path: Path
    name: str
    saved_at: str  # ISO 8601, UTC, microseconds: orders snapshots whatever their names
    arl_version: str
    files: dict[str, str]  # relative path (POSIX) -> sha256
    fields: dict[str, Any]  # run uid, phase, per-worker episode/step, store rows, ...


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:  # in chunks: a buffer's state may be larger than memory allows twice
        for chunk in iter(lambda: file.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot_name(format: str = NAME_FORMAT, now: datetime | None = None) -> str:
    """``now`` (UTC) formatted by ``format``; ArlError if the result cannot name a folder."""
    name = (now or datetime.now(UTC)).strftime(format)
    problem = name_problem(name)
    if problem is not None:
        raise ArlError(f"the snapshot name format {format!r} gives {name!r}, which {problem}")
    return name


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to disk: a rename is durable only once both are."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """The files and folders under ``folder``; ArlError for a link or anything else, which
    could point outside the snapshot or change without its hash changing."""
    files: list[Path] = []
    folders: list[Path] = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ArlError(f"{path} is not a plain file or folder; a snapshot holds only those")
        (files if path.is_file() else folders).append(path)
    return files, folders


class Staging:
    """A snapshot being written: callers write component folders into :attr:`path`, then
    :meth:`commit` (or :meth:`abort`). Not reusable after either."""

    def __init__(self, path: Path, final: Path) -> None:
        self.path = path
        self.final = final
        self._done = False

    def commit(self, fields: Mapping[str, Any]) -> Path:
        """Hash, fsync and rename the staging folder into place; returns the snapshot's path.

        ``fields`` (JSON values) go into the manifest as they are; the names ``files``,
        ``format``, ``arl_version``, ``name`` and ``saved_at`` are commit's own.
        """
        if self._done:
            raise ArlError(f"snapshot {self.final} was already committed or aborted")
        clash = sorted(RESERVED & fields.keys())
        if clash:
            raise ArlError(f"manifest fields {clash} are reserved for the snapshot itself; rename them")
        files, folders = _entries(self.path)
        if any(path.relative_to(self.path).as_posix() == MANIFEST for path in files):
            raise ArlError(f"{self.path / MANIFEST} was written by a component; that name is the snapshot's own")
        hashes: dict[str, str] = {}
        for path in files:
            hashes[path.relative_to(self.path).as_posix()] = file_sha256(path)
            _fsync(path)
        manifest = {
            **fields,
            "name": self.final.name,
            "saved_at": datetime.now(UTC).isoformat(),
            "arl_version": arl.__version__,
            "format": FORMAT,
            "files": hashes,
        }
        target = self.path / MANIFEST
        target.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        _fsync(target)
        for folder in [*reversed(folders), self.path]:  # deepest first: each entry before its parent
            _fsync(folder)
        if self.final.exists():  # os.rename would replace an empty folder silently
            raise ArlError(f"snapshot {self.final} exists already; choose another name")
        try:
            os.rename(self.path, self.final)  # atomic: same parent, same file system
        except OSError as error:  # another writer took the name since the check
            raise ArlError(f"snapshot {self.final} could not be put in place: {error}") from None
        self._done = True  # in place: nothing left to abort, whatever the fsync below says
        _fsync(self.final.parent)
        return self.final

    def abort(self) -> None:
        """Remove the staging folder (it is only ever ours: begin created it new)."""
        if self._done:
            return
        self._done = True
        shutil.rmtree(self.path)  # links inside are removed, never followed


def run_folder(state_dir: str | Path, run_uid: str) -> Path:
    return inside(state_dir, path_part(run_uid))


def begin(state_dir: str | Path, run_uid: str, name: str | None = None, name_format: str = NAME_FORMAT) -> Staging:
    """A new staging folder for snapshot ``name`` (default: now, by ``name_format``) of
    ``run_uid``, beside where it will end up. ArlError if that snapshot exists already."""
    name = snapshot_name(name_format) if name is None else name
    problem = name_problem(name)
    if problem is not None:
        raise ArlError(f"snapshot name {name!r} {problem}")
    parent = run_folder(state_dir, run_uid)
    final = inside(parent, name)
    if final.exists():
        raise ArlError(f"snapshot {final} exists already; choose another name")
    created = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)  # the run's folder holds all its snapshots
    if created:  # a new folder lasts a power loss only once its own parent is synced
        _fsync(parent.parent)
    staging = inside(parent, f"{STAGING}{name}-{secrets.token_hex(4)}")
    staging.mkdir()  # new, never exist_ok: a staging folder is only ever one writer's
    return Staging(staging, final)


def _refuse(path: Path, why: str) -> ArlError:
    return ArlError(
        f"snapshot {path} is incomplete or was altered after it was saved: {why}; "
        "refusing to load it. Restore it, or pick another snapshot"
    )


def _read_manifest(path: Path) -> dict[str, Any]:
    target = path / MANIFEST
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _refuse(path, f"{target} is missing") from None
    except (OSError, ValueError) as error:
        raise _refuse(path, f"{target} cannot be read ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise _refuse(path, f"{target} has no 'files' table")
    if data.get("format") != FORMAT:
        raise ArlError(
            f"snapshot {path} has manifest format {data.get('format')!r}; this arl reads format {FORMAT} only"
        )
    return data


def load(path: str | Path) -> Manifest:
    """The manifest of the snapshot at ``path``, once every file is proven to be the one
    saved: each listed file present with its sha256, and no file the manifest does not
    list. ArlError naming the first file that is missing, changed or extra."""
    folder = Path(path)
    data = _read_manifest(folder)
    listed: dict[str, str] = data["files"]
    try:
        files, _ = _entries(folder)
    except ArlError as error:
        raise _refuse(folder, str(error)) from None
    present = {p.relative_to(folder).as_posix(): p for p in files} if folder.is_dir() else {}
    present.pop(MANIFEST, None)
    for relative, sha256 in sorted(listed.items()):
        file = present.get(relative)
        if file is None:
            raise _refuse(folder, f"{relative} is missing")
        try:
            digest = file_sha256(file)
        except OSError as error:
            raise _refuse(folder, f"{relative} cannot be read ({error})") from None
        if digest != sha256:
            raise _refuse(folder, f"{relative} has changed (its sha256 is not the recorded {sha256})")
    extra = sorted(present.keys() - listed.keys())
    if extra:
        raise _refuse(folder, f"{extra[0]} is not listed in its manifest")
    return Manifest(
        path=folder,
        name=str(data.get("name", folder.name)),
        saved_at=str(data.get("saved_at", "")),
        arl_version=str(data.get("arl_version", "")),
        files=dict(listed),
        fields={k: v for k, v in data.items() if k not in RESERVED},
    )


def snapshots(state_dir: str | Path, run_uid: str) -> list[Manifest]:
    """The run's complete, unaltered snapshots, oldest first (by the time each was saved).

    Staging folders are skipped without a look; a folder without a readable manifest, or
    one that fails :func:`load`, is skipped with a warning (a crash before the rename
    cannot leave one, so it was made or changed by hand)."""
    parent = run_folder(state_dir, run_uid)
    if not parent.is_dir():
        return []
    found: list[Manifest] = []
    for folder in sorted(parent.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            found.append(load(folder))
        except ArlError as error:
            log.warning("skipping %s: %s", folder, error)
    return sorted(found, key=lambda m: (m.saved_at, m.name))


def latest(state_dir: str | Path, run_uid: str) -> Path | None:
    """The run's newest complete snapshot, or None if it has none."""
    found = snapshots(state_dir, run_uid)
    return found[-1].path if found else None
