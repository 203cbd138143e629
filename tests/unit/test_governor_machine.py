"""The RunGovernor's pure core, transition by transition: events in, commands out."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from arl.config.spec import RestartSpec
from arl.governor import machine as m
from arl.governor.machine import Outcome, PhaseStep, RunMachine, RunState


def _spec(*phases: tuple[int, bool], restart: RestartSpec | None = None) -> Any:
    """A stand-in RunSpec: the machine only reads phases' names, modes, workers, episodes
    and train flags, and the restart policy."""
    return SimpleNamespace(
        phases=[
            SimpleNamespace(
                name=f"p{i}", mode="train" if train else "test", workers=w, train=train, episodes=3, envs_per_worker=1
            )
            for i, (w, train) in enumerate(phases)
        ],
        restart=restart,
    )


def _running(*phases: tuple[int, bool], restart: RestartSpec | None = None) -> RunMachine:
    machine = RunMachine(_spec(*phases, restart=restart))
    machine.handle(m.Begin())
    machine.handle(m.ChildrenStarted())
    return machine


def test_begin_records_the_run_and_starts_children() -> None:
    machine = RunMachine(_spec((1, True)))
    assert machine.handle(m.Begin()) == [m.RecordRunStarted(), m.StartChildren()]
    assert machine.state is RunState.STARTING


def test_begin_twice_is_a_bug() -> None:
    machine = RunMachine(_spec((1, True)))
    machine.handle(m.Begin())
    with pytest.raises(RuntimeError, match="Begin arrived in state STARTING"):
        machine.handle(m.Begin())


def test_children_started_enters_the_first_phase() -> None:
    machine = RunMachine(_spec((1, True)))
    machine.handle(m.Begin())
    assert machine.handle(m.ChildrenStarted()) == [m.RecordPhaseStarted(0), m.SetupPhase(0)]
    assert (machine.state, machine.phase, machine.phase_step) == (RunState.RUNNING, 0, PhaseStep.SETTING_UP)


def test_a_set_up_phase_runs_its_workers() -> None:
    machine = _running((2, True))
    assert machine.handle(m.PhaseSetUp(0)) == [m.RunWorkers(0)]
    assert machine.phase_step is PhaseStep.STEPPING


def test_a_train_phase_saves_brains_once_every_worker_is_done() -> None:
    machine = _running((2, True), (1, False))
    machine.handle(m.PhaseSetUp(0))
    assert machine.handle(m.WorkerDone(0, 0, 1, 10, "episodes")) == []
    assert machine.handle(m.WorkerDone(0, 0, 1, 10, "episodes")) == []  # a duplicate counts once
    assert machine.handle(m.WorkerDone(0, 1, 1, 10, "episodes", returns={"a": [1.5]})) == [m.SaveBrains(0)]
    machine.handle(m.BrainsSaved(0))
    [phase] = machine.history
    assert phase.steps == 20
    assert phase.episodes == 2
    assert phase.returns == {"a": [1.5]}


def test_saved_brains_lead_to_the_next_phase() -> None:
    machine = _running((1, True), (1, False))
    machine.handle(m.PhaseSetUp(0))
    machine.handle(m.WorkerDone(0, 0, 1, 10, "episodes"))
    assert machine.handle(m.BrainsSaved(0)) == [m.RecordPhaseEnded(0, "completed"), m.CheckRun(0)]
    assert machine.phase_step is PhaseStep.CHECKING
    assert machine.handle(m.RunChecked(0, None)) == [m.RecordPhaseStarted(1), m.SetupPhase(1)]
    assert machine.phase == 1


def test_the_last_test_phase_ends_the_run_finished() -> None:
    machine = _running((1, False))
    machine.handle(m.PhaseSetUp(0))
    assert machine.handle(m.WorkerDone(0, 0, 3, 30, "episodes")) == [
        m.RecordPhaseEnded(0, "completed"),
        m.CheckRun(0),
    ]
    assert machine.handle(m.RunChecked(0, None)) == [m.StopChildren()]
    assert machine.state is RunState.STOPPING
    assert machine.handle(m.ChildrenStopped()) == [m.Finish(Outcome.FINISHED, None, "completed")]
    assert machine.state is RunState.FINISHED
    assert [h.name for h in machine.history] == ["p0"]


def test_a_failure_while_stepping_stops_everything_and_fails() -> None:
    machine = _running((1, True))
    machine.handle(m.PhaseSetUp(0))
    assert machine.handle(m.Failed("agent.x: ValueError: boom")) == [
        m.RecordEvent("failed", {"error": "agent.x: ValueError: boom"}),
        m.RecordPhaseEnded(0, "failed"),
        m.StopChildren(),
    ]
    # A second error is stored too, but the first stays the run's.
    assert machine.handle(m.Failed("a second error")) == [m.RecordEvent("failed", {"error": "a second error"})]
    assert machine.handle(m.WorkerDone(0, 0, 1, 3, "episodes")) == []  # late replies are ignored
    assert machine.handle(m.ChildrenStopped()) == [m.Finish(Outcome.FAILED, "agent.x: ValueError: boom", "failed")]
    assert machine.state is RunState.FAILED


def test_a_failure_while_starting_stops_without_a_phase_record() -> None:
    machine = RunMachine(_spec((1, True)))
    machine.handle(m.Begin())
    assert machine.handle(m.Failed("arl[agent:a] exited with code 1")) == [
        m.RecordEvent("failed", {"error": "arl[agent:a] exited with code 1"}),
        m.StopChildren(),
    ]
    assert machine.handle(m.ChildrenStarted()) == []


def test_a_stop_while_stepping_interrupts_workers_and_waits_for_them() -> None:
    machine = _running((2, True), (1, False))
    machine.handle(m.PhaseSetUp(0))
    assert machine.handle(m.StopRequested("interrupted")) == [
        m.RecordEvent("stop_requested", {"reason": "interrupted"}),
        m.InterruptWorkers(),
    ]
    assert machine.handle(m.StopRequested("interrupted")) == [
        m.RecordEvent("stop_requested", {"reason": "interrupted"})
    ]  # workers asked once
    assert machine.handle(m.WorkerDone(0, 0, 1, 4, "interrupted")) == []
    assert machine.handle(m.WorkerDone(0, 1, 1, 5, "interrupted")) == [
        m.RecordPhaseEnded(0, "interrupted"),
        m.StopChildren(),
    ]
    assert machine.handle(m.ChildrenStopped()) == [m.Finish(Outcome.INTERRUPTED, None, "interrupted")]
    assert machine.state is RunState.INTERRUPTED
    assert machine.history[-1].steps == 9
    assert machine.history[-1].reason == "interrupted"


def test_a_stop_while_setting_up_stops_at_once() -> None:
    machine = _running((1, True))
    assert machine.handle(m.StopRequested("interrupted")) == [
        m.RecordEvent("stop_requested", {"reason": "interrupted"}),
        m.RecordPhaseEnded(0, "interrupted"),
        m.StopChildren(),
    ]


def test_a_stop_while_starting_stops_children() -> None:
    machine = RunMachine(_spec((1, True)))
    machine.handle(m.Begin())
    assert machine.handle(m.StopRequested("interrupted")) == [
        m.RecordEvent("stop_requested", {"reason": "interrupted"}),
        m.StopChildren(),
    ]
    assert machine.handle(m.ChildrenStopped()) == [m.Finish(Outcome.INTERRUPTED, None, "interrupted")]


def test_a_stop_before_begin_finishes_without_records() -> None:
    machine = RunMachine(_spec((1, True)))
    assert machine.handle(m.StopRequested("interrupted")) == [m.Finish(Outcome.INTERRUPTED, None, "interrupted")]


def test_a_failure_during_an_interrupt_makes_the_run_failed() -> None:
    machine = _running((1, True))
    machine.handle(m.PhaseSetUp(0))
    machine.handle(m.StopRequested("interrupted"))
    assert machine.handle(m.Failed("env crashed")) == [
        m.RecordEvent("failed", {"error": "env crashed"}),
        m.RecordPhaseEnded(0, "failed"),
        m.StopChildren(),
    ]
    assert machine.handle(m.ChildrenStopped()) == [m.Finish(Outcome.FAILED, "env crashed", "failed")]


def test_events_of_another_phase_are_ignored() -> None:
    machine = _running((1, True), (1, True))
    assert machine.handle(m.PhaseSetUp(1)) == []
    assert machine.handle(m.BrainsSaved(0)) == []
    assert machine.phase_step is PhaseStep.SETTING_UP


def test_a_run_condition_after_a_phase_skips_the_phases_after_it() -> None:
    machine = _running((1, False), (1, False))
    machine.handle(m.PhaseSetUp(0))
    machine.handle(m.WorkerDone(0, 0, 3, 30, "episodes"))
    assert machine.handle(m.RunChecked(0, "reward_threshold")) == [m.StopChildren()]
    assert machine.handle(m.ChildrenStopped()) == [
        m.RecordEvent("run_condition", {"phase": "p0", "reason": "reward_threshold"}),
        m.Finish(Outcome.FINISHED, None, "reward_threshold"),
    ]
    assert [h.name for h in machine.history] == ["p0"]


def test_a_run_condition_fired_on_a_worker_ends_the_run_without_asking_again() -> None:
    machine = _running((2, False), (1, False))
    machine.handle(m.PhaseSetUp(0))
    machine.handle(m.WorkerDone(0, 0, 2, 20, "wall_clock", ends_run=True))
    assert machine.handle(m.WorkerDone(0, 1, 3, 30, "episodes")) == [
        m.RecordPhaseEnded(0, "wall_clock"),
        m.StopChildren(),
    ]
    assert machine.handle(m.RunChecked(0, None)) == []
    assert (machine.end_reason, machine.ended_by_worker) == ("wall_clock", 0)
    assert machine.handle(m.ChildrenStopped()) == [
        m.RecordEvent("run_condition", {"phase": "p0", "reason": "wall_clock", "worker": 0}),
        m.Finish(Outcome.FINISHED, None, "wall_clock"),
    ]


def test_the_phase_reason_names_every_condition_that_fired_on_a_worker() -> None:
    machine = _running((3, False), (1, False))
    machine.handle(m.PhaseSetUp(0))
    machine.handle(m.WorkerDone(0, 0, 2, 20, "wall_clock"))
    machine.handle(m.WorkerDone(0, 1, 3, 30, "episodes"))
    assert machine.handle(m.WorkerDone(0, 2, 1, 5, "reward_threshold")) == [
        m.RecordPhaseEnded(0, "reward_threshold,wall_clock"),
        m.CheckRun(0),
    ]
    assert machine.handle(m.RunChecked(0, None)) == [m.RecordPhaseStarted(1), m.SetupPhase(1)]


def test_a_stop_while_checking_records_no_second_phase_end() -> None:
    machine = _running((1, False), (1, False))
    machine.handle(m.PhaseSetUp(0))
    machine.handle(m.WorkerDone(0, 0, 1, 10, "episodes"))
    assert machine.handle(m.StopRequested("interrupted")) == [
        m.RecordEvent("stop_requested", {"reason": "interrupted"}),
        m.StopChildren(),
    ]
    assert machine.handle(m.RunChecked(0, None)) == []
    assert machine.handle(m.ChildrenStopped()) == [m.Finish(Outcome.INTERRUPTED, None, "interrupted")]


def test_a_dead_child_fails_a_starting_or_running_run_and_is_reported_by_the_shell() -> None:
    machine = _running((1, True))
    assert machine.handle(m.ChildExited("agent", "a+b", -9, False)) == [m.ReportDeath("agent:a+b", -9)]
    machine.handle(m.Failed("arl[agent:a+b] was killed"))
    assert machine.handle(m.ChildExited("controller", "0", -15, True)) == []  # stopping: no news


def test_a_controller_that_was_asked_to_stop_and_exits_counts_as_its_worker_done() -> None:
    machine = _running((2, False), (1, False))
    machine.handle(m.PhaseSetUp(0))
    machine.handle(m.StopRequested("interrupted"))
    assert machine.handle(m.ChildExited("controller", "1", 0, True)) == []
    assert machine.handle(m.ChildExited("controller", "0", 0, True)) == [
        m.RecordPhaseEnded(0, "interrupted"),
        m.StopChildren(),
    ]


def test_a_start_record_the_store_dropped_fails_the_run_unless_the_store_failed() -> None:
    machine = RunMachine(_spec((1, True)))
    machine.handle(m.Begin())
    assert machine.handle(m.RunRecorded(7)) == []
    commands = machine.handle(m.RunRecorded(None))
    assert isinstance(commands[0], m.RecordEvent)
    assert "dropped the run's start record" in commands[0].detail["error"]
    quiet = RunMachine(_spec((1, True)))
    quiet.handle(m.Begin())
    assert quiet.handle(m.RunRecorded(None, store_failed=True)) == []


def test_after_the_store_failed_controllers_are_not_waited_for() -> None:
    machine = _running((1, True))
    machine.handle(m.PhaseSetUp(0))
    commands = machine.handle(m.Failed("the store failed: disk I/O error", store=True))
    assert commands[-1] == m.StopChildren(controller_grace=False)


# -- restarts (the file's ``restart: {max, within}``) ----------------------------------------


def _stepping(workers: int = 2, *, limit: int = 2, within: float = 60.0) -> RunMachine:
    machine = _running((workers, True), restart=RestartSpec(limit, within))
    machine.handle(m.PhaseSetUp(0))
    return machine


def _died(label: str, at: float, code: int = -9) -> m.ChildExited:
    role, _, name = label.partition(":")
    return m.ChildExited(role, name, code, False, at)


def test_a_dead_controller_is_restarted_and_its_worker_runs_the_episodes_it_owes() -> None:
    machine = _stepping()
    detail = {"phase": "p0", "worker": 1, "process": "controller:1", "code": -9, "signal": "SIGKILL", "restarts": 1}
    assert machine.handle(_died("controller:1", 5.0)) == [
        m.RecordEvent("worker-died", detail),
        m.RestartWorker(0, 1, "controller:1", -9, 1),
    ]
    # While it restarts, the replaced process's exit again and its late reply are old news.
    assert machine.handle(_died("controller:1", 5.1)) == []
    assert machine.handle(m.WorkerDone(0, 1, 1, 10, "episodes")) == []
    # The store held one ended episode and episode 1 cut (14 steps in all): two owed,
    # numbered from 2, its counts going on from there.
    assert machine.handle(m.WorkerRestarted(0, 1, first_episode=(2,), episodes=(1,), steps=(14,))) == [
        m.ResumeWorker(0, 1, (2,), (2,), (1,), (14,))
    ]
    assert machine.handle(m.WorkerDone(0, 0, 3, 30, "episodes")) == []
    assert machine.handle(m.WorkerDone(0, 1, 3, 34, "episodes")) == [m.SaveBrains(0)]
    machine.handle(m.BrainsSaved(0))
    machine.handle(m.RunChecked(0, None))
    assert machine.handle(m.ChildrenStopped()) == [m.Finish(Outcome.FINISHED, None, "completed")]
    [phase] = machine.history
    assert (phase.episodes, phase.steps) == (6, 64)


def test_a_dead_environment_process_names_its_worker_and_one_that_died_after_its_episodes_is_done() -> None:
    machine = _stepping()
    [event, restart] = machine.handle(_died("environment:grid.two.0", 1.0, code=1))
    assert isinstance(event, m.RecordEvent)
    assert (event.detail["worker"], event.detail["signal"]) == (0, None)
    assert restart == m.RestartWorker(0, 0, "environment:grid.two.0", 1, 1)
    # Every episode was in the store: nothing owed, the worker is done.
    assert machine.handle(m.WorkerRestarted(0, 0, first_episode=(3,), episodes=(3,), steps=(30,))) == []
    assert machine.handle(m.WorkerDone(0, 1, 3, 30, "episodes")) == [m.SaveBrains(0)]
    assert machine.handle(m.BrainsSaved(0)) == [m.RecordPhaseEnded(0, "completed"), m.CheckRun(0)]
    assert machine.history[0].episodes == 6


def test_restarts_beyond_the_budget_within_the_window_fail_the_run() -> None:
    machine = _stepping(limit=2, within=60.0)
    assert isinstance(machine.handle(_died("controller:0", 0.0))[1], m.RestartWorker)
    machine.handle(m.WorkerRestarted(0, 0, (0,), (0,), (0,)))
    assert isinstance(machine.handle(_died("controller:1", 10.0))[1], m.RestartWorker)
    machine.handle(m.WorkerRestarted(0, 1, (0,), (0,), (0,)))
    [death] = machine.handle(_died("controller:0", 59.0))
    assert death == m.ReportDeath("controller:0", -9, "not restarted: the file's restart allows 2 restarts within 60 s")
    assert machine.handle(m.Failed("arl[controller:0] was killed"))[-1] == m.StopChildren()
    assert machine.outcome is Outcome.FAILED


def test_the_restart_window_slides() -> None:
    machine = _stepping(limit=2, within=60.0)
    for worker, at in ((0, 0.0), (1, 10.0), (0, 60.5)):  # the first has left the window at 60.5
        commands = machine.handle(_died(f"controller:{worker}", at))
        assert isinstance(commands[-1], m.RestartWorker), (worker, at, commands)
        machine.handle(m.WorkerRestarted(0, worker, (0,), (0,), (0,)))
    assert commands[-1].restarts == 3
    assert isinstance(machine.handle(_died("controller:1", 69.0))[0], m.ReportDeath)  # 10.0 and 60.5 are in


def test_deaths_a_restart_does_not_cover_fail_the_run_as_without_a_policy() -> None:
    agent = _stepping()
    assert agent.handle(_died("agent:a+b", 1.0)) == [m.ReportDeath("agent:a+b", -9)]
    setting_up = _running((1, True), restart=RestartSpec(3, 60))  # not stepping yet
    assert setting_up.handle(_died("controller:0", 1.0)) == [m.ReportDeath("controller:0", -9)]
    done = _stepping()
    done.handle(m.WorkerDone(0, 0, 3, 30, "episodes"))  # its worker's phase is over
    assert done.handle(_died("controller:0", 1.0)) == [m.ReportDeath("controller:0", -9)]
    interrupted = _stepping()
    interrupted.handle(m.StopRequested("interrupted"))
    assert interrupted.handle(_died("controller:0", 1.0)) == [m.ReportDeath("controller:0", -9)]
    without = _running((1, True))
    without.handle(m.PhaseSetUp(0))
    assert without.handle(_died("controller:0", 1.0)) == [m.ReportDeath("controller:0", -9)]


def test_a_stop_during_a_restart_spares_the_new_processes_and_counts_the_worker_interrupted() -> None:
    """A stop sent to a worker's new controller would end it before it is set up: the
    workers being restarted are left out of the interrupt, and each counts as
    interrupted when its restart answers."""
    machine = _stepping(workers=3)
    machine.handle(_died("controller:2", 1.0))
    machine.handle(_died("environment:env.0", 1.5))
    assert machine.handle(m.StopRequested("interrupted")) == [
        m.RecordEvent("stop_requested", {"reason": "interrupted"}),
        m.InterruptWorkers(restarting=(0, 2)),
    ]
    assert machine.handle(m.WorkerDone(0, 1, 1, 10, "interrupted")) == []
    assert machine.handle(m.WorkerRestarted(0, 2, (1,), (0,), (4,))) == []
    assert machine.handle(m.WorkerRestarted(0, 0, (2,), (1,), (13,))) == [
        m.RecordPhaseEnded(0, "interrupted"),
        m.StopChildren(),
    ]
    assert machine.handle(m.ChildrenStopped()) == [m.Finish(Outcome.INTERRUPTED, None, "interrupted")]
    [phase] = machine.history
    assert (phase.episodes, phase.steps) == (2, 27)


def test_a_controller_stepping_copies_resumes_each_copy_where_the_store_has_it() -> None:
    """envs_per_worker: each copy is a worker of its own in the store, so each resumes
    from its own episodes; a copy that owes none runs none."""
    machine = _stepping()
    machine.spec.phases[0].envs_per_worker = 2
    assert isinstance(machine.handle(_died("controller:1", 1.0))[-1], m.RestartWorker)
    resumed = machine.handle(m.WorkerRestarted(0, 1, first_episode=(2, 3), episodes=(1, 3), steps=(14, 30)))
    assert resumed == [m.ResumeWorker(0, 1, (2, 3), (2, 0), (1, 3), (14, 30))]
    machine.handle(m.WorkerDone(0, 0, 6, 60, "episodes"))
    assert machine.handle(m.WorkerDone(0, 1, 6, 64, "episodes")) == [m.SaveBrains(0)]


def test_another_process_of_a_worker_dying_while_it_is_restarted_fails_the_run() -> None:
    """The restart replaces only the dead process (and, for an environment process, the
    controller): a second environment process of the worker dying meanwhile would leave
    the restarted worker with a dead peer."""
    machine = _stepping()
    assert isinstance(machine.handle(_died("environment:a.0", 5.0))[-1], m.RestartWorker)
    assert machine.handle(_died("controller:0", 5.1)) == []  # the restart stops it: replaced
    [death] = machine.handle(_died("environment:b.0", 5.2))
    assert death == m.ReportDeath("environment:b.0", -9, "while worker 0 was being restarted")


def test_a_resumed_run_enters_the_snapshots_phase_without_recording_it_again() -> None:
    summary = m.PhaseSummary("p0", "train", "completed", 3, 30, {})
    done = {1: m.WorkerDone(1, 1, 3, 30, "episodes")}
    machine = RunMachine(_spec((1, True), (3, True)), resume=m.ResumePoint(1, (summary,), done))
    machine.handle(m.Begin())
    assert machine.handle(m.ChildrenStarted()) == [m.SetupPhase(1)]  # (its row is the store's)
    assert machine.history == [summary]
    assert machine.handle(m.PhaseSetUp(1)) == [m.RunWorkers(1)]
    assert set(machine.done_workers()) == {1}  # the shell runs workers 0 and 2 only
    machine.handle(m.WorkerDone(1, 0, 3, 30, "episodes"))
    assert machine.handle(m.WorkerDone(1, 2, 3, 30, "episodes")) == [m.SaveBrains(1)]


def test_a_resumed_phase_every_worker_had_ended_goes_on_to_its_end() -> None:
    done = {w: m.WorkerDone(0, w, 3, 30, "episodes") for w in (0, 1)}
    machine = RunMachine(_spec((2, True)), resume=m.ResumePoint(0, (), done))
    machine.handle(m.Begin())
    machine.handle(m.ChildrenStarted())
    assert machine.handle(m.PhaseSetUp(0)) == [m.RunWorkers(0), m.SaveBrains(0)]
