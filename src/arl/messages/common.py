"""Messages every conversation shares."""

from __future__ import annotations

from arl.codec import message


@message("error")
class ErrorReply:
    """A request failed on the far side. ``traceback`` is the remote traceback text."""

    component: str
    kind: str
    message: str
    traceback: str
