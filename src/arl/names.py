"""Names that become paths, and paths that must stay inside arl's own folders.

Agent names, phase names and run and experiment uids end up in checkpoint paths. The
file check refuses a name that could leave its folder or not be a file name at all
(:func:`name_problem`); whatever arl then writes is still resolved and proven to lie
inside its root (:func:`inside`), so no name, link or sweep suffix can reach outside.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from arl.errors import ArlError

MAX_NAME = 100  # characters; a path part must stay well under the file system's 255 bytes
ALLOWED = "letters, digits, '_', '-' and '.' (not first), at most 100 characters"
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=,+\[\]-]")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an agent, phase or run, or None if it can."""
    if not name:
        return f"must not be empty; use {ALLOWED}"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; use {ALLOWED}"
    if _NAME.fullmatch(name) is None:
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "_.-"))})
        if bad:
            shown = ", ".join(repr(c) for c in bad[:5])
            return f"contains {shown}; use {ALLOWED}"
        return f"must not start with '.'; use {ALLOWED}"
    return None


def path_part(text: str) -> str:
    """``text`` as one safe path component: unsafe characters become '_', and a long or
    changed text keeps a short hash of the original so two texts never share a folder."""
    safe = _UNSAFE.sub("_", text).lstrip(".") or "_"
    if safe == text and len(text) <= MAX_NAME:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{safe[: MAX_NAME - 11]}-{digest}"


def inside(root: str | Path, *parts: str) -> Path:
    """``root/part/...`` resolved, proven to lie inside ``root`` resolved; ArlError if not."""
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise ArlError(f"refusing to write {target}: it is not inside {base}")
    return target
