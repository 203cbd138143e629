"""What the benchmarks that generate experiment files share: writing a file, and letting
arl's processes import the components in this folder (learnstop, scalekit)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

HERE = Path(__file__).resolve().parent


def dump(document: dict[str, Any]) -> str:
    """The document as YAML, every mapping written out where it is (no anchors)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.representer.ignore_aliases = lambda _data: True
    text = io.StringIO()
    yaml.dump(document, text)
    return text.getvalue()


def importable_by_runs() -> None:
    """Put this folder on the PYTHONPATH of the arl-runs this process starts (their
    processes inherit it), so a file may name ``learnstop:...`` or ``scalekit:...``."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(HERE) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), *paths]))
