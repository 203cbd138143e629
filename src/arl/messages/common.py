"""Messages every conversation shares."""

from __future__ import annotations

from typing import Any

from arl.codec import message
from arl.errors import ComponentCrashed


@message("error")
class ErrorReply:
    """A request failed on the far side. ``traceback`` is the remote traceback text."""

    component: str
    kind: str
    message: str
    traceback: str


def raise_failures(replies: dict[str, Any]) -> None:
    """Raise the first failure among ``replies`` as the component's own crash."""
    for reply in replies.values():
        if isinstance(reply, ErrorReply):
            raise ComponentCrashed(reply.component, reply.kind, reply.message, reply.traceback)
