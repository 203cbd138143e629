"""``results plot``'s text from the store (uids, swept values, names) drawn as written:
matplotlib would read ``$...$`` as a formula; and what it still refuses at save is an
ArlError, not a traceback. Figures only, no store."""

from __future__ import annotations

from pathlib import Path

import pytest

from arl.errors import ArlError
from arl.results.plot import RunReturns, _save, draw_returns, draw_runs, literal

LABELS = ["sweep-0a  note=$\\nope$", "sweep-0b  price=$5, cost=$3"]  # a formula matplotlib cannot parse; a pair


def _records(phase_name: str, agent: str, returns: list[float]) -> list[dict[str, object]]:
    return [{"phase": 0, "phase_name": phase_name, "mode": "train", f"return.{agent}": value} for value in returns]


def test_dollars_in_labels_names_and_titles_are_drawn_as_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib import cbook

    runs = [RunReturns(label, _records("p$1$", "a$x$", [1.0, 2.0]), ["a$x$"]) for label in LABELS]
    figure = draw_runs("returns of $2$ runs", runs)
    assert _save(figure, tmp_path / "runs.png").stat().st_size > 0
    (legend,) = figure.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == [literal(label) for label in LABELS]
    shown = [*texts, figure.axes[0].get_ylabel(), figure.axes[0].texts[0].get_text()]
    assert not any(cbook.is_math_text(text) for text in shown)  # no formula: each $ shows as $

    one = draw_returns("run $\\nope$ (run id 1)", _records("p$", "a$x$", [1.0]), ["a$x$"])
    assert _save(one, tmp_path / "one.png").stat().st_size > 0


def test_text_matplotlib_cannot_draw_is_an_arl_error_and_no_file(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    figure = Figure()
    figure.suptitle("$\\nope$")  # not through arl's drawing, which escapes it
    target = tmp_path / "bad.png"
    with pytest.raises(ArlError, match=r"cannot draw .*bad\.png: matplotlib refused the figure's text: "):
        _save(figure, target)
    assert not target.exists()
