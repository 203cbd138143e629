"""Reading an experiment file into a RunSpec, or into a ConfigError listing every mistake.

The pipeline, and why it is shaped so (a module for each step):

1. *Read* (``source``): only a regular file of at most 10 MiB, as UTF-8 (a byte that is
   not is reported at its line and column).
2. *Parse* (``parse``) with ruamel.yaml's round-trip loader, which keeps the line and
   column of every key and value, after guarding the text against what would be built
   unsafely or without bound (tags, alias bombs, deep nesting, huge integers); then
   *flatten* into plain dicts/lists plus a position index keyed by path
   (``("schedule", 0, "phase_0", "agents")``). Everything after works on plain data; a
   path is enough to point at the text (``report``).
3. *Override*: ``--set`` and ``--sweep`` put their values in (``overrides``); a problem
   with such a value is reported at the option.
4. *Inherit* (``phases``): each phase takes the sections it omits from the previous
   phase (palaestrAI's semantics), remembering for every section where its text really is.
5. *Check* (``checker``, with ``classes``, ``params`` and ``probe``): the strict pydantic
   file schema and what it cannot express, every mistake at once.
6. *Build* (``build``) the frozen specs, only when nothing was wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from arl.config.checker import Checker, Progress, Stored
from arl.config.overrides import Override, OverrideError
from arl.config.overrides import apply as apply_override
from arl.config.parse import parse
from arl.config.probe import Prober
from arl.config.report import Report
from arl.config.source import read_source
from arl.config.spec import RunSpec
from arl.errors import ConfigError, Location, Problem

__all__ = ["Prober", "Progress", "Stored", "load_experiment", "load_experiment_text"]


def load_experiment(
    path: str | Path,
    *,
    resolve_classes: bool = True,
    overrides: Sequence[Override] = (),
    probe: bool | Prober = False,
    progress: Progress | None = None,
    stored: Stored | None = None,
) -> RunSpec:
    """Read and check the experiment file at ``path``; raises ConfigError with every
    problem. The keywords are those of :func:`load_experiment_text`."""
    text = read_source(Path(path))
    return load_experiment_text(
        text,
        str(path),
        resolve_classes=resolve_classes,
        overrides=overrides,
        probe=probe,
        progress=progress,
        stored=stored,
    )


def load_experiment_text(
    text: str,
    filename: str,
    *,
    resolve_classes: bool = True,
    overrides: Sequence[Override] = (),
    probe: bool | Prober = False,
    progress: Progress | None = None,
    stored: Stored | None = None,
) -> RunSpec:
    """Check an experiment file given as text; ``filename`` is only used in messages.

    ``overrides`` (``--set``, ``--sweep``) change values before anything is checked; a
    problem with an overridden value is reported at the option that set it.

    With ``resolve_classes`` every ``module:Class`` is imported and checked against the
    base class its role needs, and its params against the constructor's signature;
    without, only the spelling of the references is checked (for tools that read files
    of experiments whose code is not installed).

    With ``probe`` (and a file that is otherwise right) every environment is also set up
    as its process would set it up (built, its spaces described) and reset once, and
    every agent's sensor and actuator ids are checked against what it really provides.
    That runs the user's environment code: do it in a process of its own. A
    :class:`Prober` given instead of True probes each distinct environment once over
    several files. Probing needs ``resolve_classes`` (ValueError otherwise).

    ``stored``, if given, is asked (last, and only of a file otherwise right) about each
    brain a ``load: {run: ...}`` names; what it answers is reported at that ``run``.
    ``progress`` is told before the check imports a module, probes an environment or
    asks ``stored``.
    """
    if probe and not resolve_classes:
        raise ValueError("probing the environments needs their classes: probe=True needs resolve_classes=True")
    data, positions = parse(text, filename)
    report = Report(filename, positions)
    for override in overrides:
        try:
            report.overridden[apply_override(data, override)] = override.source
        except OverrideError as exc:
            report.problems.append(Problem(Location(override.source), "", str(exc)))
    prober = probe if isinstance(probe, Prober) else Prober() if probe else None
    checker = Checker(report, resolve_classes, prober=prober, progress=progress, stored=stored)
    spec = checker.check_run(data)
    if report.problems or spec is None:
        raise ConfigError(report.sorted())
    return spec
