"""Following a run as it writes, a poll at a time, by reading only what was stored since
the last: its counts of episodes and steps per phase (:class:`RunCounts`) and its
episodes' returns (:class:`RunReturns`).

Both rest on how one run's rows are written: by its one writer, each row with a larger id
than the last, committed in that order. So each poll reads the episodes with an id above
the largest read, whether the ones still open have ended, and then, for each open or new
episode, its steps or actions with an id above the largest read of it: a statement per
poll whose work grows with the rows stored since, not with the run. The episodes are read
first: an episode read as ended has all its steps and actions stored (they are committed
with or before its end), so once those are read it is done with.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from arl.dashboard.series import Episode, returns_chart
from arl.store.schema import AgentActionRow, EnvironmentStepRow, EpisodeRow, PhaseRow

T = TypeVar("T")

IN_CHUNK = 200
"""Ids in one ``IN`` or ``OR`` list."""

Place = tuple[int, int, int]
"""An episode's place in its run: phase index, episode index, worker."""
Counted = dict[int, tuple[int, int]]
"""Per phase (by index): how many rows, and the largest id among them (0 for none)."""


class RunCounts:
    """One writing of a run's episodes and environment steps per phase (by index); a run
    rewound and written anew needs a new one. Counted first by :func:`count_first`, then
    brought up to date by :meth:`update`."""

    def __init__(self) -> None:
        self.episodes: dict[int, int] = {}  # a phase with none yet too
        self.steps: dict[int, int] = {}
        self.counted = False
        self._last_episode = 0  # the largest episode id counted
        self._open: dict[int, tuple[int, int]] = {}  # episode id: its phase, the largest step id of it counted

    def update(self, conn: Connection, run_id: int) -> None:
        """Count what the run stored since the last count."""
        phases, new = _episodes_after(conn, run_id, self._last_episode)
        ended = _ended(conn, list(self._open))
        for phase in phases:
            self.episodes.setdefault(phase, 0)
        for episode_id, (phase, _, _), done in new:
            self.episodes[phase] += 1
            self._open[episode_id] = (phase, 0)
            self._last_episode = max(self._last_episode, episode_id)
            if done:
                ended.add(episode_id)
        for episode_id, count, last in _new_steps(conn, {e: last for e, (_, last) in self._open.items()}):
            phase, _ = self._open[episode_id]
            self.steps[phase] = self.steps.get(phase, 0) + count
            self._open[episode_id] = (phase, last)
        for episode_id in ended:
            del self._open[episode_id]

    def start(self, episodes: Counted, steps: Counted, still_open: list[tuple[int, int]]) -> None:
        """Counted from nothing (:func:`count_first`): ``episodes`` and ``steps`` per phase,
        the steps those of the episodes counted; ``still_open`` the episodes (id, phase)
        not ended, read after ``episodes`` and before ``steps``."""
        self.episodes = {phase: count for phase, (count, _) in episodes.items()}
        self._last_episode = max((last for _, last in episodes.values()), default=0)
        self.steps = {phase: count for phase, (count, _) in steps.items()}
        # Every step of the run up to the largest id counted was stored, and counted.
        last_step = max((last for _, last in steps.values()), default=0)
        self._open = {e: (phase, last_step) for e, phase in still_open if e <= self._last_episode}
        self.counted = True


def count_first(conn: Connection, runs: Sequence[tuple[int, RunCounts]]) -> None:
    """Count ``runs`` (by id) from nothing, their episodes in a few statements for all (the
    runs list shows up to 500), their steps in one statement a run: those of the episodes
    counted (an episode stored later has all its steps counted by :meth:`RunCounts.update`)."""
    for chunk in chunks(runs, IN_CHUNK):
        run_ids = [run_id for run_id, _ in chunk]
        found = _episodes_per_phase(conn, run_ids)
        still_open = _open_episodes(conn, run_ids)  # after the counts: those open then, or since
        for run_id, counts in chunk:
            episodes = found.get(run_id, {})
            last_episode = max((last for _, last in episodes.values()), default=0)
            counts.start(episodes, _steps_per_phase(conn, run_id, last_episode), still_open.get(run_id, []))


@dataclass
class _Open:
    """An episode not yet read as ended: its place, and its returns summed so far."""

    place: Place
    phase_name: str
    returns: dict[str, float] = field(default_factory=dict)
    last_action: int = 0  # the largest action id summed

    def episode(self, *, still_open: bool) -> Episode:
        return Episode(self.place[0], self.phase_name, dict(self.returns), still_open)


class RunReturns:
    """One writing of a run's episodes in the run's order, each with its return per agent
    (the sum of its objective over the agent's actions); :meth:`chart` brings them up to
    date. The run's order is by phase, episode and worker, not by id (workers run side by
    side), so an episode read later may belong before one read earlier: it is put in its
    place, found by bisection."""

    def __init__(self) -> None:
        self._places: list[Place] = []  # sorted: the run's order
        self._episodes: list[Episode] = []  # one per place, in the same order
        self._open: dict[int, _Open] = {}  # by episode id
        self._last_id = 0  # the largest episode id read
        self._chart: dict[str, Any] | None = None

    def chart(self, conn: Connection, run_id: int, names: dict[int, str]) -> dict[str, Any]:
        """The returns chart (:func:`returns_chart`) as the store has it now; ``names``
        are the run's phase names by index."""
        if self._read(conn, run_id, names):
            self._chart = None
        if self._chart is None:
            self._chart = returns_chart(self._episodes)
        return self._chart

    def _read(self, conn: Connection, run_id: int, names: dict[int, str]) -> bool:
        """Read what changed since the last call; whether anything did."""
        first = self._last_id == 0
        _, new = _episodes_after(conn, run_id, self._last_id)
        ended = _ended(conn, list(self._open))
        for episode_id, place, done in new:
            self._open[episode_id] = _Open(place, names.get(place[0], str(place[0])))
            self._last_id = max(self._last_id, episode_id)
            if done:
                ended.add(episode_id)
        if first:  # every episode's actions: one statement, not one term an episode
            sums = _run_sums(conn, run_id)
        else:
            sums = _new_sums(conn, {e: entry.last_action for e, entry in self._open.items()})
        summed = set()
        for episode_id, agent, total, last in sums:
            entry = self._open.get(episode_id)
            if entry is None:  # stored after the episodes were read: summed once it is read
                continue
            entry.returns[agent] = entry.returns.get(agent, 0.0) + total
            entry.last_action = max(entry.last_action, last)
            summed.add(episode_id)
        self._place(new, summed, ended)
        return bool(new or summed or ended)

    def _place(self, new: list[tuple[int, Place, bool]], summed: set[int], ended: set[int]) -> None:
        """Put the new episodes in their places, and those summed or ended anew in theirs."""
        for episode_id, place, _ in new:  # in the run's order: each goes at (or near) the end
            position = bisect.bisect(self._places, place)
            self._places.insert(position, place)
            self._episodes.insert(position, self._open[episode_id].episode(still_open=episode_id not in ended))
        new_ids = {episode_id for episode_id, _, _ in new}
        for episode_id in (summed | ended) - new_ids:
            entry = self._open[episode_id]
            position = bisect.bisect_left(self._places, entry.place)
            self._episodes[position] = entry.episode(still_open=episode_id not in ended)
        for episode_id in ended:
            del self._open[episode_id]


# -- queries ------------------------------------------------------------------------------


def _episodes_after(conn: Connection, run_id: int, after: int) -> tuple[set[int], list[tuple[int, Place, bool]]]:
    """The run's phases (by index), and its episodes with an id above ``after`` in the
    run's order: id, place, and whether it has ended."""
    e = EpisodeRow
    query = (
        select(PhaseRow.index, e.id, e.index, e.worker, e.ended_at.is_not(None))
        .outerjoin(e, and_(e.phase_id == PhaseRow.id, e.id > after))
        .where(PhaseRow.run_id == run_id)
        .order_by(PhaseRow.index, e.index, e.worker)
    )
    phases, new = set(), []
    for phase, episode_id, index, worker, done in conn.execute(query):
        phases.add(phase)
        if episode_id is not None:  # (a phase with no new episode: one row, of NULLs)
            new.append((episode_id, (phase, index, worker), bool(done)))
    return phases, new


def _ended(conn: Connection, episode_ids: list[int]) -> set[int]:
    """Of the episodes ``episode_ids``, those that have ended."""
    found: set[int] = set()
    for chunk in chunks(episode_ids, IN_CHUNK):
        query = select(EpisodeRow.id).where(EpisodeRow.id.in_(chunk), EpisodeRow.ended_at.is_not(None))
        found.update(conn.execute(query).scalars())
    return found


def _since(
    model: type[EnvironmentStepRow] | type[AgentActionRow], after: Sequence[tuple[int, int]]
) -> ColumnElement[bool]:
    """Of ``model``'s rows, those of each episode in ``after`` with an id above the one
    given for it (an index of (episode, id) serves each term)."""
    return or_(*(and_(model.episode_id == episode_id, model.id > last) for episode_id, last in after))


def _new_steps(conn: Connection, after: dict[int, int]) -> Iterator[tuple[int, int, int]]:
    """Per episode in ``after``: how many steps with an id above the one given for it,
    and the largest id."""
    s = EnvironmentStepRow
    for chunk in chunks(list(after.items()), IN_CHUNK):
        query = select(s.episode_id, func.count(), func.max(s.id)).where(_since(s, chunk)).group_by(s.episode_id)
        yield from conn.execute(query).all()


def _new_sums(conn: Connection, after: dict[int, int]) -> Iterator[tuple[int, str, float, int]]:
    """As :func:`_run_sums`, for the actions of each episode in ``after`` with an id
    above the one given for it."""
    a = AgentActionRow
    for chunk in chunks(list(after.items()), IN_CHUNK):
        query = select(a.episode_id, a.agent, func.sum(a.objective), func.max(a.id)).where(_since(a, chunk))
        for episode_id, agent, total, last in conn.execute(query.group_by(a.episode_id, a.agent)):
            yield episode_id, agent, float(total or 0.0), last


def _run_sums(conn: Connection, run_id: int) -> Iterator[tuple[int, str, float, int]]:
    """Per episode and agent of the run: the sum of its objective, and its last action's id."""
    a = AgentActionRow
    query = (
        select(a.episode_id, a.agent, func.sum(a.objective), func.max(a.id))
        .join(EpisodeRow, a.episode_id == EpisodeRow.id)
        .join(PhaseRow, EpisodeRow.phase_id == PhaseRow.id)
        .where(PhaseRow.run_id == run_id)
        .group_by(a.episode_id, a.agent)
    )
    for episode_id, agent, total, last in conn.execute(query):
        yield episode_id, agent, float(total or 0.0), last


def _episodes_per_phase(conn: Connection, run_ids: list[int]) -> dict[int, Counted]:
    """Per run, each of its phases (one with no episode yet too) with its episodes."""
    e = EpisodeRow
    query = (
        select(PhaseRow.run_id, PhaseRow.index, func.count(e.id), func.max(e.id))
        .outerjoin(e, e.phase_id == PhaseRow.id)
        .where(PhaseRow.run_id.in_(run_ids))
        .group_by(PhaseRow.run_id, PhaseRow.index)
    )
    found: dict[int, Counted] = {}
    for run_id, phase, count, last in conn.execute(query):
        found.setdefault(run_id, {})[phase] = (count, last or 0)
    return found


def _open_episodes(conn: Connection, run_ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """Per run, its episodes not ended: id and phase index."""
    e = EpisodeRow
    query = (
        select(PhaseRow.run_id, e.id, PhaseRow.index)
        .join(PhaseRow, e.phase_id == PhaseRow.id)
        .where(PhaseRow.run_id.in_(run_ids), e.ended_at.is_(None))
    )
    found: dict[int, list[tuple[int, int]]] = {}
    for run_id, episode_id, phase in conn.execute(query):
        found.setdefault(run_id, []).append((episode_id, phase))
    return found


def _steps_per_phase(conn: Connection, run_id: int, up_to_episode: int) -> Counted:
    """The run's environment steps per phase, of its episodes up to id ``up_to_episode``."""
    s = EnvironmentStepRow
    query = (
        select(PhaseRow.index, func.count(), func.max(s.id))
        .select_from(s)
        .join(EpisodeRow, s.episode_id == EpisodeRow.id)
        .join(PhaseRow, EpisodeRow.phase_id == PhaseRow.id)
        .where(PhaseRow.run_id == run_id, EpisodeRow.id <= up_to_episode)
        .group_by(PhaseRow.index)
    )
    return {phase: (count, last) for phase, count, last in conn.execute(query)}


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
