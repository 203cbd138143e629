"""A client of the control API in the standard library alone (``urllib.request``), for
``arl-run ctl``: one call, one JSON object back, every failure an :class:`ArlError` that
says what happened."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from arl.errors import ArlError

TIMEOUT = 75.0
"""Seconds a call waits for an answer: longer than the server waits for a command
(:data:`arl.controlapi.server.COMMAND_TIMEOUT`), so that its 504 comes back rather than
this client's own timeout."""

# No proxies: the API is on 127.0.0.1, and an http_proxy in the environment must not send
# the token elsewhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(url: str, token: str, method: str, path: str, *, timeout: float = TIMEOUT) -> dict[str, Any]:
    """``method`` ``url + path`` with the token; the JSON object the API answered.

    Raises :class:`ArlError` when the API refuses (its message and HTTP status), does not
    answer (the run has ended, its arl-run was killed), or answers something not JSON.
    """
    request = urllib.request.Request(
        url + path, method=method, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            raise ArlError(f"{_reason(exc)} (the run's control API answered {exc.code} to {method} {path})") from None
    except urllib.error.URLError as exc:
        raise _unreachable(url, exc.reason) from None
    except (TimeoutError, ConnectionError) as exc:  # while reading the answer
        raise _unreachable(url, exc) from None
    return _json_object(body, f"{method} {url}{path}")


def _reason(error: urllib.error.HTTPError) -> str:
    """The API's ``error`` message, else what the body or the status line says."""
    body = error.read()
    try:
        message = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace").strip() or str(error.reason)
    return str(message)


def _unreachable(url: str, reason: object) -> ArlError:
    if isinstance(reason, ConnectionRefusedError):
        return ArlError(
            f"the run's control API at {url} does not answer (connection refused): "
            "the run has ended or its arl-run was killed"
        )
    if isinstance(reason, TimeoutError):
        return ArlError(f"the run's control API at {url} did not answer in time: its arl-run is busy or stuck")
    return ArlError(f"cannot reach the run's control API at {url}: {reason}")


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        raise ArlError(f"{what} answered something that is not JSON: {body[:200]!r}") from None
    if not isinstance(answer, dict):
        raise ArlError(f"{what} answered {type(answer).__name__}, not a JSON object")
    return answer
