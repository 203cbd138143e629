"""A run whose brain and muscle log metrics and whose muscle reports policy versions:
what `log_metric` and `policy_version` become in the store and in `arl-run results`."""

from __future__ import annotations

import json

import pytest

from experiment_files import write

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_logged_metrics_and_policy_versions_are_stored_and_listed(arl_run, no_leaks) -> None:
    """MetricBrain logs its objective at every learn call and sends a new policy version
    every 3 experiences; VersionedMuscle takes it and logs it (tests/components)."""
    file = write(arl_run.tmp, brain="arl_test_components:MetricBrain", muscle="arl_test_components:VersionedMuscle")
    done = arl_run.run(file)
    assert done.returncode == 0, done.stderr
    (run_id,) = arl_run.query("select id from experiment_runs")[0]
    (phase_id,) = arl_run.query("select id from phases where name = 'train'")[0]
    rows = arl_run.query(
        "select run_id, phase_id, agent, worker, name, step, value from metrics order by worker is not null, name, step"
    )
    objectives = [
        o for (o,) in arl_run.query("select objective from agent_actions where agent = 'defender' order by step")
    ]
    # The brain (worker NULL): one value a learn call, one learn call an action.
    assert rows[:10] == [(run_id, phase_id, "defender", None, "objective", s, objectives[s - 1]) for s in range(1, 11)]
    # The muscle of worker 0: each version it was sent, counted 1, 2, 3 by default.
    assert rows[10:] == [(run_id, phase_id, "defender", 0, "policy_version", v, float(v)) for v in (1, 2, 3)]
    # Each action carries the version its muscle had when it acted: the brain learns a
    # step's transition before the next act, so step k acts on (k - 1) // 3.
    versions = arl_run.query("select step, policy_version from agent_actions where agent = 'defender' order by step")
    assert versions == [(k, (k - 1) // 3 or None) for k in range(1, 11)]
    assert arl_run.query("select distinct policy_version from agent_actions where agent = 'attacker'") == [(None,)]

    listed = arl_run.run("results", "metrics", "e2e")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["phase", "agent", "worker", "name", "step", "value", "time", "(UTC)"]
    assert len(lines) == 1 + 13
    assert lines[1].split()[:6] == ["train", "defender", "-", "objective", "1", f"{objectives[0]:.6g}"]
    assert lines[-1].split()[:6] == ["train", "defender", "0", "policy_version", "3", "3"]
    as_json = json.loads(
        arl_run.run("results", "metrics", "e2e", "--name", "policy_version", "--format", "json").stdout
    )
    assert [(m["worker"], m["step"], m["value"]) for m in as_json] == [(0, 1, 1.0), (0, 2, 2.0), (0, 3, 3.0)]
