"""Seeds for every component, derived from the run's seed by hashing.

Hashing (rather than ``seed + i``) keeps neighbouring seeds uncorrelated, and the same
names always give the same seed, whatever the order components are started in.
"""

from __future__ import annotations

import hashlib


def derive_seed(root: int, *names: object) -> int:
    """A stable 63-bit seed for the component named by ``names`` in a run seeded ``root``."""
    text = "/".join([str(root), *map(str, names)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1
