"""arl.testing's leak check catches what it should, and only that."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from arl.testing import arl_processes, check_process_leak, poll_for

pytestmark = pytest.mark.timeout(30)
TITLED = "import setproctitle, time; setproctitle.setproctitle('arl[leak:test]'); time.sleep(30)"


def _titled(env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", TITLED], env=env)
    poll_for(lambda: psutil.Process(proc.pid).cmdline()[:1] == ["arl[leak:test]"], what="the title")
    return proc


def test_a_process_left_behind_is_reported_and_killed() -> None:
    with (
        pytest.raises(AssertionError, match=r"processes leaked: .*arl\[leak:test\]"),
        check_process_leak(timeout=0.5),
    ):
        proc = _titled(dict(os.environ))
    assert proc.wait(5) == -9


def test_processes_started_outside_the_block_are_left_alone() -> None:
    outsider = _titled({k: v for k, v in os.environ.items() if k != "ARL_LEAK_TOKEN"})
    try:
        with check_process_leak(timeout=0.5) as token:
            assert outsider.pid not in {p.pid for p in arl_processes(token)}
        assert outsider.poll() is None
    finally:
        outsider.kill()
        outsider.wait(5)
