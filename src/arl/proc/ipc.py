"""Private folders for ``ipc://`` endpoints, short enough for their sockets.

A Unix socket's path is limited to ``sizeof(sun_path) - 1`` = 107 bytes on Linux, and
ZeroMQ refuses a longer ``ipc://`` endpoint. ``$TMPDIR`` may be deep (a CI workspace, a
home on a network share), so when the folder made there leaves too little room for the
endpoints below it, one is made in a short system folder instead.
"""

from __future__ import annotations

import os
import tempfile

from arl.errors import ArlError

IPC_PATH_MAX = 107
"""Bytes a Unix socket path may have on Linux (``sun_path`` is 108, with the NUL)."""

ROOM = 32
"""Bytes kept free below a private folder for what arl puts in it: a governor's folder
and the longest endpoint name (``/g<index>/broker``, ``/g<index>/e<index>``)."""

SHORT_FOLDERS = ("/tmp", "/dev/shm", "/var/tmp")
"""Where to go when ``$TMPDIR`` is too deep, in this order."""


def private_dir(prefix: str, room: int = ROOM) -> str:
    """A new folder (mode 0700, the caller removes it) with ``room`` bytes to spare for
    ipc endpoint paths below it: in the usual temporary folder if that is short enough,
    else in the first of :data:`SHORT_FOLDERS` that is.

    Raises :class:`ArlError` if none is short enough and writable.
    """
    limit = IPC_PATH_MAX - room
    tried = []
    for parent in (tempfile.gettempdir(), *SHORT_FOLDERS):
        # mkdtemp adds 8 random characters to the prefix, and a separator.
        if len(os.fsencode(parent)) + 1 + len(prefix) + 8 > limit or parent in tried:
            continue
        tried.append(parent)
        try:
            return tempfile.mkdtemp(prefix=prefix, dir=parent)
        except OSError:
            continue
    raise ArlError(
        f"cannot make a private folder for ipc sockets with a path under {limit} bytes: "
        f"$TMPDIR ({tempfile.gettempdir()}) is too long and {', '.join(SHORT_FOLDERS)} cannot be written; "
        "set TMPDIR to a short folder you can write"
    )
