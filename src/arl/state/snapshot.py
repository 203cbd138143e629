"""Snapshots of a run on disk: written atomically, loaded only when complete and unaltered.

A snapshot is the folder ``<state dir>/<run uid>/<name>``. It is written into a staging
folder beside it (``.staging-<name>-<random>``: the same file system, so the final rename
is atomic; a leading '.' so listings skip it), every file is hashed and fsynced, the
manifest (``manifest.json``) is written last, and only then is the folder renamed into
place and the parent fsynced. A process killed at any moment leaves either a staging
folder, which :func:`latest` never looks at, or a complete snapshot; never a final folder
with half its files. :func:`load` re-hashes every file before anything is read from it.

The manifest carries a sequence number per run (``seq``: 1 + the highest among the run's
snapshots), which orders them whatever their names and whatever the wall clock did, and
is itself hashed into ``manifest.sha256`` beside it (in ``sha256sum``'s format, so
``sha256sum -c manifest.sha256`` checks it by hand). :func:`sweep_staging` removes the
staging folders a killed writer left.

Process-free: the pause barrier and the governor that call this live elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import stat
import time
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

FORMAT = 2  # the manifest's layout; a loader refuses a format it does not know (1: no seq, no digest)
MANIFEST = "manifest.json"
DIGEST = "manifest.sha256"  # the manifest's own sha256, written before the rename
STAGING = ".staging-"
# What begin() names a staging folder: .staging-<name>-<8 hex digits>; nothing else is swept.
STAGING_PATTERN = re.compile(r"\.staging-.+-[0-9a-f]{8}")
# UTC, sortable as text, and a valid arl name (no ':'): 20240102T030405.123456Z
NAME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
RESERVED = frozenset({"files", "format", "arl_version", "name", "saved_at", "seq"})


@dataclass(frozen=True)
class Manifest:
    """A verified snapshot: its folder, the caller's fields and what commit added."""

    path: Path
    name: str
    seq: int  # 1 + the highest of the run's snapshots when it was saved: orders them
    saved_at: str  # ISO 8601, UTC, microseconds: for people and every_hours, not for order
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
        ``format``, ``arl_version``, ``name``, ``saved_at`` and ``seq`` are commit's own.
        """
        if self._done:
            raise ArlError(f"snapshot {self.final} was already committed or aborted")
        clash = sorted(RESERVED & fields.keys())
        if clash:
            raise ArlError(f"manifest fields {clash} are reserved for the snapshot itself; rename them")
        files, folders = _entries(self.path)
        for own in (MANIFEST, DIGEST):
            if any(path.relative_to(self.path).as_posix() == own for path in files):
                raise ArlError(f"{self.path / own} was written by a component; that name is the snapshot's own")
        hashes: dict[str, str] = {}
        for path in files:
            hashes[path.relative_to(self.path).as_posix()] = file_sha256(path)
            _fsync(path)
        manifest = {
            **fields,
            "name": self.final.name,
            "seq": 1 + max((seq for seq, _, _ in _candidates(self.final.parent, warn=False)), default=0),
            "saved_at": datetime.now(UTC).isoformat(),
            "arl_version": arl.__version__,
            "format": FORMAT,
            "files": hashes,
        }
        data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
        for name, content in ((MANIFEST, data), (DIGEST, _digest_line(data))):
            target = self.path / name
            target.write_bytes(content)
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


def _digest_line(manifest: bytes) -> bytes:
    """``manifest.sha256``'s content: as ``sha256sum`` writes it."""
    return f"{hashlib.sha256(manifest).hexdigest()}  {MANIFEST}\n".encode("ascii")


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the snapshot at ``path``, once it matches ``manifest.sha256``."""
    target, digest = path / MANIFEST, path / DIGEST
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        raise _refuse(path, f"{target} is missing") from None
    except OSError as error:
        raise _refuse(path, f"{target} cannot be read ({error})") from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and "format" in data:
        _check_format(path, data)  # before the digest: format 1 had none, and deserves a clear word
    try:
        recorded = digest.read_bytes()
    except FileNotFoundError:
        raise _refuse(path, f"{digest} is missing") from None
    except OSError as error:
        raise _refuse(path, f"{digest} cannot be read ({error})") from None
    if recorded != _digest_line(raw):
        raise _refuse(path, f"{target} does not match the sha256 in {digest}")
    if not isinstance(data, dict):
        raise _refuse(path, f"{target} is not a JSON table")
    _check_format(path, data)
    if not isinstance(data.get("files"), dict):
        raise _refuse(path, f"{target} has no 'files' table")
    seq = data.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise _refuse(path, f"{target} has no sequence number 'seq' (a whole number from 1)")
    return data


def _check_format(path: Path, data: dict[str, Any]) -> None:
    found = data.get("format")
    if found != FORMAT:
        raise ArlError(
            f"snapshot {path} has manifest format {found!r} (written by arl {data.get('arl_version', '?')}); "
            f"this arl ({arl.__version__}) reads format {FORMAT} only: load it with the arl that wrote it"
        )


def load(path: str | Path) -> Manifest:
    """The manifest of the snapshot at ``path``, once it and every file are proven to be
    the ones saved: the manifest matches ``manifest.sha256``, each listed file is present
    with its sha256, and no file the manifest does not list is there. ArlError naming the
    first file that is missing, changed or extra."""
    folder = Path(path)
    data = _read_manifest(folder)
    listed: dict[str, str] = data["files"]
    try:
        files, _ = _entries(folder)
    except ArlError as error:
        raise _refuse(folder, str(error)) from None
    present = {p.relative_to(folder).as_posix(): p for p in files} if folder.is_dir() else {}
    present.pop(MANIFEST, None)
    present.pop(DIGEST, None)
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
        seq=int(data["seq"]),
        saved_at=str(data.get("saved_at", "")),
        arl_version=str(data.get("arl_version", "")),
        files=dict(listed),
        fields={k: v for k, v in data.items() if k not in RESERVED},
    )


def _candidates(parent: Path, warn: bool = True) -> list[tuple[int, str, Path]]:
    """``(seq, name, folder)`` of each folder in the run folder ``parent`` whose manifest
    reads and matches its digest, by seq then name; the files are not hashed here.

    Staging folders (and anything else whose name starts with '.') are skipped without a
    look; any other folder without such a manifest is skipped, with a warning if ``warn``
    (a crash before the rename cannot leave one, so it was made or changed by hand)."""
    if not parent.is_dir():
        return []
    found: list[tuple[int, str, Path]] = []
    for folder in parent.iterdir():
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        if folder.is_symlink():  # commit never makes one: it could point anywhere
            if warn:
                log.warning("skipping %s: a link, not a snapshot folder", folder)
            continue
        try:
            data = _read_manifest(folder)
        except ArlError as error:
            if warn:
                log.warning("skipping %s: %s", folder, error)
            continue
        found.append((int(data["seq"]), folder.name, folder))
    return sorted(found)


def snapshots(state_dir: str | Path, run_uid: str) -> list[Manifest]:
    """The run's complete, unaltered snapshots, oldest first: by ``seq``, then name (never
    by the wall clock, which may step back). Each is verified by :func:`load`; one that
    fails is skipped with a warning, as is a folder without a manifest."""
    found: list[Manifest] = []
    for _, _, folder in _candidates(run_folder(state_dir, run_uid)):
        try:
            found.append(load(folder))
        except ArlError as error:
            log.warning("skipping %s: %s", folder, error)
    return found


def latest(state_dir: str | Path, run_uid: str) -> Path | None:
    """The run's newest complete snapshot, or None if it has none. Only the newest are
    hashed, down to the first that loads (an altered one is skipped with a warning)."""
    for _, _, folder in reversed(_candidates(run_folder(state_dir, run_uid))):
        try:
            return load(folder).path
        except ArlError as error:
            log.warning("skipping %s: %s", folder, error)
    return None


def sweep_staging(state_dir: str | Path, run_uid: str, older_than: float = 0) -> list[Path]:
    """Remove the staging folders that writers killed mid-save left in ``run_uid``'s
    folder, those last changed ``older_than`` seconds ago or more (0: all of them; call
    it so only while no snapshot of the run is being written). Only folders named as
    :func:`begin` names them are touched: a link of that name is left (with a warning),
    never followed. Returns the folders removed."""
    if not (older_than >= 0 and math.isfinite(older_than)):
        raise ArlError(f"older_than must be a number of seconds, 0 or more, not {older_than}")
    parent = run_folder(state_dir, run_uid)
    if not parent.is_dir():
        return []
    removed: list[Path] = []
    for entry in sorted(parent.iterdir()):
        if not STAGING_PATTERN.fullmatch(entry.name):
            continue
        try:
            info = entry.lstat()
        except FileNotFoundError:  # another sweeper took it
            continue
        if not stat.S_ISDIR(info.st_mode):
            log.warning("leaving %s: named as a staging folder, but a link or a file, not a folder arl made", entry)
            continue
        if time.time() - info.st_mtime < older_than:
            continue
        shutil.rmtree(entry)  # links inside are removed, never followed
        removed.append(entry)
    if removed:
        _fsync(parent)
    return removed
