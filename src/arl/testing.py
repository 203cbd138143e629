"""Helpers for testing arl and things built on it: deadlines instead of sleeps, leak checks."""

from __future__ import annotations

import os
import time
import uuid
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


LEAK_TOKEN_VARIABLE = "ARL_LEAK_TOKEN"


def arl_processes(token: str | None = None) -> list[psutil.Process]:
    """Live processes titled ``arl[...]``; with ``token``, only those started under it.

    Processes inherit their environment, so a token set in the environment of the
    process that started a run marks every process of that run, even after a parent
    died and the kernel re-parented its children.
    """
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["status"] == psutil.STATUS_ZOMBIE or not cmdline or not cmdline[0].startswith("arl["):
                continue
            if token is None or proc.environ().get(LEAK_TOKEN_VARIABLE) == token:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def titled(root: int, title: str | tuple[str, ...]) -> list[psutil.Process]:
    """Live descendants of process ``root`` whose title is ``title`` (or, given a tuple,
    starts with one of its strings), such as ``arl[agent:defender]`` of an ``arl-run``;
    processes that vanish while they are looked at are skipped."""
    found = []
    for child in psutil.Process(root).children(recursive=True):
        try:
            name = (child.cmdline() or [""])[0]
        except psutil.Error:
            continue
        if (name == title) if isinstance(title, str) else name.startswith(title):
            found.append(child)
    return found


@contextmanager
def check_process_leak(*, timeout: float = 10.0) -> Iterator[str]:
    """Fail if the block leaves an ``arl[...]`` process behind.

    Sets a fresh token in ``os.environ`` for the block: only processes started from
    here (directly, or from a subprocess given a copy of ``os.environ``) are
    considered, so tests running elsewhere on the machine are never touched.
    """
    token = uuid.uuid4().hex
    # setproctitle reuses the environment's memory for long titles unless SPT_NOENV is
    # set, which would erase the token from /proc/<pid>/environ.
    marks = {LEAK_TOKEN_VARIABLE: token, "SPT_NOENV": "1"}
    previous = {name: os.environ.get(name) for name in marks}
    os.environ.update(marks)
    try:
        yield token
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        # Every 50 ms: a look reads every process of the machine (some 10 ms of CPU with
        # a busy suite's several hundred), which a tighter poll would take from the tests.
        poll_for(lambda: not arl_processes(token), timeout=timeout, interval=0.05, what="arl processes to exit")
    except TimeoutError:
        left = arl_processes(token)
        for proc in left:
            proc.kill()
        raise AssertionError(f"processes leaked: {[(p.pid, p.info['cmdline'][0]) for p in left]}") from None
