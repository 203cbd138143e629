"""Restarting a worker whose controller or environment process died (the file's
``restart: {max, within}``): the shell's side of :class:`~arl.governor.machine.RestartWorker`.

The machine decides whether a death is restarted; this replaces the processes, ends the
worker's open episodes in the store and sets its environments up again, so that the
worker can run the episodes it still owes (:class:`~arl.governor.machine.ResumeWorker`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from arl import time as arl_time
from arl.config.spec import PhaseSpec
from arl.errors import ArlError
from arl.governor import machine as m
from arl.messages import store
from arl.proc.child import SupervisedChild
from arl.status import Ending
from arl.store.recorder import WorkerProgress
from arl.store.writer import StoreWriter

if TYPE_CHECKING:
    from arl.governor.shell import GovernorShell

log = logging.getLogger("arl.governor")

SETTLE = 0.25
"""Seconds a restart's drain of the store writer takes records at most, once its barrier
is met, while other workers keep sending (without them it ends after the writer's
``QUIET``, 0.1 s): the dead processes' last records, in the socket's buffers when they
were reaped, are read well within it."""


class _Stopped(Exception):
    """The run's workers were asked to stop while the worker restarted."""


replaced = m.replaced


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
    shell.death(shell.children[command.label], command.code, fate, level=logging.WARNING)
    shell.abandon(command.worker, replaced(command.label, command.worker))
    shell.activity(functools.partial(restart_worker, shell, command))


async def restart_worker(shell: GovernorShell, command: m.RestartWorker) -> m.Event:
    """Replace the worker's processes, end its open episodes ``worker-died``, start the
    new processes and set its environments up; answer where the worker stands in the
    store (:class:`~arl.governor.machine.WorkerRestarted`), or the run's failure when a
    new process died before it was set up.

    A stop asked meanwhile ends the restart where it is: the machine counts the worker
    interrupted, and stopping the run stops the new processes (started or not)."""
    phase = shell.spec.phases[command.phase]
    new = [await _replace(shell, label) for label in replaced(command.label, command.worker)]
    # With envs_per_worker the controller stepped copies, each a worker of its own in the store.
    copies = phase.envs_per_worker
    found = await end_episodes(shell.writer, phase.index, [command.worker * copies + k for k in range(copies)])
    progress = [p for p in found if p is not None]
    if len(progress) < len(found):
        raise ArlError(f"the store could not end worker {command.worker}'s episodes (see the log above)")
    restarted = m.WorkerRestarted(
        phase.index,
        command.worker,
        tuple(p.next_episode for p in progress),
        tuple(p.episodes for p in progress),
        tuple(p.steps for p in progress),
    )
    try:
        if not shell.interrupted.is_set():  # (a start is not cut short: a fork it gave up on would run on)
            await _start(shell, new)
        # Their exits are watched here (one that died would leave a setup request
        # unanswered until it timed out), by the shell once they are set up.
        dead = await _unless_stopped(shell, _setup(shell, phase, command.worker), new)
    except _Stopped:
        log.info("run %s: worker %d is not restarted: the run is stopping", shell.spec.uid, command.worker)
        return restarted
    if dead is not None:
        code = dead.exitcode
        assert code is not None  # (it exited)
        return m.Failed(shell.death(dead, code, "the restart failed"))
    for child in new:
        shell.start_watching(child)  # from now on a death of these is news (a new restart, or the run's end)
    return restarted


async def end_episodes(writer: StoreWriter, phase: int, workers: Sequence[int]) -> list[WorkerProgress | None]:
    """End the open episodes of ``workers`` (the store's numbers; their processes were
    reaped) ``worker-died``; return where each stands in the store (None: the writer
    dropped its ``WorkerLost``, and said why)."""
    # Everything the dead processes sent is in the writer's socket buffers by now (they
    # were reaped), but a flush's barrier goes down the writer's in-process pipe and can
    # overtake records still crossing the ipc socket: a drain then takes records until
    # none came for QUIET seconds (SETTLE at most), so that the WorkerLost after it finds
    # the dead worker's last episode and steps.
    await asyncio.to_thread(functools.partial(writer.drain, settle=SETTLE))
    for worker in workers:
        writer.submit(store.WorkerLost(phase, worker, Ending.WORKER_DIED, time.time()))
    await asyncio.to_thread(writer.flush)
    return [writer.worker_progress(phase, worker) for worker in workers]


async def _start(shell: GovernorShell, children: Sequence[SupervisedChild]) -> None:
    await asyncio.gather(*(child.start(shell.options.timeouts.start) for child in children))


async def _setup(shell: GovernorShell, phase: PhaseSpec, worker: int) -> None:
    timeout = shell.options.timeouts.request
    await asyncio.gather(
        *(
            shell.request(shell.plan.env_host(env.uid, worker), shell.setup_environment(phase, env), timeout)
            for env in phase.environments
        )
    )


async def _unless_stopped(
    shell: GovernorShell, work: Coroutine[Any, Any, None], watched: Sequence[SupervisedChild]
) -> SupervisedChild | None:
    """Do ``work``, unless first a process of ``watched`` exits (return it: the work is
    abandoned) or the workers are asked to stop (raise :class:`_Stopped`)."""
    if shell.interrupted.is_set():
        work.close()
        raise _Stopped
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(shell.interrupted.wait())
    exits = {child.exited: child for child in watched}  # (shielded: cancelling one leaves the child's own)
    waiting: set[asyncio.Future[Any]] = {task, stop, *exits}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in waiting:
            future.cancel()
    dead = next((child for exited, child in exits.items() if exited.done() and not exited.cancelled()), None)
    if dead is not None:
        # What the work did after the death (a request that can get no answer) is moot.
        if task.done() and not task.cancelled():
            task.exception()
        return dead
    if task.done() and not task.cancelled():
        task.result()
        return None
    raise _Stopped  # (the work was cancelled above)


async def _replace(shell: GovernorShell, label: str) -> SupervisedChild:
    """Reap (or kill) the old process, make the broker forget it, and put a new, not yet
    started one in its place (where stopping the run finds it)."""
    old = shell.children[label]
    await old.stop(grace=0.0)  # the dead one is reaped; a live controller is killed (SIGTERM)
    if shell.broker is not None:  # an idle dead worker would be handed the next request
        shell.broker.forget(old.spec.args["service"])
    old.spec.args["clock"] = arl_time.clock().state()  # (the run's scaled time now, not at its start)
    child = shell.children[label] = SupervisedChild(old.spec, shell.logs.child_config)
    return child
