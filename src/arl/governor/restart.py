"""Restarting a worker whose controller or environment process died (the file's
``restart: {max, within}``): the shell's side of :class:`~arl.governor.machine.RestartWorker`.

The machine decides whether a death is restarted; this replaces the processes, sets the
worker's environments up again and ends its open episode in the store, so that the
worker can run the episodes it still owes (:class:`~arl.governor.machine.ResumeWorker`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING

from arl.errors import ArlError
from arl.governor import machine as m
from arl.messages import store
from arl.proc.child import SupervisedChild
from arl.status import Ending

if TYPE_CHECKING:
    from arl.governor.shell import GovernorShell


def replaced(label: str, worker: int) -> list[str]:
    """The processes a restart replaces after process ``label`` of ``worker`` died: that
    one, and for an environment process also the worker's controller, which would wait
    for its dead peer forever. (A dead controller's environment processes live on: they
    are set up again.)"""
    controller = f"controller:{worker}"
    return [label] if label == controller else [label, controller]


def begin_restart(shell: GovernorShell, command: m.RestartWorker) -> None:
    """Say so (a warning, with the dead process's last lines), then restart the worker
    as an activity of the shell. The worker's phase activity waits for a reply that
    cannot come, and the processes to be replaced are no longer watched: their exits are
    the restart's own doing."""
    restart = shell.spec.restart
    assert restart is not None
    fate = (
        f"worker {command.worker} is restarted (restart {command.restarts} of the run; "
        f"the file's restart allows {restart.max} within {restart.within:g} s)"
    )
    shell._death(shell.children[command.label], command.code, fate, level=logging.WARNING)
    running = shell._workers.pop(command.worker, None)
    if running is not None:
        running.cancel()
    for label in replaced(command.label, command.worker):
        watcher = shell._watchers.pop(label, None)
        if watcher is not None:
            watcher.cancel()
    shell._activity(functools.partial(restart_worker, shell, command))


async def restart_worker(shell: GovernorShell, command: m.RestartWorker) -> m.Event:
    """Replace the worker's processes, set its environments up, end its open episode
    ``worker-died``; answer where the worker stands in the store."""
    phase = shell.spec.phases[command.phase]
    new = [await _replace(shell, label) for label in replaced(command.label, command.worker)]
    await asyncio.gather(*(child.start(shell.options.timeouts.start) for child in new))
    timeout = shell.options.timeouts.request
    await asyncio.gather(
        *(
            shell._request(
                shell.plan.env_host(env.uid, command.worker),
                shell._setup_environment(phase, env),
                timeout,
            )
            for env in phase.environments
        )
    )
    # Everything the dead processes sent has arrived long since (they were reaped before
    # their replacements started): the first flush stores it, so that the WorkerLost
    # after it finds the dead worker's last episode.
    # With envs_per_worker the controller stepped copies, each a worker of its own in the store.
    copies = phase.envs_per_worker
    stored = [command.worker * copies + k for k in range(copies)]
    writer = shell.writer
    await asyncio.to_thread(writer.flush)
    for worker in stored:
        writer.submit(store.WorkerLost(phase.index, worker, Ending.WORKER_DIED, time.time()))
    await asyncio.to_thread(writer.flush)
    progress = [writer.worker_progress(phase.index, worker) for worker in stored]
    if any(p is None for p in progress):
        raise ArlError(f"the store could not end worker {command.worker}'s episodes (see the log above)")
    for child in new:
        shell._start_watching(child)  # from now on a death of these is news (a new restart, or the run's end)
    return m.WorkerRestarted(
        phase.index,
        command.worker,
        tuple(p.next_episode for p in progress if p is not None),
        tuple(p.episodes for p in progress if p is not None),
        tuple(p.steps for p in progress if p is not None),
    )


async def _replace(shell: GovernorShell, label: str) -> SupervisedChild:
    """Reap (or kill) the old process, make the broker forget it, and put a new, not yet
    started one in its place (where stopping the run finds it)."""
    old = shell.children[label]
    await old.stop(grace=0.0)  # the dead one is reaped; a live controller is killed (SIGTERM)
    if shell.broker is not None:  # an idle dead worker would be handed the next request
        shell.broker.forget(old.spec.args["service"])
    child = shell.children[label] = SupervisedChild(old.spec, shell.logs.child_config)
    return child
