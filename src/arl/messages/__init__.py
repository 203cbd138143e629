"""Typed messages, one module per conversation. Importing this package registers them all."""

from arl.messages import agent, control, environment, executor, learner, store  # noqa: F401
