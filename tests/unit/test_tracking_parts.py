"""arl.results.tracking's pure parts (series names, the file as MLflow params, which
folder a TensorBoard export takes) and ``arl-run results export``'s answers that need no
store: a missing ``tracking`` extra, and options that do not go together. The exports
themselves: tests/integration/test_tracking.py."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import arl.results as results
import arl.results.tracking as tracking
from arl.cli import main
from arl.errors import ArlError
from arl.results.tracking import (
    MAX_KEY,
    MAX_PARAM_VALUE,
    OWNER_FILE,
    TRUNCATED,
    MissingExtra,
    flat_params,
    series_key,
    tensorboard_folder,
)

MLFLOW_NAME = re.compile(r"[/\w.\- :]*")  # mlflow.utils.validation: what a key may hold
TENSORBOARD_TAG = re.compile(r"[-/\w.]*")  # tensorboardX.summary: what a tag may hold


def acceptable(key: str) -> bool:
    """Whether MLflow (its characters; no name a path would normalize to another, as
    mlflow.utils.validation.path_not_unique) and TensorBoard (its characters; no leading
    '/', which tensorboardX strips) both take ``key`` as it is."""
    import posixpath

    normal = posixpath.normpath(key)
    return (
        MLFLOW_NAME.fullmatch(key) is not None
        and TENSORBOARD_TAG.fullmatch(key) is not None
        and normal == key
        and normal != "."
        and not normal.startswith(("..", "/"))
        and len(key) <= MAX_KEY
    )


def test_a_series_name_both_tools_accept_is_kept_and_any_other_made_acceptable_and_distinct() -> None:
    assert series_key("train", "dqn", "metrics", "loss/td", "worker1") == "train/dqn/metrics/loss/td/worker1"
    odd = ["../up", "a//b", "./x", "x/.", "sp ace", "c:olon", "tab\t", "", "/lead", "trail/", "x" * 300]
    keys = [series_key("phase", "agent", "metrics", name) for name in odd]
    assert all(acceptable(key) for key in keys), keys
    assert len(set(keys)) == len(keys)
    assert series_key("p", "a", "metrics", "sp ace") != series_key("p", "a", "metrics", "sp_ace")
    assert series_key("p", "a", "metrics", "ünï") == "p/a/metrics/ünï"  # letters of any script are letters
    assert series_key("..", "x").startswith("_")


def test_the_resolved_file_becomes_one_param_a_value_keyed_by_its_path() -> None:
    document = {
        "uid": "r",
        "seed": 3,
        "schedule": [{"train": {"phase_config": {"episodes": 2, "deterministic": True}, "note": None}}],
        "layers": [64, 64],
        "params": {},
        "gamma": 0.99,
        "odd key": {"x[0]": "y"},
    }
    params = flat_params(document)
    assert params == {
        "uid": "r",
        "seed": "3",
        "schedule.0.train.phase_config.episodes": "2",
        "schedule.0.train.phase_config.deterministic": "true",
        "schedule.0.train.note": "null",
        "layers": "[64, 64]",
        "params": "{}",
        "gamma": "0.99",
        series_key("odd key.x[0]"): "y",
    }
    assert all(acceptable(key) for key in params)


def test_a_key_holding_a_dot_never_hides_the_value_of_the_same_path() -> None:
    document = {"a.b": 1, "a": {"b": 2, "c.d": 3}, "x": {1: "int", "1": "text"}, "env": {"s0.x": 4}}
    params = flat_params(document)
    assert len(params) == 6  # every value kept
    # the path's own value keeps the plain key, and so does a dotted key alone
    assert {key: params[key] for key in ("a.b", "x.1", "a.c.d", "env.s0.x")} == {
        "a.b": "2",
        "x.1": "text",
        "a.c.d": "3",
        "env.s0.x": "4",
    }
    apart = {key: value for key, value in params.items() if key not in ("a.b", "x.1", "a.c.d", "env.s0.x")}
    assert sorted(apart.values()) == ["1", "int"]
    assert all(re.fullmatch(r"(a\.b|x\.1)-[0-9a-f]{8}", key) for key in apart), apart
    assert flat_params(dict(reversed(document.items()))) == params  # whatever the order
    assert all(acceptable(key) for key in params)


def test_a_param_longer_than_mlflow_takes_is_cut_and_says_where_the_whole_is() -> None:
    params = flat_params(
        {"short": "s" * MAX_PARAM_VALUE, "long": "l" * (MAX_PARAM_VALUE + 1), "list": list(range(3000))}
    )
    assert params["short"] == "s" * MAX_PARAM_VALUE
    assert len(params["long"]) == len(params["list"]) == MAX_PARAM_VALUE
    assert params["long"].endswith(TRUNCATED)
    assert "experiment.yml" in TRUNCATED
    assert params["list"].startswith("[0, 1, 2, ")
    assert params["list"].endswith(TRUNCATED)


# -- which folder a TensorBoard export takes -------------------------------------------------


def test_a_tensorboard_export_takes_its_uids_folder_unless_another_runs_export_has_it(tmp_path: Path) -> None:
    def owner(run_id: int, store: str = "/data/arl.db", uid: str = "sweep-1") -> dict[str, object]:
        return {"store": store, "run_id": run_id, "uid": uid}

    def claim(folder: Path, of: dict[str, object]) -> Path:
        folder.mkdir()
        (folder / OWNER_FILE).write_text(json.dumps(of))
        return folder

    root = tmp_path.resolve()
    first = claim(tensorboard_folder(root, owner(1)), owner(1))
    assert first == root / "sweep-1"
    assert tensorboard_folder(root, owner(1)) == first  # its own export again
    second = claim(tensorboard_folder(root, owner(2)), owner(2))
    assert second == root / "sweep-1-run2"
    assert tensorboard_folder(root, owner(2)) == second
    # The same run id of another store: a name with a hash of the store.
    elsewhere = claim(tensorboard_folder(root, owner(2, "/other/arl.db")), owner(2, "/other/arl.db"))
    assert re.fullmatch(r"sweep-1-run2-[0-9a-f]{8}", elsewhere.name)
    assert tensorboard_folder(root, owner(2, "/other/arl.db")) == elsewhere
    # A folder that is not an export of this run (no owner file, or one that cannot be read) is skipped.
    (root / "mine").mkdir()
    (root / "mine-run3").mkdir()
    (root / "mine-run3" / OWNER_FILE).write_text("{not json")
    assert tensorboard_folder(root, owner(3, uid="mine")).name.startswith("mine-run3-")
    (root / tensorboard_folder(root, owner(3, uid="mine")).name).mkdir()
    with pytest.raises(ArlError, match=r"cannot export run 3 \(mine\) into .*: .* is there and holds something else"):
        tensorboard_folder(root, owner(3, uid="mine"))


# -- without the extra ------------------------------------------------------------------------

MISSING = {"tensorboard": ("tensorboardX",), "mlflow": ("mlflow", "mlflow.tracking", "mlflow.exceptions")}


@pytest.mark.parametrize("fmt", ["tensorboard", "mlflow"])
def test_without_the_tracking_extra_export_says_what_to_install_and_exits_2_before_reading_the_store(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in MISSING[fmt]:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    store = tmp_path / "no-such.db"
    args = ["results", "export", "run", "--format", fmt, "-o", str(tmp_path / "out"), "--store", f"sqlite:///{store}"]
    ran = CliRunner().invoke(main, args)
    assert ran.exit_code == 2, ran.output
    assert "pip install 'arl-core[tracking]'" in ran.stderr
    assert ran.stderr.startswith("error: exporting to ")
    assert not store.exists()
    assert not (tmp_path / "out").exists()

    export: Any = results.to_tensorboard if fmt == "tensorboard" else results.to_mlflow
    with pytest.raises(MissingExtra, match=re.escape("pip install 'arl-core[tracking]'")):
        export("run", tmp_path / "out", store=store)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--format", "tensorboard", "--table", "actions", "-o", "tb"], "--table is for csv and parquet files"),
        (["--format", "csv", "-o", "."], "is a folder: give a file, or --format tensorboard|mlflow"),
    ],
)
def test_export_options_that_do_not_go_together_are_a_usage_error(args: list[str], says: str) -> None:
    ran = CliRunner().invoke(main, ["results", "export", "run", *args])
    assert ran.exit_code == 2
    assert says in ran.stderr


def test_a_path_whose_suffix_names_no_format_is_a_usage_error_that_lists_every_format(tmp_path: Path) -> None:
    ran = CliRunner().invoke(main, ["results", "export", "run", "-o", str(tmp_path / "out")])
    assert ran.exit_code == 2
    assert "give --format csv or parquet (a file), tensorboard or mlflow (a folder)" in ran.stderr


@pytest.mark.parametrize("fmt", ["tensorboard", "mlflow"])
def test_exporting_into_a_file_that_is_not_a_folder_says_so_and_leaves_it_alone(fmt: str, tmp_path: Path) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    ran = CliRunner().invoke(main, ["results", "export", "run", "--format", fmt, "-o", str(taken)])
    assert ran.exit_code == 2  # a usage error, as a folder given for a file is
    assert f"{str(taken)!r} is a file: --format {fmt} writes into a folder" in ran.stderr
    # to_tensorboard and to_mlflow check it too (through _folder: not called here, as it would
    # import the extras, which costs seconds)
    with pytest.raises(ArlError, match=f"cannot export into {re.escape(str(taken))}: it is a file"):
        tracking._folder(taken)
    assert taken.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
