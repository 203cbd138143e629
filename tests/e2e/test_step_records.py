"""What a run stores of its last steps when it stops early: every action an agent's
answer completed, whether the run was interrupted or a process died."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from arl.testing import poll_for, titled
from experiment_files import write

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _process(root: int, title: str) -> psutil.Process:
    return poll_for(lambda: titled(root, title), what=title)[0]


def _actions(arl_run, agent: str) -> list[int]:
    return [step for (step,) in arl_run.query("select step from agent_actions where agent = ? order by step", agent)]


def test_killing_one_agent_keeps_every_action_the_other_completed(arl_run, no_leaks) -> None:
    """The defender is slow, so the kill lands while the controller waits for it and the
    attacker has already answered: that answer completes the attacker's last action."""
    file = write(arl_run.tmp, muscle="arl_test_components:SlowMuscle", muscle_params="{delay: 0.05}",
                 env_params="{episode_length: 100000}", more="processes: {agents: 2}\n")  # fmt: skip
    proc = arl_run.start(file)
    poll_for(lambda: arl_run.count("environment_steps") >= 5, timeout=30, what="steps")
    _process(proc.pid, "arl[agent:defender]").kill()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert arl_run.scalar("select status from experiment_runs") == "FAILED"
    steps, reason = arl_run.query("select steps, end_reason from episodes")[0]
    assert reason == "interrupted"
    assert arl_run.query("select step from environment_steps order by step") == [(s,) for s in range(1, steps + 1)]
    # Every stored step has the attacker's action; the defender's last one, whose
    # objective it never sent, is the only one missing.
    assert _actions(arl_run, "attacker") == list(range(1, steps + 1))
    assert _actions(arl_run, "defender") == list(range(1, steps))


def test_ctrl_c_while_agents_take_turns_completes_the_waiting_agents_action(arl_run, no_leaks) -> None:
    """The agent sitting a step out has an open action when the stop lands: the
    episode's final call completes it, so each stored step has its actor's action."""
    file = write(arl_run.tmp, muscle="arl_test_components:SlowMuscle", muscle_params="{delay: 0.05}",
                 env_params="{episode_length: 100000}", simulation="{name: taking_turns}")  # fmt: skip
    proc = arl_run.start(file)
    poll_for(lambda: arl_run.count("environment_steps") >= 5, timeout=30, what="steps")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    steps = arl_run.scalar("select steps from episodes")
    assert arl_run.count("environment_steps") == steps
    # taking_turns: the defender acts in odd steps, the attacker in even ones.
    assert _actions(arl_run, "defender") == list(range(1, steps + 1, 2))
    assert _actions(arl_run, "attacker") == list(range(2, steps + 1, 2))
