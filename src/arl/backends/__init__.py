"""Where the Executor's governors run, one per experiment run.

* :mod:`arl.backends.local` (``--backend local``, the default): each governor is a child
  of this machine's fork server, and reports to the executor over ipc.
* :mod:`arl.backends.raycluster` (``--backend ray``): each run is a Ray actor
  (:class:`arl.backends.rayhost.RunHost`) on a node of a Ray cluster, which starts the
  run's governor there as the local backend would, and relays its reports and log
  records to the executor through Ray (docs/cluster.md).

Either way a run's own processes (its broker, conductors, controllers) are children of
its governor on one machine, and talk over ipc: no run's ZeroMQ traffic crosses
machines. The executor sees a governor as a :class:`GovernorProcess` (a
:class:`arl.proc.child.SupervisedChild` here, a proxy of the remote one on Ray) and
reaches it through its :class:`Backend`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Protocol

from arl.errors import ArlError

if TYPE_CHECKING:
    from arl.executor import Executor, _Governor
    from arl.proc.child import ChildSpec

BACKENDS = ("local", "ray")


class NotOpened(ArlError):
    """The backend could not be set up: no run can start (each is FAILED, not started)."""


class NotStarted(ArlError):
    """A governor was let go before it started (an interrupt while it waited for a node)."""


class GovernorProcess(Protocol):
    """A run's governor as the executor handles it, wherever it runs."""

    @property
    def spec(self) -> ChildSpec: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    @property
    def exited(self) -> asyncio.Future[int]: ...

    async def start(self, timeout: float) -> None: ...

    def request_stop(self) -> None: ...

    async def stop(self, *, grace: float = 3.0) -> int: ...


class Backend(Protocol):
    start_at_once: int
    """How many runs may be starting at once; 0: as many as this process may use cores."""

    def opened(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Set up for the runs for the block; :class:`NotOpened` if that fails."""
        ...

    def process(self, governor: _Governor) -> GovernorProcess:
        """The (not yet started) process of ``governor``'s run."""
        ...

    async def send(self, governor: _Governor, frame: bytes) -> None:
        """Send the governor a control frame (it answers through the executor's
        :meth:`~arl.executor.Executor.heard`)."""
        ...

    def death(self, governor: _Governor, code: int) -> str:
        """Why a governor that exited with ``code`` without reporting ended its run."""
        ...

    def lost(self, governor: _Governor) -> bool:
        """Whether ``governor`` died with the machine it ran on (not of its own doing)."""
        ...

    async def release(self, governor: _Governor) -> None:
        """The executor is done with ``governor`` (it has its outcome, or starts it over):
        free what it held."""
        ...


def died_without_reporting(executor: Executor, governor: _Governor, code: int, where: str = "") -> str:
    """What a governor that exited with ``code`` and no outcome is said to have done,
    with its last log lines (the executor keeps them); ``where``: its machine, if not
    this one."""
    from arl.governor.options import describe_exit, last_lines

    assert governor.child is not None
    said = last_lines(executor.tails.of(governor.child.spec.label))
    pid = f"pid {governor.child.pid}{f' on {where}' if where else ''}"
    return f"the run's governor process {describe_exit(code)} without reporting ({pid}). Its last log lines:\n{said}"


def backend_for(executor: Executor) -> Backend:
    """The backend the executor's options name. Imports Ray only for ``ray``."""
    name = executor.options.backend
    if name == "local":
        from arl.backends.local import LocalBackend

        return LocalBackend(executor)
    if name == "ray":
        from arl.backends.raycluster import RayBackend

        return RayBackend(executor)
    raise NotOpened(f"no backend {name!r}: choose one of {', '.join(BACKENDS)}")
