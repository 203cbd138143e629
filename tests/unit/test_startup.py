"""What start-up depends on without running anything: a light ``import arl``, and when
the fork server may be forked rather than spawned. Each check runs in a fresh
interpreter, as what is imported and which threads run are process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_arl_imports_numpy_and_gymnasium_only_when_a_name_needs_them() -> None:
    said = python(
        """
        import sys
        import arl
        heavy = ("numpy", "gymnasium", "pydantic", "zmq", "sqlalchemy", "arl.api", "arl.conditions")
        print(sorted(m for m in heavy if m in sys.modules))
        from arl import WallClock
        print("gymnasium" in sys.modules, WallClock.__module__)
        print(arl.Brain.__module__, "gymnasium" in sys.modules, "Brain" in dir(arl))
        try:
            arl.Nothing
        except AttributeError as exc:
            print(exc)
        """
    )
    assert said.splitlines() == [
        "[]",
        "False arl.conditions",
        "arl.api False True",  # arl.api names gymnasium's spaces in annotations only
        "module 'arl' has no attribute 'Nothing'",
    ]


def test_the_fork_server_is_forked_only_from_a_process_without_threads_or_zeromq() -> None:
    said = python(
        """
        import threading, time
        import numpy  # OpenBLAS starts its thread pool: joined by OpenBLAS at a fork
        import zmq
        from arl.proc.forkserver import _forkable
        print(_forkable())
        ctx = zmq.Context()
        print(_forkable())  # no socket yet: libzmq has started no thread
        sock = ctx.socket(zmq.PUSH)  # libzmq starts its threads; each names itself as it begins
        deadline = time.monotonic() + 10
        while _forkable() and time.monotonic() < deadline:
            time.sleep(0.001)
        print(_forkable())
        sock.close()
        ctx.term()
        print(_forkable())
        thread = threading.Thread(target=time.sleep, args=(0.5,))
        thread.start()
        print(_forkable())
        thread.join()
        """
    )
    assert said.split() == ["True", "True", "False", "True", "False"]
