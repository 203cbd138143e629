"""Where a run's own modules are found: the experiment file's folder and its ``paths:``.

``module:Class`` imports as Python imports: what is installed first, then ``PYTHONPATH``,
then these folders, appended (a module of the user's never hides an installed one of the
same name, nor the standard library's). They go on ``sys.path`` of the process that reads
the files before it forks the checking child and the fork server; every process of the
run is a fork of those, or (the fork server, spawned where the starter has threads) is
sent that ``sys.path``. Not on ``PYTHONPATH``: a fresh interpreter puts that *before* the
standard library, where a ``selectors.py`` beside a file would hide the real one.

``paths:`` is read here with a plain YAML load, before the file's check, since the check
itself imports the classes; what is wrong with the key (not a list of text, a folder
that is not there) the check reports at its line (:func:`problems`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

KEY = "paths"


def resolve(entry: str, base: str) -> str:
    """An entry of ``paths:`` as an absolute folder: ``~`` expanded, relative to ``base``."""
    return os.path.abspath(os.path.join(base, os.path.expanduser(entry)))


def folders(file: str, data: Any, base: str | None = None) -> list[str]:
    """The file's folder (or ``base``), then each text entry of its ``paths:``, resolved
    against that folder; entries of the wrong type are left to the check."""
    base = os.path.abspath(base if base is not None else os.path.dirname(file) or ".")
    found = [base]
    listed = data.get(KEY) if isinstance(data, dict) else None
    if isinstance(listed, list):
        found += [resolve(entry, base) for entry in listed if isinstance(entry, str) and entry]
    return found


def of_file(file: str, base: str | None = None) -> list[str]:
    """:func:`folders` of an experiment file as it is on disk. A file that does not read
    gives its folder alone: the check says what is wrong with it."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        with open(file, encoding="utf-8") as stream:
            data = YAML(typ="safe", pure=True).load(stream)
    except (OSError, UnicodeDecodeError, YAMLError, ValueError):
        data = None
    return folders(file, data, base)


_wanted: list[str] = []  # every folder use() was given (and using() has not taken off)


def wanted() -> tuple[str, ...]:
    """The folders the runs' modules are found in, as :func:`use` was given them: what a
    process on another machine puts on its path (``--backend ray``)."""
    return tuple(dict.fromkeys(_wanted))


def use(found: Iterable[str]) -> list[str]:
    """Append ``found`` to ``sys.path`` (each once, in order); the folders it added."""
    added = []
    for folder in dict.fromkeys(found):
        _wanted.append(folder)
        if folder not in sys.path:
            sys.path.append(folder)
            added.append(folder)
    return added


@contextlib.contextmanager
def using(found: Iterable[str]) -> Iterator[None]:
    """``found`` on ``sys.path`` for the block, then taken off again (those it added): a
    library caller's path is as it was after the run."""
    found = list(dict.fromkeys(found))  # once each, as use() takes them: a folder twice is one use
    added = use(found)
    try:
        yield
    finally:
        for folder in found:
            with contextlib.suppress(ValueError):
                _wanted.remove(folder)
        for folder in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)


def problems(listed: Any, base: str) -> Iterator[tuple[int, str]]:
    """(index, message) for each entry of ``paths:`` that names no folder (the schema
    says what is not text)."""
    if not isinstance(listed, list):
        return
    for index, entry in enumerate(listed):
        if not isinstance(entry, str) or not entry:
            continue
        folder = resolve(entry, base)
        if not os.path.isdir(folder):
            what = "is a file" if os.path.exists(folder) else "does not exist"
            yield (
                index,
                (
                    f"{folder} {what}: give a folder that holds your modules, absolute or relative to "
                    f"the experiment file's folder ({base})"
                ),
            )
