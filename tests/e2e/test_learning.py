"""A learning agent through arl-run, small enough for the suite: DQN on a 7-state chain
(tests/components: ChainEnvironment) trains with one worker, then a greedy test phase
with the saved brain walks straight to the goal from every start state."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CHAIN = """\
uid: chain-dqn
seed: 3
schedule:
  - train:
      environments:
        - environment: {name: arl_test_components:ChainEnvironment, uid: chain}
      agents:
        - name: dqn
          brain:
            name: arl.agents.dqn:DQNBrain
            params: {hidden: [32], learning_rate: 0.01, batch_size: 32, buffer_size: 2000, minimum_buffer_size: 64,
                     gamma: 0.9, n_step: 2, train_every: 4, gradient_steps: 2, target_update: 20, broadcast_every: 4}
          muscle: {name: arl.agents.dqn:DQNMuscle, params: {epsilon: 0.3}}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [chain.obs]
          actuators: [chain.action]
      simulation: {name: vanilla, conditions: [{name: arl.conditions:EnvironmentDone}]}
      phase_config: {mode: train, episodes: 240, max_steps: 12}
  - test:
      agents:
        - name: dqn
          load: {phase: train}
          brain: {name: arl.agents.dqn:DQNBrain, params: {hidden: [32]}}
          muscle: {name: arl.agents.dqn:DQNMuscle, params: {epsilon: 0.0}}
          objective: {name: arl.dummy:DummyObjective}
          sensors: [chain.obs]
          actuators: [chain.action]
      phase_config: {mode: test, episodes: 6}
"""


def _learns_the_chain(arl_run, name: str, text: str) -> None:
    """Run the file; its test phase, with the saved brain, walks the shortest way to the
    goal from every start."""
    file = arl_run.tmp / name
    file.write_text(text)
    done = arl_run.run(str(file))
    assert done.returncode == 0, done.stderr
    test = arl_run.query(
        "select e.steps, e.end_reason from episodes e join phases p on p.id = e.phase_id "
        "where p.name = 'test' order by e.id"
    )
    # Starts 0, 1, 2, 4, 5, 6 in turn; the goal is state 3: the shortest walk from each.
    assert test == [(steps, "terminated") for steps in (3, 2, 1, 1, 2, 3)]


def test_dqn_learns_the_chain_and_its_saved_brain_walks_it_greedily(arl_run, no_leaks) -> None:
    _learns_the_chain(arl_run, "chain.yml", CHAIN)
    # The actions carry the policy versions the brain sent, and the brain logged its loss.
    assert arl_run.scalar("select max(policy_version) from agent_actions") > 0
    assert arl_run.scalar("select count(*) from metrics where name = 'loss'") > 0


CENTRAL = (
    CHAIN.replace("uid: chain-dqn", "uid: chain-central")
    .replace(
        "          actuators: [chain.action]\n      simulation:",
        "          actuators: [chain.action]\n"
        "          learner: {max_train_frequency: 400, minimum_buffer_size: 64, broadcast_period: 0.02}\n"
        "          inference: {servers: 2, batchsize: 2, delay: 0.002}\n"
        "      simulation:",
    )
    .replace(
        "phase_config: {mode: train, episodes: 240, max_steps: 12}",
        "phase_config: {mode: train, episodes: 150, max_steps: 12, workers: 3}",
    )
    .replace("phase_config: {mode: test, episodes: 6}", "phase_config: {mode: test, episodes: 6, workers: 1}")
)


def test_a_central_dqn_learns_the_chain_with_three_workers_two_inference_servers_and_a_learner(
    arl_run, no_leaks
) -> None:
    """SEED-style: the brain trains in its learner process, three workers act through two
    inference servers, which take the learner's broadcasts; the test phase acts through
    the servers too, with the brain the learner saved."""
    _learns_the_chain(arl_run, "central.yml", CENTRAL)
    layout = arl_run.scalar("select detail from events where kind = 'layout'")
    assert json.loads(layout)["central"] == {"dqn": {"inference_servers": 2}}
    # Every train action carries the version of the broadcast its muscle acted with,
    # and later actions act with later policies.
    versions = arl_run.query(
        "select a.policy_version from agent_actions a join episodes e on e.id = a.episode_id "
        "join phases p on p.id = e.phase_id where p.name = 'train' order by a.id"
    )
    assert all(v is not None for (v,) in versions)
    assert versions[-1][0] > versions[0][0]
    names = {name for (name,) in arl_run.query("select distinct name from metrics")}
    assert {"arl/updates_per_s", "arl/buffer_size", "arl/policy_lag"} <= names
    assert {"arl/inference_batch_size/server0", "arl/inference_batch_size/server1"} <= names
