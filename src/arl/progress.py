"""What ``arl-run run`` shows while its runs go: a live table on a terminal, plain lines
off one (CI, a pipe), nothing with ``-q``.

The executor polls each stepping governor for its status every :data:`POLL_INTERVAL`
(:meth:`arl.livecontrol.LiveControl.watch`, the answer is
:meth:`arl.governor.control.ControlDesk.status`) and hands it to a :class:`Progress`,
with the governors' state changes and the runs' outcomes. What is shown is worked out
without any I/O: :class:`Progress` keeps what is known of each run, :func:`row` makes a
run's row of the table and :class:`PlainLines` the lines off a terminal; only
:class:`LiveProgress` (rich) and :class:`PlainProgress` write anything. Users' text (uids,
names of phases and agents) goes through :func:`arl.terminal.printable` and into the
table as plain text, never as rich markup.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol

from arl.terminal import printable

if TYPE_CHECKING:
    from arl.childoutput import OutputRelay

log = logging.getLogger("arl.executor")

POLL_INTERVAL = 0.5  # seconds between two statuses of a run
STATUS_TIMEOUT = 5.0  # seconds a status may take; a later one is skipped (the run goes on)
MILESTONES = 10  # off a terminal: a line each tenth of a phase's planned episodes
QUIET_LIMIT = 60.0  # off a terminal: a line at least this often while a run steps
RETURN_WINDOW = 10  # a status's returns: the mean of its phase's newest ended episodes, this many
STALE_AFTER = 2 * STATUS_TIMEOUT  # seconds without a status, one at least missed, before a row says so
MAX_ROWS = 40  # the live table's rows at most (fewer on a short terminal); a line says how many more
MIN_ROWS = 5  # (even on a terminal shorter than the table)
COLUMNS = ("run", "state", "phase", "episodes", "steps", "steps/s", f"return (last {RETURN_WINDOW})", "elapsed", "left")


class ProgressSink(Protocol):
    """What the executor tells a display; ``now`` is :func:`time.monotonic`'s."""

    # ``run``: the run's place in the list of runs the executor was given
    def state(self, run: int, state: str, now: float) -> None: ...  # its governor reported a state

    def update(self, run: int, status: Mapping[str, Any], now: float) -> None: ...  # its status

    def ended(self, run: int, outcome: Any, now: float) -> None: ...  # its RunOutcome

    def missed(self, run: int, now: float) -> None: ...  # a status asked of it did not come

    def refresh(self, now: float) -> None: ...  # redraw (every POLL_INTERVAL)

    def children_output(self) -> OutputRelay | None: ...  # where the runs' processes write (arl.childoutput)


@dataclass(frozen=True)
class PhasePlan:
    """A phase as the file plans it: ``episodes`` on each of its ``workers`` (each copy of
    ``envs_per_worker`` a worker), at most ``max_steps`` steps an episode if capped. The
    one place a plan is worked out: the display's, and a status's ``planned``."""

    name: str
    mode: str
    episodes: int
    workers: int
    max_steps: int | None = None

    @classmethod
    def of(cls, phase: Any) -> PhasePlan:
        """The plan of a :class:`arl.config.spec.PhaseSpec`."""
        return cls(phase.name, phase.mode, phase.episodes, phase.actors, phase.max_steps)

    @property
    def total(self) -> int:
        return self.episodes * self.workers

    @property
    def steps(self) -> int | None:
        return self.total * self.max_steps if self.max_steps else None

    def as_status(self) -> dict[str, Any]:
        """As a status's ``planned`` says it."""
        return {
            "episodes": self.total,
            "episodes_per_worker": self.episodes,
            "workers": self.workers,
            "max_steps": self.max_steps,
            "steps": self.steps,
        }


def plans(spec: Any) -> tuple[PhasePlan, ...]:
    """The phases of a :class:`arl.config.spec.RunSpec`."""
    return tuple(PhasePlan.of(phase) for phase in spec.phases)


@dataclass
class RunProgress:
    """What is known of one run: the last status its governor gave (at ``seen``), and the
    first one of its current phase (``pace``: phase, when, episodes ended), for the rate."""

    uid: str
    phases: tuple[PhasePlan, ...]
    state: str = "waiting"
    began: float | None = None
    status: dict[str, Any] = field(default_factory=dict)
    seen: float = 0.0
    pace: tuple[int, float, int] | None = None
    missed: float | None = None  # when a status asked since the last one came did not come
    outcome: Any = None
    ended: float | None = None

    @property
    def history(self) -> list[Mapping[str, Any]]:
        """Its ended phases: as its outcome says once it ended, else as its last status."""
        said = getattr(self.outcome, "history", None) or self.status.get("history")
        return list(said or [])

    def stale(self, now: float) -> float | None:
        """Seconds since its last status, once one missed and :data:`STALE_AFTER` passed."""
        if self.outcome is not None or self.missed is None:
            return None
        since = now - (self.seen if self.status else self.missed)
        return since if since >= STALE_AFTER else None


class Progress:
    """A :class:`ProgressSink` that keeps what it is told and shows nothing."""

    def __init__(self, runs: Sequence[tuple[str, tuple[PhasePlan, ...]]]) -> None:
        self.runs = [RunProgress(uid, phases) for uid, phases in runs]  # (two files may have one uid)

    def state(self, index: int, state: str, now: float) -> None:
        run = self.runs[index]
        if run.outcome is None:
            run.state = state
        if run.began is None:
            run.began = now

    def update(self, index: int, status: Mapping[str, Any], now: float) -> None:
        run = self.runs[index]
        if run.outcome is not None:
            return
        run.status, run.seen, run.missed = dict(status), now, None
        run.state = str(status.get("state", run.state))
        if run.began is None:
            run.began = now
        phase, done = status.get("phase_index"), status.get("phase_episodes")
        if isinstance(phase, int) and isinstance(done, int) and (run.pace is None or run.pace[0] != phase):
            run.pace = (phase, now, done)

    def ended(self, index: int, outcome: Any, now: float) -> None:
        run = self.runs[index]
        run.outcome, run.ended, run.state = outcome, now, str(outcome.status)

    def missed(self, index: int, now: float) -> None:
        run = self.runs[index]
        if run.missed is None:
            run.missed = now

    def refresh(self, now: float) -> None:
        return None

    def children_output(self) -> OutputRelay | None:
        """None: the runs' processes write where ``arl-run`` does."""
        return None

    def rows(self, now: float) -> list[Row]:
        return [row(run, now) for run in self.runs]


# -- what is shown of a run ------------------------------------------------------------------


class Row(NamedTuple):
    run: str
    state: str
    phase: str
    episodes: str
    steps: str
    steps_per_s: str
    returns: str
    elapsed: str
    left: str


def row(run: RunProgress, now: float) -> Row:
    """A run's row of the live table; a figure not known yet is blank."""
    s, outcome = run.status, run.outcome
    index = _shown_phase(run)
    phase = _phase_label(run, index) if index is not None else ""
    elapsed = duration(elapsed_of(run, now))
    if outcome is not None:
        returns = s.get("returns") or (run.history or [{}])[-1].get("returns") or {}
        return Row(
            printable(run.uid), run.state, phase, f"{outcome.episodes:,}", f"{outcome.steps:,}", "",
            returns_text(returns), elapsed, "",
        )  # fmt: skip
    state = run.state + (" (paused)" if s.get("paused") else "")
    stale = run.stale(now)
    if stale is not None:  # (its figures are as they were then: "left" is not counted down)
        state += f" (no status for {stale:.0f} s)"
    if index is None:
        return Row(printable(run.uid), state, "", "", "", "", "", elapsed, "")
    planned = run.phases[index] if index < len(run.phases) else None
    done, steps = s.get("phase_episodes"), s.get("phase_steps")
    rate = s.get("steps_per_s")
    return Row(
        printable(run.uid),
        state,
        phase,
        _of(done, planned.total if planned else None),
        _of(steps, planned.steps if planned else None),
        f"{rate:,.0f}" if isinstance(rate, int | float) else "",
        returns_text(s.get("returns") or {}),
        elapsed,
        "?" if stale is not None else duration(remaining(run, now)),
    )


def _shown_phase(run: RunProgress) -> int | None:
    """The phase a row names: its last status's, or the last its outcome says ended."""
    index = run.status.get("phase_index")
    last = len(run.history) - 1 if run.outcome is not None else -1
    if isinstance(index, int):
        return max(index, last)
    return last if last >= 0 else None


def elapsed_of(run: RunProgress, now: float) -> float | None:
    """Seconds since the run was first reported, until its end."""
    if run.began is None:
        return None
    return (run.ended if run.ended is not None else now) - run.began


def remaining(run: RunProgress, now: float) -> float | None:
    """Seconds the run has left, estimated from the episodes its current phase has ended
    since it was first seen; later phases' episodes taken at the same pace a worker. None
    until an episode ended, or while the run does not step."""
    s = run.status
    if run.outcome is not None or s.get("state") != "RUNNING" or run.pace is None:
        return None
    index, then, before = run.pace
    done = s.get("phase_episodes")
    if index != s.get("phase_index") or not isinstance(done, int) or done <= before or run.seen <= then:
        return None
    if index >= len(run.phases):
        return None
    rate = (done - before) / (run.seen - then)  # episodes a second, all workers together
    here = run.phases[index]
    a_worker = here.workers / rate  # seconds an episode takes a worker
    later = sum(p.episodes for p in run.phases[index + 1 :]) * a_worker
    return max(0.0, max(0, here.total - done) / rate + later - (now - run.seen))


def duration(seconds: float | None) -> str:
    """``h:mm:ss``; blank for unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def returns_text(returns: Mapping[str, Any]) -> str:
    """``defender 4.56, attacker -4.561``: each agent's mean return, as printed."""
    return ", ".join(f"{printable(str(agent))} {_number(value)}" for agent, value in returns.items())


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def _of(done: Any, planned: int | None) -> str:
    if not isinstance(done, int):
        return ""
    return f"{done:,}/{planned:,}" if planned else f"{done:,}"


def _phase_label(run: RunProgress, index: int) -> str:
    count = run.status.get("phase_count") or len(run.phases)
    name = run.phases[index].name if index < len(run.phases) else str(run.status.get("phase", "?"))
    return f"{index + 1}/{count} {printable(name)}"


# -- off a terminal: plain lines -----------------------------------------------------------


@dataclass
class _Marks:
    announced: int = 0  # phases whose start line is out
    closed: int = 0  # phases whose end line is out
    tenth: int = 0  # the current phase's last milestone said
    last: float | None = None  # when the run's last line was


class PlainLines:
    """The lines a run's progress makes off a terminal: one as each phase starts and ends
    (a phase that began and ended between two statuses too: its end is in the status's
    ``history``), one each tenth of a phase's planned episodes, and one at least every
    :data:`QUIET_LIMIT` seconds while it steps. Pure: give it the run, take the lines."""

    def __init__(self) -> None:
        self._marks: dict[int, _Marks] = {}

    def after_update(self, run: RunProgress, now: float) -> list[str]:
        marks = self._marks.setdefault(id(run), _Marks())
        s = run.status
        lines = _closing(run, marks, s.get("history") or [], now)
        index = s.get("phase_index")
        if isinstance(index, int) and index >= marks.closed and s.get("state") == "RUNNING":
            if index >= marks.announced:
                lines.append(start_line(run, index))
                marks.announced, marks.tenth = index + 1, 0
            tenth = _tenth(s.get("phase_episodes"), run.phases[index].total if index < len(run.phases) else 0)
            due = marks.last is not None and now - marks.last >= QUIET_LIMIT
            if (marks.tenth < tenth < MILESTONES) or due:
                lines.append(progress_line(run, now))
                marks.tenth = max(marks.tenth, tenth)
        if lines:
            marks.last = now
        return lines

    def after_end(self, run: RunProgress, now: float) -> list[str]:
        """Once the run has ended: the lines of the phases its outcome says ended that no
        status said (its last phase's end, when its last status came before it)."""
        return _closing(run, self._marks.setdefault(id(run), _Marks()), run.history, now)


def _closing(run: RunProgress, marks: _Marks, history: Sequence[Mapping[str, Any]], now: float) -> list[str]:
    """The start (if not said yet) and end lines of the phases in ``history`` not said to
    have ended yet."""
    lines = []
    for ended in range(marks.closed, len(history)):
        if ended >= marks.announced:
            lines.append(start_line(run, ended))
        lines.append(end_line(run, ended, history[ended], now))
    marks.closed = max(marks.closed, len(history))
    marks.announced = max(marks.announced, marks.closed)
    return lines


def _tenth(done: Any, planned: int) -> int:
    return done * MILESTONES // planned if isinstance(done, int) and planned > 0 else 0


def start_line(run: RunProgress, index: int) -> str:
    """``[uid] phase 1/2 train (train): 10 episodes planned, 5 on each of 2 workers, ...``"""
    plan = run.phases[index]
    spread = f", {plan.episodes:,} on each of {plan.workers} workers" if plan.workers > 1 else ""
    cap = f", at most {plan.max_steps:,} steps each" if plan.max_steps else ""
    planned = f"{_count(plan.total, 'episode')} planned"
    return f"{_who(run)} phase {_phase_label(run, index)} ({plan.mode}): {planned}{spread}{cap}"


def end_line(run: RunProgress, index: int, ended: Mapping[str, Any], now: float) -> str:
    """``[uid] phase 1/2 train ended (completed): 10 episodes, 200 steps, mean return ...``"""
    counts = f"{_count(ended.get('episodes', 0), 'episode')}, {_count(ended.get('steps', 0), 'step')}"
    returns = returns_text(ended.get("returns") or {})
    said = f"; mean return {returns}" if returns else ""
    reason = printable(str(ended.get("reason", "")))
    took = duration(elapsed_of(run, now))
    took = f"; {took} elapsed" if took else ""
    return f"{_who(run)} phase {_phase_label(run, index)} ended ({reason}): {counts}{said}{took}"


def progress_line(run: RunProgress, now: float) -> str:
    """``[uid] train 50%: 5/10 episodes, 100 steps, 812 steps/s, return ... (last 5); ...``"""
    shown, s = row(run, now), run.status
    index = s["phase_index"]
    planned = run.phases[index].total if index < len(run.phases) else 0
    done = s.get("phase_episodes") or 0
    share = f" {100 * done // planned}%" if planned else ""
    parts = [f"{shown.episodes} episodes", f"{shown.steps} steps"]
    if shown.steps_per_s:
        parts.append(f"{shown.steps_per_s} steps/s")
    if shown.returns:
        parts.append(f"return {shown.returns} (last {s.get('returns_over', RETURN_WINDOW)})")
    times = f"{shown.elapsed} elapsed" + (f", ~{shown.left} left" if shown.left else "")
    return f"{_who(run)} {printable(run.phases[index].name)}{share}: {', '.join(parts)}; {times}"


def _count(n: Any, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}" if isinstance(n, int) else f"? {word}s"


def _who(run: RunProgress) -> str:
    return f"[{printable(run.uid)}]"


class PlainProgress(Progress):
    """Off a terminal: :class:`PlainLines`' lines, each written and flushed at once."""

    def __init__(self, runs: Sequence[tuple[str, tuple[PhasePlan, ...]]], echo: Callable[[str], None]) -> None:
        super().__init__(runs)
        self._lines = PlainLines()
        self._echo = echo

    def update(self, index: int, status: Mapping[str, Any], now: float) -> None:
        super().update(index, status, now)
        run = self.runs[index]
        if run.outcome is None:
            for line in self._lines.after_update(run, now):
                self._echo(line)

    def ended(self, index: int, outcome: Any, now: float) -> None:
        super().ended(index, outcome, now)
        for line in self._lines.after_end(self.runs[index], now):
            self._echo(line)


# -- which one --------------------------------------------------------------------------------


def mode_for(quiet: bool, out: IO[str], environ: Mapping[str, str] = os.environ) -> str:
    """``none`` with ``-q``; ``live`` on a terminal that can redraw; else ``plain``."""
    if quiet:
        return "none"
    try:
        terminal = out.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return "live" if terminal and environ.get("TERM", "") != "dumb" else "plain"


@contextlib.contextmanager
def shown(
    mode: str, runs: Sequence[tuple[str, tuple[PhasePlan, ...]]], out: IO[str], clock: Callable[[], float]
) -> Iterator[Progress | None]:
    """The display ``mode`` (:func:`mode_for`) names, on for the block: a live table is
    stopped however the block ends (an exception, Ctrl-C), leaving its last drawing and
    the cursor shown."""
    if mode == "none":
        yield None
        return
    if mode == "plain":

        def echo(line: str) -> None:
            out.write(line + "\n")
            out.flush()  # (a pipe's buffer would hold the line back until the end)

        yield PlainProgress(runs, echo)
        return
    from arl.liveprogress import LiveProgress

    live = LiveProgress(runs, out)
    live.start(clock())
    try:
        yield live
    finally:
        live.stop(clock())
