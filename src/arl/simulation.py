"""Simulations: which agents act in each step of an episode.

A step is one *turn*: the agents that act in it see the same sensor readings and act at
once, then every environment of the worker steps with their setpoints. The file names a
simulation by a word (``vanilla``, ``taking_turns``) or by a user's class
(``module:Class``, a subclass of :class:`Simulation`, with ``params``).

Environments always step; an agent that does not act in a step leaves its actuators
unset for that step (an environment may keep their last values or use defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class Simulation:
    """Chooses the agents of each step. Constructed with the file's ``params``;
    :meth:`setup` then tells it the phase's agents, in the file's order."""

    agents: Sequence[str] = ()

    def setup(self, agents: Sequence[str]) -> None:
        """Called once per phase and worker, before the first episode."""
        self.agents = tuple(agents)

    def actors(self, step: int, episode: int) -> Sequence[str]:
        """The agents that act in step ``step`` (counting from 0) of episode ``episode``.

        A non-empty selection of :attr:`agents`. The default: every agent, every step.
        """
        return self.agents

    def save_state(self, path: Path) -> None:
        """Write what this simulation keeps between steps into ``path``, a folder of its
        own that arl has created; at step boundaries only. The default writes nothing
        (the built-ins choose from the step and episode alone). See docs/state.md."""

    def load_state(self, path: Path) -> None:
        """Read back what :meth:`save_state` wrote. The default reads nothing."""


class Vanilla(Simulation):
    """Every agent acts in every step (``simulation: {name: vanilla}``)."""


class TakingTurns(Simulation):
    """One agent a step, in the file's order, round and round (``taking_turns``)."""

    def actors(self, step: int, episode: int) -> Sequence[str]:
        return (self.agents[step % len(self.agents)],)


BUILT_IN: dict[str, str] = {
    "vanilla": "arl.simulation:Vanilla",
    "taking_turns": "arl.simulation:TakingTurns",
}
"""The words a file may name a simulation by, and the classes they stand for."""
