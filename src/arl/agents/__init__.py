"""Reference learning agents, each a Brain (the learner) and a Muscle (the policy):
``arl.agents.dqn:DQNBrain`` with ``DQNMuscle``, and ``arl.agents.ppo:PPOBrain`` with
``PPOMuscle``. docs/agents.md explains them and how to write one's own.

Importing this package (or :mod:`arl.agents.dqn`, :mod:`arl.agents.ppo`) does not import
torch: a brain imports it when it is set up, in the process that hosts it.
"""
