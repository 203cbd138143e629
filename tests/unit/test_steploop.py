"""The step loop without processes: whole phases over local links with the real dummy
components, and stops and failures scripted answer by answer."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import zmq

from arl import codec
from arl.conductors.agent import AgentHost
from arl.conductors.environment import EnvironmentConductor
from arl.conductors.links import Driver, Environments, LearnerLink, LocalAgents, split_acted
from arl.conductors.steploop import (
    Answer,
    AskAgents,
    Command,
    PhaseLoop,
    Replies,
    ResetEnvironments,
    StepEnvironments,
    Store,
)
from arl.errors import ComponentCrashed
from arl.messages import agent as amsg
from arl.messages import control, store
from arl.messages import environment as emsg
from arl.messages.common import ErrorReply
from arl.messages.learner import EXPERIENCE_FIELDS, Experiences

AGENTS = {"d": [["env.s0", "env.s1"], ["env.a0"]], "a": [["env.s2"], ["env.a1", "env.a2"]]}
DUMMY_ENV = {"sensors": 4, "actuators": 4, "episode_length": 5}


def _request(simulation: str = "arl.simulation:Vanilla", episodes: int = 2) -> control.RunPhase:
    return control.RunPhase(
        0, "phase", 0, [simulation, {}], [["arl.conditions:EnvironmentDone", {}]], [], episodes, None,
        AGENTS, ["env"], {"d": "agents.0", "a": "agents.0"}, {"env": ""}, {}, 5, time.time(), [],
    )  # fmt: skip


class _Records:
    def __init__(self) -> None:
        self.records: list[Any] = []
        self.flushes = 0

    def send(self, records: list[Any], *, flush: bool = False) -> None:
        self.records.extend(records)
        self.flushes += flush


class _NoPeers:
    def send(self, requests: Any) -> None:
        assert not requests

    def collect(self, services: Any, grace: float | None = None) -> tuple[dict[str, Any], bool]:
        return {}, False


def _local_phase(
    request: control.RunPhase, prepare: Callable[[AgentHost], None] = lambda host: None
) -> tuple[control.PhaseDone, list[Any], AgentHost]:
    env, host = _set_up()
    prepare(host)
    records = _Records()
    driver = Driver(Environments(0, {"env": env}, {}, _NoPeers()), LocalAgents(0, host), records, lambda: False)  # type: ignore[arg-type]
    done = driver.run(PhaseLoop(request).run())
    return done, records.records, host


@pytest.mark.timeout(10)
def test_a_whole_phase_runs_in_process_and_stores_every_step_and_action() -> None:
    done, records, host = _local_phase(_request())
    kinds = Counter(type(r).__name__ for r in records)
    assert kinds == {"EpisodeStarted": 2, "EnvironmentStep": 10, "AgentAction": 20, "EpisodeEnded": 2}
    actions = [r for r in records if isinstance(r, store.AgentAction)]
    returns = {a: [sum(r.objective for r in actions if (r.agent, r.episode) == (a, e)) for e in range(2)] for a in "da"}
    assert done == control.PhaseDone(0, 0, 2, 10, "episodes", False, returns)
    assert [r.reason for r in records if isinstance(r, store.EpisodeEnded)] == ["terminated", "terminated"]
    assert host.agents["d"].brain.experiences == 10  # type: ignore[union-attr]
    # The same seed gives the same trajectory, wherever the components run.
    again = _local_phase(_request())[1]
    strip = [(type(r).__name__, r.sensors if isinstance(r, store.EnvironmentStep) else None) for r in records]
    assert strip == [(type(r).__name__, r.sensors if isinstance(r, store.EnvironmentStep) else None) for r in again]


Script = Callable[[Command], Any]


def _drive(request: control.RunPhase, answer: Script) -> tuple[list[Any], Any]:
    """Run the loop by hand; returns its records and its result (or the exception)."""
    loop = PhaseLoop(request).run()
    records: list[Any] = []
    reply: Any = None
    try:
        while True:
            command = loop.send(reply)
            if isinstance(command, Store):
                records.extend(command.records)
            reply = answer(command)
    except StopIteration as end:
        return records, end.value
    except Exception as exc:
        return records, exc


def _env_reply(command: Command) -> Replies:
    sensors = {"env.s0": 0.1, "env.s1": 0.2, "env.s2": 0.3}
    if isinstance(command, ResetEnvironments):
        return Replies({"env": emsg.Observation(sensors)})
    return Replies({"env": emsg.Stepped(sensors, {"env.reward": 1.0}, False, False)})


def test_a_stop_stores_what_the_answering_agents_completed_and_silences_the_others() -> None:
    asks: list[AskAgents] = []

    def answer(command: Command) -> Any:
        if isinstance(command, Store):
            return False
        if isinstance(command, AskAgents):
            asks.append(command)
            objective = None if len(asks) == 1 else 1.5
            if len(asks) == 2:  # the stop lands while "a" is silent
                return Replies({"d": Answer({"env.a0": 1.0}, objective)}, stopped=True)
            return Replies({name: Answer({}, objective) for name in command.asks})
        return _env_reply(command)

    records, done = _drive(_request(), answer)
    assert isinstance(done, control.PhaseDone)
    assert (done.reason, done.steps, done.episodes) == ("interrupted", 1, 0)
    assert [(r.agent, r.step) for r in records if isinstance(r, store.AgentAction)] == [("d", 1)]
    assert len(asks) == 2  # no final call: "d" has nothing open, "a" is silent
    ended = [r for r in records if isinstance(r, store.EpisodeEnded)]
    assert [(e.steps, e.reason) for e in ended] == [(1, "interrupted")]


def test_a_failing_agent_fails_the_episode_after_the_others_actions_are_stored() -> None:
    calls = 0

    def answer(command: Command) -> Any:
        nonlocal calls
        if isinstance(command, Store):
            return False
        if isinstance(command, AskAgents):
            calls += 1
            if calls == 2:
                return Replies({"d": Answer({}, 2.0), "a": ErrorReply("agent.a", "ValueError", "boom", "tb")})
            return Replies({name: Answer({}, None) for name in command.asks})
        return _env_reply(command)

    records, failure = _drive(_request(), answer)
    assert isinstance(failure, ComponentCrashed)
    assert failure.component == "agent.a"
    assert [(r.agent, r.step) for r in records if isinstance(r, store.AgentAction)] == [("d", 1)]
    assert [r.reason for r in records if isinstance(r, store.EpisodeEnded)] == ["failed"]


def test_a_step_an_environment_left_unanswered_after_a_stop_is_stored_for_none() -> None:
    def answer(command: Command) -> Any:
        if isinstance(command, Store):
            return False
        if isinstance(command, AskAgents):
            return Replies({name: Answer({}, None if not command.asks[name].rewards else 1.0) for name in command.asks})
        if isinstance(command, StepEnvironments):
            return Replies({}, stopped=True)
        return _env_reply(command)

    records, done = _drive(_request(), answer)
    assert (done.reason, done.steps) == ("interrupted", 0)
    assert not [r for r in records if isinstance(r, store.EnvironmentStep | store.AgentAction)]


def test_an_agent_process_reply_is_split_by_agent_and_a_bad_one_fails_each_agent() -> None:
    acted = amsg.Acted({"d": [{"env.a0": 1.0}, 0.5]}, {"a": ["KeyError", "'x'", "tb"]})
    got = split_acted(acted, ["d", "a"])
    assert got["d"] == Answer({"env.a0": 1.0}, 0.5)
    assert got["a"] == ErrorReply("agent.a", "KeyError", "'x'", "tb")
    wrong = split_acted(emsg.Observation({}), ["d", "a"])
    assert all(isinstance(r, ErrorReply) and r.component == f"agent.{n}" for n, r in wrong.items())
    missing = split_acted(amsg.Acted({}, {}), ["d"])
    assert isinstance(missing["d"], ErrorReply)
    assert "missing" in missing["d"].message


def test_each_stored_action_carries_the_policy_version_its_muscle_had_when_it_acted() -> None:
    """From the muscle's attribute, through the agent process's reply and the loop, to the
    record; a muscle that gives none (the dummy's) stores None."""

    def versioned(host: AgentHost) -> None:
        muscle = host.agents["d"].muscles[0]
        act = muscle.act

        def act_and_move_on(sensors: Any) -> Any:
            muscle.policy_version = (muscle.policy_version or 0) + 10  # the version of this act's policy
            return act(sensors)

        muscle.act = act_and_move_on  # type: ignore[method-assign]

    _, records, _ = _local_phase(_request(episodes=1), versioned)
    actions = [r for r in records if isinstance(r, store.AgentAction)]
    assert [(r.step, r.policy_version) for r in actions if r.agent == "d"] == [(s, 10 * s) for s in range(1, 6)]
    assert {r.policy_version for r in actions if r.agent == "a"} == {None}


def test_a_policy_version_in_a_reply_is_read_and_a_bad_one_fails_its_agent() -> None:
    got = split_acted(amsg.Acted({"d": [{"env.a0": 1.0}, 0.5, 7], "a": [{}, None, None]}, {}), ["d", "a"])
    assert got == {"d": Answer({"env.a0": 1.0}, 0.5, 7), "a": Answer({}, None, None)}
    assert split_acted(amsg.Acted({"d": [{}, 0.5]}, {}), ["d"]) == {"d": Answer({}, 0.5, None)}  # no version sent
    for bad in (-1, 1.5, "7", True):
        reply = split_acted(amsg.Acted({"d": [{}, 0.5, bad]}, {}), ["d"])["d"]
        assert isinstance(reply, ErrorReply), bad
        assert (reply.component, reply.kind) == ("agent.d", "ProtocolError")
        assert "policy version" in reply.message


def test_a_restarted_worker_numbers_its_episodes_and_counts_on_from_the_dead_one_s() -> None:
    request = dataclasses.replace(_request(episodes=2), first_episode=3, episodes_before=2, steps_before=12)
    done, records, _ = _local_phase(request)
    assert [r.episode for r in records if isinstance(r, store.EpisodeStarted)] == [3, 4]
    assert (done.episodes, done.steps, done.reason) == (4, 22, "episodes")
    # Each episode's seed is its index's, as if the worker had never died.
    fresh = _local_phase(_request(episodes=5))[1]
    assert [r.sensors for r in records if isinstance(r, store.EnvironmentStep)] == [
        r.sensors for r in fresh if isinstance(r, store.EnvironmentStep) and r.episode >= 3
    ]


def test_a_restarted_worker_that_already_met_a_phase_condition_runs_no_episode() -> None:
    """Its share of max_environment_steps was made before its process died: it stops
    at once, saying why, rather than storing one more (cut) episode."""
    conditions = [["arl.conditions:EnvironmentDone", {}], ["arl.conditions:MaxEnvironmentSteps", {"steps": 10}]]
    request = dataclasses.replace(
        _request(episodes=3), conditions=conditions, first_episode=2, episodes=1, episodes_before=2, steps_before=10
    )
    done, records, _ = _local_phase(request)
    assert not [r for r in records if isinstance(r, store.EpisodeStarted)]
    assert (done.episodes, done.steps, done.reason) == (2, 10, "max_environment_steps")


def test_max_environment_steps_ends_each_workers_phase_at_its_share() -> None:
    """13 steps over 2 workers: 7 and 6, across an episode's end (5-step episodes)."""
    done = []
    for worker in range(2):
        request = control.RunPhase(
            0, "phase", worker, ["arl.simulation:Vanilla", {}],
            [["arl.conditions:EnvironmentDone", {}], ["arl.conditions:MaxEnvironmentSteps", {"steps": 13}]],
            [], 100, None, AGENTS, ["env"], {"d": "agents.0", "a": "agents.0"}, {"env": ""}, {}, 5, time.time(),
            [], 2,
        )  # fmt: skip
        done.append(_local_phase(request)[0])
    assert [(d.steps, d.episodes, d.reason) for d in done] == [
        (7, 2, "max_environment_steps"),  # the second episode is cut short, and counts
        (6, 2, "max_environment_steps"),
    ]


# -- central agents: the loop hands their transitions out for the learner -----------------------


def _scripted_central(request: control.RunPhase) -> tuple[list[Store], Any]:
    """Episode 0 terminates (the environment says so) at step 2, episode 1 is cut by
    max_steps at 3. Readings count the steps (s0 = t), each answer's setpoints and
    policy version its ask's number, its objective ten times the rewards."""
    stores: list[Store] = []
    asks = 0
    t = 0
    steps = 0

    def sensors() -> dict[str, float]:
        return {"env.s0": float(t), "env.s1": float(-t), "env.s2": 100.0 + t}

    def answer(command: Command) -> Any:
        nonlocal asks, t, steps
        if isinstance(command, Store):
            stores.append(command)
            return False
        if isinstance(command, ResetEnvironments):
            steps = 0
            return Replies({"env": emsg.Observation(sensors())})
        if isinstance(command, StepEnvironments):
            t += 1
            steps += 1
            terminated = len([s for s in stores if any(isinstance(r, store.EpisodeStarted) for r in s.records)]) == 1
            return Replies({"env": emsg.Stepped(sensors(), {"env.reward": 1.0}, terminated and steps == 2, False)})
        assert isinstance(command, AskAgents)
        asks += 1
        replies = {}
        for name, ask in command.asks.items():
            objective = None if ask.rewards is None else 10 * sum(ask.rewards.values())
            setpoints = {} if command.final else {"env.a0" if name == "d" else "env.a1": float(asks)}
            replies[name] = Answer(setpoints, objective, None if command.final else asks)
        return Replies(replies)

    _, done = _drive(request, answer)
    return stores, done


def _transition(inputs: float, setpoint: float, next_inputs: float, terminated: bool, truncated: bool) -> list[Any]:
    fields = {
        "worker": 1,
        "inputs": {"env.s0": inputs, "env.s1": -inputs},
        "setpoints": {"env.a0": setpoint},
        "rewards": {"env.reward": 1.0},
        "objective": 10.0,
        "next_inputs": {"env.s0": next_inputs, "env.s1": -next_inputs},
        "terminated": terminated,
        "truncated": truncated,
        "policy_version": int(setpoint),
    }
    return [fields[name] for name in EXPERIENCE_FIELDS]


def _central(learners: dict[str, str] | None) -> control.RunPhase:
    return dataclasses.replace(_request(), worker=1, max_steps=3, workers=2, learners=learners)


def test_a_central_agents_transitions_are_handed_out_for_its_learner_and_counted() -> None:
    stores, done = _scripted_central(_central({"d": "ipc://learner-d"}))
    assert isinstance(done, control.PhaseDone)
    assert (done.episodes, done.steps) == (2, 5)
    handed = [s.experiences for s in stores if s.experiences is not None]
    assert all(set(e) == {"d"} for e in handed)  # "a" learns in its agent process
    items = [item for e in handed for item in e["d"]]
    assert items == [
        # episode 0: asks 1, 2 act; the environment terminates after step 2
        _transition(0, 1, 1, False, False),
        _transition(1, 2, 2, True, False),
        # episode 1: asks 4, 5, 6 act; max_steps cuts it after step 3: truncated
        _transition(2, 4, 3, False, False),
        _transition(3, 5, 4, False, False),
        _transition(4, 6, 5, False, True),
    ]
    assert done.experiences == {"d": 5}
    # They go out with the records of the step that completed them, not later.
    assert all(s.experiences is None or s.records for s in stores)


def test_without_learners_no_transitions_are_handed_out() -> None:
    stores, done = _scripted_central(_central(None))
    assert (done.episodes, done.steps) == (2, 5)
    assert all(s.experiences is None for s in stores)
    assert done.experiences is None


def test_the_driver_sends_the_handed_out_transitions_to_each_learner_and_flushes_at_the_end() -> None:
    """A Store's transitions go through a LearnerLink (real PUSH sockets over inproc://),
    batched by agent, the rest flushed when the link closes."""
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        pulls = {}
        for agent in ("d", "e"):
            pulls[agent] = ctx.socket(zmq.PULL)
            pulls[agent].bind(f"inproc://learner-{agent}")
        now = [0.0]
        link = LearnerLink(ctx, 4, {a: f"inproc://learner-{a}" for a in pulls}, clock=lambda: now[0])
        driver = Driver(None, None, _Records(), lambda: False, link)  # type: ignore[arg-type]

        def loop() -> Any:
            yield Store([], experiences={"d": [_transition(0, 1, 1, False, False)]}, flush=True)
            yield Store([], experiences={"d": [_transition(1, 2, 2, False, False)], "e": [["e1"]]})
            yield Store([])
            return "done"

        assert driver.run(loop()) == "done"
        first = codec.decode(pulls["d"].recv())
        assert first == Experiences(4, "d", [_transition(0, 1, 1, False, False)])
        assert not pulls["d"].poll(50)  # the second waits for FLUSH_INTERVAL or FLUSH_ITEMS
        link.close()
        assert codec.decode(pulls["d"].recv()) == Experiences(4, "d", [_transition(1, 2, 2, False, False)])
        assert codec.decode(pulls["e"].recv()) == Experiences(4, "e", [["e1"]])
    finally:
        ctx.destroy(linger=0)


def _set_up() -> tuple[EnvironmentConductor, AgentHost]:
    env = EnvironmentConductor()
    ready = env.setup(control.SetupEnvironment(0, "env", "arl.dummy:DummyEnvironment", DUMMY_ENV))
    spaces = dict(ready.sensors) | dict(ready.actuators)
    host = AgentHost()
    for name, (sensors, actuators) in AGENTS.items():
        host.handle(
            control.SetupAgent(
                0, name, ["arl.dummy:DummyBrain", {}], ["arl.dummy:DummyMuscle", {}], ["arl.dummy:DummyObjective", {}],
                [[i, spaces[i]] for i in sensors], [[i, spaces[i]] for i in actuators], 1, True, 3, None,
            )
        )  # fmt: skip
    return env, host


def _trajectory(records: list[Any]) -> list[Any]:
    """What a resume must repeat: steps, actions and how episodes ended (not wall times)."""
    kept = []
    for r in records:
        if isinstance(r, store.EnvironmentStep):
            kept.append(codec.encode(dataclasses.replace(r, sim_time=None)))  # (the clock's, not the run's)
        elif isinstance(r, store.AgentAction):
            kept.append(codec.encode(r))
        elif isinstance(r, store.EpisodeEnded):
            kept.append((r.episode, r.steps, r.reason))
    return kept


@pytest.mark.timeout(10)
@pytest.mark.parametrize("boundary", [1, 4, 7])  # early, mid-episode with an open action, the last step of one
def test_a_phase_resumed_from_a_step_boundary_stores_what_an_uninterrupted_one_does(tmp_path, boundary: int) -> None:
    from arl.conductors.controller import load_worker, save_worker

    request = _request("arl.simulation:TakingTurns", episodes=3)
    _, whole, whole_host = _local_phase(request)

    env, host = _set_up()
    loop = PhaseLoop(request)
    seen = {"boundaries": 0}

    def hold() -> bool:  # the controller's hold: save at the chosen boundary, then stop there
        seen["boundaries"] += 1
        if seen["boundaries"] < boundary:
            return False
        seen["sent"] = len(before.records)  # what the store has at the snapshot
        save_worker(tmp_path, loop, {"env": env})
        host.handle(control.SaveState(str(tmp_path)))
        return True

    before = _Records()
    peers = Environments(0, {"env": env}, {}, _NoPeers())  # type: ignore[arg-type]
    Driver(peers, LocalAgents(0, host), before, lambda: False, None, hold).run(loop.run())  # type: ignore[arg-type]

    env2, host2 = _set_up()  # fresh instances, as a resumed run's processes have
    host2.handle(control.LoadState(str(tmp_path)))
    resumed = PhaseLoop(dataclasses.replace(request, state=str(tmp_path)))
    load_worker(tmp_path, resumed, {"env": env2})
    after = _Records()
    peers2 = Environments(0, {"env": env2}, {}, _NoPeers())  # type: ignore[arg-type]
    done = Driver(peers2, LocalAgents(0, host2), after, lambda: False).run(resumed.run())  # type: ignore[arg-type]
    assert done.episodes == 3
    assert done.reason == "episodes"
    # The records sent up to the snapshot (the store keeps them; rewind drops what the stop
    # sent after it), then the resumed ones, are the uninterrupted run's.
    assert _trajectory(before.records[: seen["sent"]]) + _trajectory(after.records) == _trajectory(whole)
    for name in AGENTS:  # and the brains learnt from every transition once, the open ones too
        assert host2.agents[name].brain.experiences == whole_host.agents[name].brain.experiences  # type: ignore[union-attr]


@pytest.mark.timeout(10)
def test_a_loop_saved_after_it_ended_ends_again_at_once_when_restored() -> None:
    """An envs_per_worker copy whose episodes are all done when the others pause: its
    state says so, and a resumed copy runs nothing more (not its last episode again)."""
    done = _local_phase(_request(episodes=2))[0]
    loop = PhaseLoop(_request(episodes=2))
    loop.finished = done
    state = codec.unpack(codec.pack(loop.state()))
    again = PhaseLoop(_request(episodes=2))
    again.restore(state)
    with pytest.raises(StopIteration) as ended:  # no command at all: it ends at once
        next(again.run())
    assert ended.value.value == done
