"""What a run stored, as pandas DataFrames: the Python side of ``arl-run results``.

Each function opens the store (see :data:`arl.results.queries.Store`), asks it one
question and closes it again, so a notebook can call them while a run is writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from arl.results import queries as q
from arl.results.common import require
from arl.results.queries import PhaseKey, Record, Store

if TYPE_CHECKING:
    import pandas as pd

_TIMES = ("started_at", "ended_at", "at", "time")


def runs(
    store: Store = None,
    *,
    experiment: str | None = None,
    status: str | None = None,
    uid: str | None = None,
    last: int | None = None,
) -> pd.DataFrame:
    """One row per run, oldest first: ``id, uid, experiment_uid, status, seed, swept, host,
    arl_version, started_at, ended_at, duration_s, end_reason, error`` and the counts
    ``phases, episodes, steps, actions`` stored so far. ``swept`` is a dict of the values a
    ``--sweep`` made the run with (``{"seed": 1}``), None for a run no sweep made;
    :func:`compare` gives each its own column.

    Filters: ``experiment`` (its ``experiment_uid``), ``status`` (any case), ``uid`` (may
    hold ``*`` wildcards), ``last`` (the newest N of those). ``duration_s`` of a run not
    ended yet counts to now.
    """
    with q.reading(store) as reader:
        records = q.run_records(reader, experiment=experiment, status=status, uid=uid, last=last)
    return _frame(records, q.RUN_COLUMNS)


def phases(run: str | int, store: Store = None) -> pd.DataFrame:
    """One row per phase of ``run`` (a uid, its newest run; or a database id): ``phase``
    (its index), ``name, mode, started_at, ended_at, duration_s, end_reason, episodes, steps``."""
    with q.reading(store) as reader:
        records = q.phase_records(reader, q.find_run(reader, run)["id"])
    return _frame(records, q.PHASE_COLUMNS)


def events(run: str | int, store: Store = None) -> pd.DataFrame:
    """One row per event of ``run`` (saved brains, failures, stop requests, run conditions):
    ``at, kind, detail`` (a dict)."""
    with q.reading(store) as reader:
        records = q.event_records(reader, q.find_run(reader, run)["id"])
    return _frame(records, ("at", "kind", "detail"))


def metrics(
    run: str | int,
    store: Store = None,
    *,
    phase: PhaseKey = None,
    agent: str | None = None,
    name: str | None = None,
) -> pd.DataFrame:
    """What ``run``'s brains and muscles logged with ``log_metric``, one row a value (tidy):
    ``phase, phase_name, agent, worker, name, step, value, time``. ``worker`` is the
    muscle's worker, missing (``<NA>``) for the brain's values. Ordered by phase, agent,
    worker, name and step; ``phase`` (an index or a name), ``agent`` and ``name`` keep
    only those rows: ``metrics(run, name="loss").plot(x="step", y="value")``."""
    with q.reading(store) as reader:
        records = q.metric_records(reader, q.find_run(reader, run)["id"], phase=phase, agent=agent, name=name)
    frame = _frame(records, q.METRIC_COLUMNS)
    frame["worker"] = frame["worker"].astype("Int64")  # integers, with the brain's missing
    return frame


def episodes(run: str | int, store: Store = None, *, rewards: bool = True) -> pd.DataFrame:
    """One row per episode of ``run``, ordered by phase, episode and worker.

    Columns: ``episode_id, phase, phase_name, mode, worker, episode, started_at, ended_at,
    steps, end_reason``; then ``return.<agent>`` for each agent, the sum of its
    ``objective`` over its actions in the episode (NaN where it took no action); with
    ``rewards``, ``rewards.<reward id>`` for each environment reward, its sum over the
    episode's steps (this reads every step of the run).
    """
    with q.reading(store) as reader:
        table = q.episode_table(reader, q.find_run(reader, run)["id"], rewards=rewards)
    return _frame(table.records, table.columns)


RETURN_COLUMNS = ("phase", "phase_name", "mode", "worker", "episode", "agent", "return")


def returns(run: str | int, store: Store = None) -> pd.DataFrame:
    """The return of each agent in each episode of ``run``, one row each (tidy):
    ``phase, phase_name, mode, worker, episode, agent, return``."""
    with q.reading(store) as reader:
        run_id = q.find_run(reader, run)["id"]
        records = q.episode_records(reader, run_id)
        by_episode = q.agent_returns(reader, run_id)
    rows = [
        {**{column: record[column] for column in RETURN_COLUMNS[:5]}, "agent": agent, "return": value}
        for record in records
        for agent, value in sorted(by_episode.get(record["episode_id"], {}).items())
    ]
    return _frame(rows, RETURN_COLUMNS)


def compare(runs: Sequence[str | int], store: Store = None) -> pd.DataFrame:
    """Runs side by side, one row each: ``run, id, status``, then a column per swept key
    (named in full, ``schedule.train.phase_config.episodes``) holding the value the run
    was made with, then per phase its episodes (``<phase>/episodes``) and each agent's mean
    return (``<phase>/<agent>``). A run without such a key, phase or agent has NaN there::

        results.compare(results.runs(experiment="dummy")["id"])  # every run of an experiment
    """
    with q.reading(store) as reader:
        records, columns = q.compare_records(reader, list(runs))
    return _frame(records, columns)


def steps(run: str | int, store: Store = None, *, phase: PhaseKey = None) -> pd.DataFrame:
    """The environment steps of ``run`` (of one phase, by index or name), one row each:
    ``episode_id, phase, worker, episode, step, env_uid, terminated, truncated, sim_time``
    (the run's scaled clock at the step, seconds since 1970; NaN where none was stored),
    then one column per sensor (``sensors.env.s0``) and reward (``rewards.env.reward``),
    and one per key of what environments said of their steps (gymnasium's ``info``:
    ``info.episode``; missing where a step said nothing of it). A value that is a list (or,
    in ``info``, a mapping) stays one. For runs too big for memory: ``export``."""
    frame = _flat_frame(run, store, q.STEPS, phase)
    frame["sim_time"] = frame["sim_time"].astype("float64")  # NaN where none was stored, never objects
    return frame


def actions(run: str | int, store: Store = None, *, phase: PhaseKey = None) -> pd.DataFrame:
    """The agent actions of ``run`` (of one phase), one row each: ``episode_id, phase,
    worker, episode, step, agent, objective, policy_version`` (of the policy that chose
    the setpoints, where the muscle gave one), then one column per input
    (``inputs.env.s0``), setpoint (``setpoints.env.a0``) and reward (``rewards.env.reward``);
    NaN where an agent has no such id."""
    frame = _flat_frame(run, store, q.ACTIONS, phase)
    frame["policy_version"] = frame["policy_version"].astype("Int64")  # integers, <NA> where none was given
    return frame


def _flat_frame(run: str | int, store: Store, table: q.FlatTable, phase: PhaseKey) -> pd.DataFrame:
    """One frame of ``run``'s rows of ``table``, built a chunk at a time: a frame holds a
    run's steps in a fraction of the memory their records take."""
    pandas: Any = require("pandas", "arl.results' DataFrames")
    with q.reading(store) as reader:
        chunks = q.flat_chunks(reader, q.find_run(reader, run)["id"], table, phase=phase)
        frames = [pandas.DataFrame(chunk).drop(columns="_id") for chunk in chunks]
    if not frames:
        return _frame([], table.columns)
    whole = pandas.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    # A chunk where an id held only nulls gave it object dtype: numbers again after concat.
    return whole[q.column_order(table.columns, whole.columns)].infer_objects()


def _frame(records: list[Record], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with exactly ``columns``, empty or not; times as UTC datetimes."""
    pandas: Any = require("pandas", "arl.results' DataFrames")
    frame = pandas.DataFrame(records, columns=list(columns))
    for column in _TIMES:
        if column in frame.columns:
            frame[column] = pandas.to_datetime(frame[column], utc=True)
    return frame
