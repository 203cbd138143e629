"""The corpus of broken experiment files (tests/corpus/broken): each file declares, in
its leading comment lines, exactly what ``arl-run check`` must report about it::

    # What is wrong, in one sentence.
    # expect: 17:11: schedule.0.phase_0.agents.0.muscel: unknown key 'muscel'; did you mean 'muscle'?

One ``# expect:`` line per problem, in the order reported: ``line:col: path: message``,
positions counted in the file itself (the comment lines count too); a problem of the
whole file has no position (``# expect: message``). Files may name the classes of
tests/components, as a user's file names classes of the user's own modules.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from arl.config import load_experiment
from arl.errors import ConfigError

TESTS = Path(__file__).resolve().parents[1]
CORPUS = TESTS / "corpus" / "broken"
COMPONENTS = TESTS / "components"
FILES = sorted(CORPUS.glob("*.yml"))
FILE_NAME = re.compile(r"\d{2}-[a-z0-9]+(?:-[a-z0-9]+)*\.yml")
EXPECT = re.compile(r"# expect: (.+)")
POSITION = re.compile(r"\d+:\d+: ")


def declared(path: Path) -> list[str]:
    """The ``# expect:`` lines of the comment block that opens ``path``: what arl must report."""
    expect: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        match = EXPECT.fullmatch(line)
        if match is not None:
            expect.append(match[1])
    return expect


def reported(path: Path, expect: str) -> str:
    """An ``# expect:`` line as the problem reads in full, with the file's path in front."""
    return f"{path}:{expect}" if POSITION.match(expect) else f"{path}: {expect}"


@pytest.fixture(autouse=True, scope="module")
def _test_components_importable() -> Iterator[None]:
    """Corpus files name classes of tests/components, which `arl-run` gets on PYTHONPATH."""
    added = str(COMPONENTS) not in sys.path
    if added:
        sys.path.insert(0, str(COMPONENTS))
    yield
    if added:
        sys.path.remove(str(COMPONENTS))


def test_the_corpus_has_at_least_30_numbered_files_each_declaring_its_problems() -> None:
    assert len(FILES) >= 30
    assert sorted(CORPUS.iterdir()) == FILES  # a file the glob misses would never be tested
    names = [path.name for path in FILES]
    assert [name for name in names if not FILE_NAME.fullmatch(name)] == []
    numbers = [name[:2] for name in names]
    assert len(set(numbers)) == len(numbers)
    for path in FILES:
        expect = declared(path)
        assert expect, f"{path.name} declares no '# expect:' line"
        assert len(set(expect)) == len(expect), f"{path.name} declares a problem twice"


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_broken_file_reports_exactly_what_it_declares(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # anything the file managed to do would land here
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)  # as `arl-run check` loads: every class imported and checked
    found = [str(problem) for problem in caught.value.problems]
    assert str(caught.value) == "\n".join(found)
    assert found == [reported(path, expect) for expect in declared(path)]
    assert len(set(found)) == len(found)
    assert list(tmp_path.iterdir()) == []


CHECKED_BY_THE_CLI = (
    "02-yaml-bad-indentation.yml",
    "13-python-tag-refused.yml",  # would run `touch executed` in the working directory
    "56-test-component-missing-param.yml",  # needs tests/components on PYTHONPATH
    "78-three-mistakes.yml",
)


def test_arl_run_check_reports_the_corpus_and_creates_nothing(tmp_path: Path) -> None:
    paths = [CORPUS / name for name in CHECKED_BY_THE_CLI]
    store = tmp_path / "arl.db"
    pythonpath = os.pathsep.join(filter(None, [str(COMPONENTS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "ARL_STORE_URL": f"sqlite:///{store}"}
    env.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        [sys.executable, "-m", "arl.cli", "check", *map(str, paths)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    expected = [f"error: {reported(path, expect)}" for path in paths for expect in declared(path)]
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [*expected, f"{len(expected)} problems found; nothing was run."]
    assert not store.exists()
    assert not (tmp_path / "executed").exists()
    assert list(tmp_path.iterdir()) == []
