"""A learning agent through arl-run, small enough for the suite: DQN on a 7-state chain
(tests/components: ChainEnvironment) trains with one worker, then a greedy test phase
with the saved brain walks straight to the goal from every start state."""

from __future__ import annotations

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


def test_dqn_learns_the_chain_and_its_saved_brain_walks_it_greedily(arl_run, no_leaks) -> None:
    file = arl_run.tmp / "chain.yml"
    file.write_text(CHAIN)
    done = arl_run.run(str(file))
    assert done.returncode == 0, done.stderr
    test = arl_run.query(
        "select e.steps, e.end_reason from episodes e join phases p on p.id = e.phase_id "
        "where p.name = 'test' order by e.id"
    )
    # Starts 0, 1, 2, 4, 5, 6 in turn; the goal is state 3: the shortest walk from each.
    assert test == [(steps, "terminated") for steps in (3, 2, 1, 1, 2, 3)]
    # The actions carry the policy versions the brain sent, and the brain logged its loss.
    assert arl_run.scalar("select max(policy_version) from agent_actions") > 0
    assert arl_run.scalar("select count(*) from metrics where name = 'loss'") > 0
