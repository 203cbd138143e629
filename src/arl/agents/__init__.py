"""Reference learning agents, each a Brain (the learner) and a Muscle (the policy):
``arl.agents.dqn:DQNBrain`` with ``arl.agents.dqn:DQNMuscle``. docs/agents.md explains
them and how to write one's own.

Importing this package (or :mod:`arl.agents.dqn`) does not import torch: a brain
imports it when it is set up, in the process that hosts it.
"""
