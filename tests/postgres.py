"""A throwaway PostgreSQL server for the store tests and the benchmark: ``initdb`` in a
temp dir, ``pg_ctl start`` on a free loopback port, everything removed again on stop.

    with PostgresServer.start_new() as server:
        url = server.url(server.create_database())   # postgresql+psycopg://...

``initdb`` refuses root, so as root the server's commands run as the ``postgres`` user
(``runuser``) in a directory handed to it. The server trusts every local connection
and listens on 127.0.0.1 only; its unix socket lives in its own directory.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

BIN_ENV_VAR = "ARL_PG_BIN"
"""A directory holding initdb and pg_ctl; else the newest /usr/lib/postgresql/*/bin, else PATH."""

SUPERUSER = "postgres"
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
PORT_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it

FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
"""For tests: a crash of this server loses nothing anyone wants."""


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here: binaries or the ``postgres`` user missing."""


def find_bin_dir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are. Raises :class:`PostgresUnavailable` saying where
    it looked."""
    explicit = os.environ.get(BIN_ENV_VAR)
    candidates = [explicit] if explicit else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if not explicit and on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    where = f"${BIN_ENV_VAR}={explicit}" if explicit else "/usr/lib/postgresql/*/bin and PATH"
    raise PostgresUnavailable(f"no initdb and pg_ctl in {where} (apt-get install postgresql-15 brings them)")


def _version(bin_dir: str) -> int:
    name = Path(bin_dir).parent.name
    return int(name) if name.isdigit() else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL cluster in a temp dir. :meth:`start_new` it; :meth:`stop` removes it."""

    def __init__(self, bin_dir: Path, *, fast: bool = True) -> None:
        self.bin_dir = bin_dir
        self.settings = FAST if fast else ()
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="arl-pg-"))  # short: the socket path is limited
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count(1)
        self._running = False

    @classmethod
    def start_new(cls, *, fast: bool = True) -> Self:
        """A running server. Raises :class:`PostgresUnavailable` when none can be started
        here, ``RuntimeError`` with the server's log when starting it failed."""
        server = cls(find_bin_dir(), fast=fast)
        try:
            server._init()
            server._start()
        except BaseException:
            server.stop()
            raise
        return server

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- databases ------------------------------------------------------------------------

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"arl_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing any connection still open on it."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str) -> None:
        """Run ``sql`` in the ``postgres`` database, outside a transaction."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True) as c:
            c.execute(sql.encode())

    # -- the server -----------------------------------------------------------------------

    def _init(self) -> None:
        if self._as_postgres:
            try:
                account = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(f"running as root and no {SUPERUSER!r} user to run initdb as") from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._run(
            ["initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C",
             "--no-sync", "--no-instructions"],
        )  # fmt: skip

    def crash(self) -> None:
        """Stop the server as a crash would (``pg_ctl -m immediate``: no shutdown checkpoint,
        every connection cut); its data stays for :meth:`restart`."""
        self._running = False
        self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def restart(self) -> None:
        """Start the server again on the same port, after :meth:`crash` (it recovers)."""
        self._start(port=self.port)

    def _start(self, port: int | None = None) -> None:
        for attempt in range(PORT_ATTEMPTS):
            self.port = port or free_port()
            options = ["-p", str(self.port), "-k", str(self.root), "-c", "listen_addresses=127.0.0.1"]
            for setting in self.settings:
                options += ["-c", setting]
            try:
                self._run(
                    ["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(START_TIMEOUT),
                     "-o", " ".join(options), "start"],
                )  # fmt: skip
            except RuntimeError:
                if attempt == PORT_ATTEMPTS - 1 or "could not bind" not in self._log_text():
                    raise
                continue
            self._running = True
            return

    def stop(self) -> None:
        """Stop the server and remove its directory. When this returns, the server has
        exited (``pg_ctl -w`` waits for it) and nothing of it is left; a second call does
        nothing."""
        try:
            if self._running:
                self._running = False
                self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, argv: Sequence[str]) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=START_TIMEOUT + 30, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{argv[0]} failed (exit code {done.returncode}):\n{done.stdout}{done.stderr}{self._log_text()}"
            )

    def _log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text()
        return ""
