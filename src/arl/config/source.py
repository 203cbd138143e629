"""Reading an experiment file's text: refusing what is not a file of text before it is
read whole (a FIFO would block, ``/dev/zero`` never ends, a log of gigabytes fills the
memory), and pointing at the line and column of bytes that are not UTF-8."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from arl.errors import ConfigError, Location, Problem

MAX_FILE_BYTES = 10 * 1024 * 1024
"""The largest experiment file read (10 MiB); real ones are a few kilobytes."""


def read_source(path: Path) -> str:
    """The text of the experiment file at ``path``; ConfigError if it is not a regular
    file, is larger than MAX_FILE_BYTES, cannot be read, or is not UTF-8."""
    filename = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before it can be refused.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _refused(filename, f"cannot read the file: {exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _refused(filename, f"cannot read the file: it is {_kind(mode)}, not a regular file")
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(MAX_FILE_BYTES + 1)  # the size stat reports may be wrong (/proc)
        except OSError as exc:
            raise _refused(filename, f"cannot read the file: {exc}") from None
    if len(data) > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES // (1024 * 1024)
        raise _refused(filename, f"the file is larger than {limit} MiB; an experiment file is a few kilobytes")
    return decode(data, filename)


def decode(data: bytes, filename: str) -> str:
    """``data`` as UTF-8 text; ConfigError at the line and column of the first byte that
    is not UTF-8 (editors show lines and columns, not byte offsets)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")  # valid: decoding failed first at exc.start
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        message = f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x}: {exc.reason})"
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            message += " (the file is UTF-16)"
        message += "; save it as UTF-8"
        raise ConfigError([Problem(Location(filename, line, column), "", message)]) from None


def _refused(filename: str, message: str) -> ConfigError:
    return ConfigError([Problem(Location(filename), "", message)])


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((words for test, words in kinds if test(mode)), "not a regular file")
