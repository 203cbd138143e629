"""uvicorn as arl serves with it (the control API inside ``arl-run``, the dashboard on its
own): a server that leaves arl's logging alone and does only what those need."""

from __future__ import annotations

from typing import Any

import uvicorn


def quiet_config(app: Any, *, close_timeout: int) -> uvicorn.Config:
    """A uvicorn config of ``app``: log_config None (uvicorn must not reconfigure arl's
    logging), warnings only and no access log (arl logs what matters; the dashboard's page
    asks once a second), no lifespan and no websockets (neither is used), h11, and at most
    ``close_timeout`` seconds for requests in flight at a stop."""
    return uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        timeout_graceful_shutdown=close_timeout,
    )
