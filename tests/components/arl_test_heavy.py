"""A component module that notes every process that imports it (as torch would be imported)."""

from __future__ import annotations

import os

from arl.dummy import DummyBrain

with open(os.environ["ARL_TEST_IMPORT_LOG"], "a") as log:
    log.write(f"{os.getpid()}\n")


class HeavyBrain(DummyBrain):
    """A DummyBrain whose module is expensive to import."""
