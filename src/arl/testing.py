"""Helpers for testing arl and things built on it: deadlines instead of sleeps, leak checks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psutil

T = TypeVar("T")


def poll_for(predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.01, what: str = "") -> T:
    """Call ``predicate`` until it returns something truthy; return that, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting{' for ' + what if what else ''} after {timeout:.1f} s")
        time.sleep(interval)


def arl_processes() -> list[psutil.Process]:
    """Every live process on this machine whose title is ``arl[...]``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["status"] != psutil.STATUS_ZOMBIE and cmdline and cmdline[0].startswith("arl["):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@contextmanager
def check_process_leak(*, timeout: float = 10.0) -> Iterator[None]:
    """Fail if the block leaves an ``arl[...]`` process behind that was not there before."""
    before = {p.pid for p in arl_processes()}
    yield

    def leaked() -> list[psutil.Process]:
        return [p for p in arl_processes() if p.pid not in before]

    try:
        poll_for(lambda: not leaked(), timeout=timeout, what="arl processes to exit")
    except TimeoutError:
        left = leaked()
        for proc in left:
            proc.kill()
        raise AssertionError(f"processes leaked: {[(p.pid, p.info['cmdline'][0]) for p in left]}") from None
