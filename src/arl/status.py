"""The words arl says a run, a phase or an episode is in or ended with, in one place.

:class:`RunStatus` is a run's status wherever it is said: the governor's state machine,
what the governor reports and ``arl-run -v`` prints, and ``experiment_runs.status``.
:class:`Ending` is why a run, a phase or an episode ended when arl (rather than a
termination condition, whose reason is its own word) says it. Both are ``str`` enums, so
what is stored and printed is the plain word.
"""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    SCHEDULED = "SCHEDULED"  # in the store, not begun (the store's word; arl records a run as it starts)
    PRISTINE = "PRISTINE"  # not begun
    STARTING = "STARTING"  # its processes are starting
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"  # its processes are being stopped
    FINISHED = "FINISHED"  # ended: every phase ran, or a run-level condition ended it
    INTERRUPTED = "INTERRUPTED"  # ended: asked to stop (Ctrl-C, SIGTERM)
    FAILED = "FAILED"  # ended: something failed (the error says what)

    @property
    def ended(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.INTERRUPTED, RunStatus.FAILED)


STORED_STATUSES = (RunStatus.SCHEDULED, RunStatus.RUNNING, RunStatus.FINISHED, RunStatus.FAILED, RunStatus.INTERRUPTED)
"""The statuses ``experiment_runs.status`` holds (the others are a live governor's only)."""


class Ending(enum.StrEnum):
    COMPLETED = "completed"  # a run or phase: everything ran
    EPISODES = "episodes"  # a worker's phase: it ran all its episodes
    MAX_STEPS = "max_steps"  # an episode: the phase's step cap
    INTERRUPTED = "interrupted"  # asked to stop: ended at a step boundary
    FAILED = "failed"  # something failed
    WORKER_DIED = "worker-died"  # an episode: its worker's process died and was restarted (``restart``)
