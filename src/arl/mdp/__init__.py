"""MajorDomo (MDP/0.2-style) request routing for control messages.

The RunGovernor hosts the :class:`Broker` and talks through an :class:`MdpClient`; every
conductor process is an :class:`MdpWorker` for its own service name (``agent.defender``,
``env.myenv.0``, ``controller.0``). Workers advertise their direct hot-path endpoint in
the READY metadata, which clients read with :meth:`MdpClient.lookup`. The wire format is
documented in :mod:`arl.mdp.protocol`.
"""

from arl.mdp.broker import Broker
from arl.mdp.client import MdpClient
from arl.mdp.protocol import MMI_LOOKUP
from arl.mdp.worker import MdpWorker, Request

__all__ = ["MMI_LOOKUP", "Broker", "MdpClient", "MdpWorker", "Request"]
