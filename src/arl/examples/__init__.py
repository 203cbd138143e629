"""Components of the example experiments in ``experiments/``."""

from __future__ import annotations

from collections.abc import Sequence


def one_id(ids: Sequence[str], suffix: str, who: str) -> str:
    """The one id of ``ids`` that ends in ``suffix``; a ValueError saying that ``who``
    needs exactly one if there are none or several (the file lists the wrong ids)."""
    found = [i for i in ids if i.endswith(suffix)]
    if len(found) != 1:
        raise ValueError(f"{who} needs exactly one id ending in {suffix!r}, got {list(ids)}")
    return found[0]
