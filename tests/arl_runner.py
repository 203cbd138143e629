"""``ArlRun``: arl-run in a subprocess against a store in a folder of the test's (the
``arl_run`` fixture's, or a module fixture's own)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

COMPONENTS = Path(__file__).resolve().parent / "components"  # the tests' own components


class ArlRun:
    """Runs ``arl-run`` in a subprocess against a store and checkpoint dir in ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "arl.db"
        self.url = f"sqlite:///{self.db}"
        self.started: list[subprocess.Popen[str]] = []
        # arl-run's private directories go here, so even a killed run leaves nothing in /tmp
        # (kept short: ipc socket paths are limited to about 100 characters).
        self.private = tempfile.mkdtemp(prefix="arl-e2e-")

    @property
    def env(self) -> dict[str, str]:
        """Read at each start, so a leak-check token set after this object was made is passed on."""
        env = {**os.environ, "PYTHONPATH": str(COMPONENTS), "ARL_STORE_URL": self.url, "TMPDIR": self.private}
        env.pop("PYTHONWARNINGS", None)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "arl.cli", *args]

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args, "--checkpoint-dir", str(self.tmp / "ckpt"))
            if args and args[0].endswith(".yml")
            else self.argv(*args),
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str, checkpoints: bool = True) -> subprocess.Popen[str]:
        """Start in a new session, as a shell would start a foreground job; a run keeps its
        checkpoints in the test's folder (``checkpoints=False``: a command with no
        ``--checkpoint-dir``, such as ``check``)."""
        where = ("--checkpoint-dir", str(self.tmp / "ckpt")) if checkpoints else ()
        proc = subprocess.Popen(
            self.argv(*args, *where),
            env=self.env,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    def count(self, table: str) -> int:
        """Rows in ``table`` now, 0 while the store or its schema does not exist yet."""
        try:
            return int(self.scalar(f"select count(*) from {table}"))
        except sqlite3.OperationalError:
            return 0

    def reap(self) -> None:
        """Kill and wait for whatever a test started and left running (after a failure)."""
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
            proc.communicate(timeout=30)
        shutil.rmtree(self.private, ignore_errors=True)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as db:
            return db.execute(sql, params).fetchall()

    def scalar(self, sql: str, *params: Any) -> Any:
        rows = self.query(sql, *params)
        return rows[0][0] if rows else None
