"""Keepers remove exactly what they should; save conditions fire when they should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arl.errors import ArlError
from arl.state.conditions import AtPhaseEnd, EveryEpisodes, EverySeconds, EverySteps, SaveView, any_of, from_save
from arl.state.keepers import (
    EveryHoursKeeper,
    LatestKeeper,
    MaxTotalKeeper,
    combine,
    folder_bytes,
    from_keep,
    restore_keeper,
)
from arl.state.snapshot import DIGEST, MANIFEST, begin, snapshots

HOUR = 3600.0


def _paths(n: int) -> list[Path]:
    return [Path(f"/s/{i:02d}") for i in range(n)]


def _feed(keeper, paths: list[Path]) -> list[list[Path]]:  # type: ignore[no-untyped-def]
    return [keeper.append(p) for p in paths]


def test_latest_keeps_the_n_newest() -> None:
    p = _paths(5)
    assert _feed(LatestKeeper(2), p) == [[], [], [p[0]], [p[1]], [p[2]]]
    assert _feed(LatestKeeper(1), p[:2]) == [[], [p[0]]]
    with pytest.raises(ArlError, match="at least 1"):
        LatestKeeper(0)


def test_every_hours_keeps_the_first_of_each_window_and_the_newest() -> None:
    p = _paths(6)
    times = dict(zip(p, [0.0, 0.4 * HOUR, 0.8 * HOUR, 1.1 * HOUR, 1.5 * HOUR, 3.2 * HOUR], strict=True))
    keeper = EveryHoursKeeper(1, time_of=times.__getitem__)
    # p1 is the newest when it comes, then p2 replaces it; p3 opens hour 1, p4 is only newest
    assert _feed(keeper, p) == [[], [], [p[1]], [p[2]], [], [p[4]]]
    assert keeper.held == [p[0], p[3], p[5]]


def test_max_total_removes_the_oldest_until_under_the_cap_never_the_newest() -> None:
    p = _paths(4)
    mb = 1024 * 1024
    sizes = dict(zip(p, [2 * mb, 2 * mb, 3 * mb, 9 * mb], strict=True))
    keeper = MaxTotalKeeper(5, size_of=sizes.__getitem__)
    assert _feed(keeper, p) == [[], [], [p[0]], [p[1], p[2]]]  # p3 alone is over the cap: kept
    assert keeper.held == [p[3]]


def test_combined_rules_keep_what_any_keeps_then_the_cap_trims_the_oldest() -> None:
    p = _paths(6)
    times = dict(zip(p, [0.0, 0.5 * HOUR, 1.0 * HOUR, 1.5 * HOUR, 2.0 * HOUR, 2.5 * HOUR], strict=True))
    keeper = combine(LatestKeeper(2), EveryHoursKeeper(1, time_of=times.__getitem__))
    assert _feed(keeper, p) == [[], [], [], [p[1]], [], [p[3]]]
    assert keeper.held == [p[0], p[2], p[4], p[5]]

    mb = 1024 * 1024
    capped = combine(
        LatestKeeper(2), EveryHoursKeeper(1, time_of=times.__getitem__), MaxTotalKeeper(3, size_of=lambda _: mb)
    )
    removed = _feed(capped, p)
    # at p4 the rules keep p0, p2, p3, p4 (4 MiB): the cap removes the oldest, p0
    assert removed == [[], [], [], [p[1]], [p[0]], [p[3]]]
    assert capped.held == [p[2], p[4], p[5]]


def test_from_keep_reads_the_file_table(tmp_path: Path) -> None:
    saved = []
    keeper = from_keep({"latest": 2})
    for name in ["a", "b", "c"]:
        staging = begin(tmp_path, "r1", name)
        (staging.path / "f").write_text("x")
        saved.append(staging.commit({}))
    assert _feed(keeper, saved) == [[], [], [saved[0]]]
    for minute, path in enumerate(saved):  # saved within one clock hour, whenever the test runs
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["saved_at"] = f"2026-01-01T10:{minute:02d}:00+00:00"
        (path / "manifest.json").write_text(json.dumps(manifest))
    hours = from_keep({"every_hours": 1})  # reads each manifest's saved_at
    assert _feed(hours, saved) == [[], [], [saved[1]]]
    with pytest.raises(ArlError, match="more than 0"):
        from_keep({"every_hours": True})
    with pytest.raises(ArlError, match="more than 0"):
        from_keep({"max_total_mb": "abc"})
    assert _feed(from_keep({}), saved) == [[], [], []]
    with pytest.raises(ArlError, match="unknown keep"):
        from_keep({"newest": 1})
    with pytest.raises(ArlError, match="whole number"):
        from_keep({"latest": 1.5})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _view(steps: int = 0, episodes: int = 0, phase: str = "train", ended: bool = False) -> SaveView:
    return SaveView(steps, episodes, phase, ended)


def test_every_seconds_counts_from_the_last_save_on_the_injected_clock() -> None:
    clock = Clock()
    condition = EverySeconds(300, clock)
    clock.now += 299.9
    assert not condition.due(_view())
    clock.now += 0.1
    assert condition.due(_view())
    assert condition.due(_view())
    condition.saved(_view())
    assert not condition.due(_view())
    clock.now += 300
    assert condition.due(_view())


def test_every_steps_and_episodes_count_since_the_last_save() -> None:
    steps, episodes = EverySteps(10), EveryEpisodes(2)
    assert not steps.due(_view(steps=9))
    assert steps.due(_view(steps=10))
    steps.saved(_view(steps=12))
    assert not steps.due(_view(steps=21))
    assert steps.due(_view(steps=22))
    assert not episodes.due(_view(episodes=1))
    assert episodes.due(_view(episodes=2))
    with pytest.raises(ArlError, match="at least 1"):
        EverySteps(0)


def test_at_phase_end_fires_once_per_ended_phase() -> None:
    condition = AtPhaseEnd()
    assert not condition.due(_view(phase="train"))
    assert condition.due(_view(phase="train", ended=True))
    condition.saved(_view(phase="train", ended=True))
    assert not condition.due(_view(phase="train", ended=True))
    assert condition.due(_view(phase="test", ended=True))


def test_any_of_fires_for_any_and_a_save_resets_all() -> None:
    clock = Clock()
    condition = any_of(EverySeconds(60, clock), EverySteps(100))
    assert not condition.due(_view(steps=50))
    clock.now += 60
    assert condition.due(_view(steps=50))
    condition.saved(_view(steps=50))  # a save for the clock's sake restarts the step count too
    assert not condition.due(_view(steps=149))
    assert condition.due(_view(steps=150))
    from_file = from_save({"every_steps": 5, "at_phase_end": True, "on_signal": "SIGUSR1"}, clock)
    assert from_file.due(_view(steps=5))
    assert from_file.due(_view(ended=True))
    assert not from_save({}, clock).due(_view(steps=10**9, ended=True))
    with pytest.raises(ArlError, match="unknown save"):
        from_save({"every_minute": 1})
    with pytest.raises(ArlError, match="positive"):
        EverySeconds(0, clock)


def test_a_size_cap_with_every_hours_alone_counts_the_newest_too() -> None:
    """The newest is always kept, so the cap must count it: three 0.6 MB snapshots in one
    hour under a 1 MB cap leave the newest alone."""
    p = [Path(f"/s/{i}") for i in range(3)]
    times = {path: 10.0 + i for i, path in enumerate(p)}
    keeper = combine(
        EveryHoursKeeper(1, time_of=times.__getitem__), MaxTotalKeeper(1, size_of=lambda _: int(0.6 * 2**20))
    )
    removed = _feed(keeper, p)
    assert keeper.held == [p[2]]
    assert sorted(path for paths in removed for path in paths) == [p[0], p[1]]


def _snapshots(state_dir: Path, names: list[str]) -> list[Path]:
    made = []
    for name in names:
        staging = begin(state_dir, "r1", name)
        (staging.path / "f").write_text("x" * 100)
        made.append(staging.commit({}))
    return made


def test_a_keeper_made_anew_on_resume_learns_the_snapshots_made_before(tmp_path: Path) -> None:
    before = _snapshots(tmp_path, ["a", "b", "c"])
    keeper = LatestKeeper(3)  # the resumed run's, knowing nothing yet
    assert restore_keeper(keeper, [m.path for m in snapshots(tmp_path, "r1")]) == []
    (after,) = _snapshots(tmp_path, ["d"])
    assert keeper.append(after) == [before[0]]  # the oldest made before the resume goes
    tighter = LatestKeeper(2)  # resumed with keep: {latest: 2}: the extra old ones go at once
    assert restore_keeper(tighter, [m.path for m in snapshots(tmp_path, "r1")]) == [before[0], before[1]]
    assert tighter.held == [before[2], after]


def test_the_size_cap_counts_the_manifest_and_its_digest(tmp_path: Path) -> None:
    (path,) = _snapshots(tmp_path, ["a"])
    files = [path / "f", path / MANIFEST, path / DIGEST]
    assert folder_bytes(path) == sum(f.stat().st_size for f in files)
    assert (path / DIGEST).stat().st_size > 0
    cap = MaxTotalKeeper(folder_bytes(path) * 1.5 / 2**20)  # one snapshot fits, two do not
    assert _feed(cap, _snapshots(tmp_path, ["b", "c"])) == [[], [tmp_path.resolve() / "r1" / "b"]]
