"""Child targets for the SupervisedChild tests: each takes the ChildContext arl gives it.

They run in processes the fork server forks, which import them by name
(``arl_test_children:<function>``), so this directory must be on the server's path.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import threading
import time

from arl.proc.child import ChildContext

log = logging.getLogger("arl.test.child")

_PR_GET_PDEATHSIG = 2


def _wait_for_stop(ctx: ChildContext) -> None:
    """Block (never spin) until the parent says stop or goes away."""
    while not ctx.stop_requested():
        ctx.conn.poll(1.0)  # returns as soon as a word (or end of file) arrives


def _sleep_forever() -> None:
    while True:
        time.sleep(1.0)


def _pdeathsig() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    value = ctypes.c_int(-1)
    libc.prctl(_PR_GET_PDEATHSIG, ctypes.byref(value))
    return value.value


def cooperative(ctx: ChildContext) -> None:
    """Logs a line at INFO and one at WARNING, says ready, stops when asked."""
    log.info("hello from %s", ctx.spec.label)
    log.warning("careful from %s", ctx.spec.label)
    ctx.ready()
    _wait_for_stop(ctx)
    log.info("stopping %s", ctx.spec.label)


def ignores_stop(ctx: ChildContext) -> None:
    """Says ready, then never looks at the control pipe again."""
    ctx.ready()
    _sleep_forever()


def ignores_sigterm(ctx: ChildContext) -> None:
    """Ignores SIGTERM and the stop word: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.ready()
    _sleep_forever()


def crashes_before_ready(ctx: ChildContext) -> None:
    raise RuntimeError(f"boom in {ctx.spec.label} before ready")


def never_ready(ctx: ChildContext) -> None:
    """Starts, but never tells its parent it is ready."""
    _sleep_forever()


def reports_itself(ctx: ChildContext) -> None:
    """Logs what _bootstrap set up (title, SIGINT, parent-death signal), then serves."""
    from setproctitle import getproctitle

    sigint = signal.getsignal(signal.SIGINT)
    log.info(
        "title=%s sigint=%s pdeathsig=%d",
        getproctitle(),
        "ignored" if sigint is signal.SIG_IGN else repr(sigint),
        _pdeathsig(),
    )
    ctx.ready()
    _wait_for_stop(ctx)


async def async_cooperative(ctx: ChildContext) -> None:
    """The async flavour (as a governor runs): ready, then await the stop word."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(ctx.control_fd, readable.set)
    try:
        log.info("async hello from %s", ctx.spec.label)
        ctx.ready()
        while not ctx.stop_requested():
            await readable.wait()
            readable.clear()
    finally:
        loop.remove_reader(ctx.control_fd)
    log.info("async stopping %s", ctx.spec.label)


def returns_before_ready(ctx: ChildContext) -> None:
    """Returns without ever saying ready; exits cleanly (code 0) half a second later.

    The control pipe closes as soon as this returns (nothing holds the ChildContext any
    more); the process exits only when its non-daemon worker thread ends. The worker
    makes the gap between the two deterministic, not a race.
    """
    log.info("%s has nothing to do", ctx.spec.label)
    threading.Thread(target=time.sleep, args=(0.5,), name="lingering-worker").start()


def starved_before_ready(ctx: ChildContext) -> None:
    """Needs 0.2 s of CPU before it says ready, on the CPU ``ARL_TEST_CPU`` names and at
    the lowest priority (SCHED_IDLE): while anything else runs there, it waits."""
    import os

    os.sched_setaffinity(0, {int(os.environ["ARL_TEST_CPU"])})
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    began = time.process_time()
    while time.process_time() - began < 0.2:
        pass
    ctx.ready()
    _wait_for_stop(ctx)


async def starts_a_grandchild(ctx: ChildContext) -> None:
    """Starts a cooperative child of its own through the fork server, as a governor does,
    logs its pid, says ready, then waits to be killed."""
    from arl.proc.child import ChildSpec, SupervisedChild

    spec = ChildSpec("test", "grandchild", "arl_test_children:cooperative")
    grandchild = SupervisedChild(spec, ctx.spec.args["logs"])
    await grandchild.start(20.0)
    log.info("grandchild %d", grandchild.pid)
    ctx.ready()
    await asyncio.Event().wait()
