"""An agent's part of a live run's snapshot: its components' state and the transitions
its muscles have started (what :class:`~arl.conductors.agent.AgentConductor` holds
between two calls of a worker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arl.codec import pack, unpack
from arl.errors import ArlError

from .hold import new_folder

if TYPE_CHECKING:
    from .agent import AgentConductor


@dataclass
class Pending:
    """The transition a muscle started: completed when the next rewards arrive."""

    inputs: dict[str, Any]
    setpoints: dict[str, Any]
    version: int | None


def save_agent(agent: AgentConductor, root: Path) -> None:
    """This agent's part of a snapshot (the run paused at a step boundary): its brain,
    objective and muscles (``save_state``), and the transitions its muscles started."""
    if agent.objective is None:
        raise RuntimeError(f"agent {agent.name!r} is not set up for a phase")
    root.mkdir(parents=True, exist_ok=False)
    if agent.brain is not None:
        agent.brain.save_state(new_folder(root / "brain"))
    agent.objective.save_state(new_folder(root / "objective"))
    for worker, muscle in agent.muscles.items():
        muscle.save_state(new_folder(root / f"muscle.{worker}"))
    pending = {w: [p.inputs, p.setpoints, p.version] for w, p in agent._pending.items()}
    state = {"pending": pending, "version": agent.version, "acted": agent._acted}
    (root / "conductor.msgpack").write_bytes(pack(state))
    if agent.metrics is not None:
        agent.metrics.flush()  # what was logged before the snapshot is stored before it


def load_agent(agent: AgentConductor, root: Path) -> None:
    """Go on from :meth:`save_state`'s folder (after this phase's setup)."""
    if agent.objective is None:
        raise RuntimeError(f"agent {agent.name!r} is not set up for a phase")
    if not root.is_dir():
        raise ArlError(f"the snapshot has no state of agent {agent.name!r} ({root} is missing)")
    if agent.brain is not None:
        agent.brain.load_state(root / "brain")
    agent.objective.load_state(root / "objective")
    for worker, muscle in agent.muscles.items():
        muscle.load_state(root / f"muscle.{worker}")
    state = unpack((root / "conductor.msgpack").read_bytes())
    agent._pending = {int(w): Pending(*p) for w, p in state["pending"].items()}
    agent.version = state["version"]
    agent._acted = int(state.get("acted", 0))  # (an inference server's pace counts on)
