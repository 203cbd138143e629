"""A run in the tools people already watch training in: TensorBoard event files and a
local MLflow store (``arl-run results export RUN --format tensorboard|mlflow -o DIR``).

Both get the same series, named alike:

* ``<phase>/<agent>/return``: the agent's return in each episode of the phase that ran
  to its end (not one still running or cut short, :data:`CUT_SHORT`), at step = the
  episode's number in the phase, counted over all its workers in the order
  :func:`arl.results.queries.episode_records` lists them (episode index, then worker:
  with W workers, worker w's k-th episode is number k * W + w while all run alike), at
  the time the episode ended;
* ``<phase>/<agent>/metrics/<name>`` (the brain's) and
  ``<phase>/<agent>/metrics/<name>/worker<w>`` (worker w's muscle): what ``log_metric``
  stored, at its own step and time.

A name is kept to what both tools accept (letters, digits, ``_ - . /``); one that had to
change gets a short hash of the original, so two names never share a series.

tensorboardX and mlflow-skinny are an optional extra (``pip install
'arl-core[tracking]'``), imported only here and only when called.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import func, select

from arl.errors import ArlError
from arl.names import inside, path_part
from arl.results import queries as q
from arl.results.queries import Record, Store
from arl.status import Ending, RunStatus
from arl.store.schema import MetricRow, PhaseRow, RunRow

TRACKING_EXTRA = "arl-core[tracking]"
"""The install extra that brings tensorboardX and mlflow-skinny."""

MLFLOW_DB = "mlflow.db"
"""The MLflow store's SQLite file inside the export folder; artifacts go to ``artifacts/``."""

MLFLOW_DEFAULT_EXPERIMENT = "arl"
"""The MLflow experiment of a run whose file has no ``experiment_uid``."""

OWNER_FILE = ".arl-export.json"
"""In each TensorBoard export folder: the store, id and uid of the run exported there."""

RESOLVED_FILE = "experiment.yml"
EPISODES_FILE = "episodes.csv"

MAX_KEY = 250  # MLflow's longest param, metric and tag key
MAX_PARAM_VALUE = 6000  # MLflow's longest param value
MAX_TAG_VALUE = 8000  # MLflow's longest tag value
PARAMS_PER_BATCH = 100  # MLflow's log_batch limits
METRICS_PER_BATCH = 1000

CUT_SHORT = frozenset(
    {Ending.INTERRUPTED, Ending.FAILED, Ending.WORKER_DIED}
    | {status.lower() for status in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.INTERRUPTED)}
)
"""Why an episode that did not run to its end ended: arl stopped it, or it was still open
when its run ended (:func:`arl.store.query.close_open_rows` gives the run's status)."""

TRUNCATED = f" ... [truncated; the whole file is the artifact {RESOLVED_FILE}]"
_BAD_CHARACTER = re.compile(r"[^-\w./]")  # TensorBoard's tag alphabet; MLflow's allows more
_SQLALCHEMY_NOLOAD = r"The ``noload`` loader strategy is deprecated"
_MLFLOW_STATUS = {"FINISHED": "FINISHED", "FAILED": "FAILED", "INTERRUPTED": "KILLED"}


class MissingExtra(ArlError):
    """An export needs a library of the ``tracking`` extra that is not installed."""


def require_tracking(module: str, purpose: str) -> ModuleType:
    """``module``, imported; or :class:`MissingExtra` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = {"tensorboardX": "tensorboardX", "mlflow": "mlflow-skinny"}[module.partition(".")[0]]
        raise MissingExtra(
            f"{purpose} needs {package}, which is not installed: pip install '{TRACKING_EXTRA}' "
            f"(or pip install {package})"
        ) from exc


# -- what both formats write ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scalar:
    """One value of one series: a return (``kind`` "return") or a logged metric ("metric")."""

    key: str
    value: float
    step: int
    time: float  # seconds since 1970
    kind: str


def series_key(*parts: str) -> str:
    """``parts`` joined by ``/`` into a name TensorBoard and MLflow both take as it is.

    Characters outside letters, digits, ``_ - . /`` become ``_``; empty, ``.`` and ``..``
    path components (which MLflow refuses) become ``_``; a name that changed, or is longer
    than MLflow's 250 characters, ends in ``-`` and a hash of the original.
    """
    raw = "/".join(parts)
    components = _BAD_CHARACTER.sub("_", raw).split("/")
    key = "/".join("_" if c in ("", ".") else "__" if c == ".." else c for c in components)
    if key.startswith(".."):  # MLflow refuses a name that would resolve outside as a path
        key = "_" + key
    if key == raw and len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{key[: MAX_KEY - len(digest) - 1]}-{digest}"


def return_scalars(reader: q.Reader, run_id: int) -> list[Scalar]:
    """Each agent's return in each episode that ran to its end, numbered within its phase
    (module doc)."""
    returns = q.agent_returns(reader, run_id)
    scalars: list[Scalar] = []
    number: dict[int, int] = {}
    for episode in q.episode_records(reader, run_id):
        phase = episode["phase"]
        step = number[phase] = number.get(phase, -1) + 1  # counted even when not ended
        if episode["ended_at"] is None or episode["end_reason"] in CUT_SHORT:  # its return is partial
            continue
        ended = episode["ended_at"].timestamp()
        for agent, value in sorted(returns.get(episode["episode_id"], {}).items()):
            scalars.append(Scalar(series_key(episode["phase_name"], agent, "return"), value, step, ended, "return"))
    return scalars


def metric_scalars(reader: q.Reader, run_id: int) -> Iterator[Scalar]:
    """What the run's brains and muscles logged, read a chunk at a time."""
    m = MetricRow
    query = (
        select(PhaseRow.name, m.agent, m.worker, m.name, m.step, m.value, m.time)
        .join(PhaseRow, m.phase_id == PhaseRow.id)
        .where(m.run_id == run_id)
        # coalesce: SQLite sorts NULL first, PostgreSQL last; the brain's come first on both
        .order_by(PhaseRow.index, m.agent, func.coalesce(m.worker, -1), m.name, m.step, m.id)
    )
    rows = reader.conn.execution_options(yield_per=q.CHUNK_ROWS).execute(query)
    keys: dict[tuple[str, str, int | None, str], str] = {}
    for phase, agent, worker, name, step, value, time in rows:
        series = (phase, agent, worker, name)
        if series not in keys:
            by = () if worker is None else (f"worker{worker}",)
            keys[series] = series_key(phase, agent, "metrics", name, *by)
        yield Scalar(keys[series], value, step, time.timestamp(), "metric")


def _run_extras(reader: q.Reader, run_id: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The run's resolved experiment file and its swept values (None: no sweep)."""
    row = reader.conn.execute(select(RunRow.document, RunRow.swept).where(RunRow.id == run_id)).one()
    return dict(row.document or {}), row.swept


class _Counted:
    """Scalars passed through, counted by kind."""

    def __init__(self, scalars: Iterable[Scalar]) -> None:
        self._scalars = scalars
        self.counts = {"return": 0, "metric": 0}

    def __iter__(self) -> Iterator[Scalar]:
        for scalar in self._scalars:
            self.counts[scalar.kind] += 1
            yield scalar


# -- TensorBoard ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TensorBoardExport:
    """What :func:`to_tensorboard` wrote: the run (its uid), its folder of event files,
    and how many returns and metric values are in it."""

    uid: str
    path: Path
    returns: int
    metrics: int


def to_tensorboard(run: str | int, directory: str | os.PathLike[str], *, store: Store = None) -> TensorBoardExport:
    """Write ``run``'s returns and metrics (module doc) as TensorBoard event files in a
    folder of its own in ``directory``, one TensorBoard run per arl run: ``tensorboard
    --logdir directory`` then shows every run exported there side by side.

    The folder is named after the run's uid, ``directory/<uid>/``; a uid repeats when a
    file runs again, so a run whose uid names the folder of another export gets
    ``<uid>-run<id>/`` (:func:`tensorboard_folder`). Exporting a run again replaces its
    event files (files of other names in its folder are left alone). The events are
    written to a temporary folder first, so a failed export leaves the previous one as it
    was. TensorBoard keeps values as 32-bit floats.
    """
    tensorboard: Any = require_tracking("tensorboardX", "exporting to TensorBoard")
    root = _folder(directory)
    with q.reading(store) as reader:
        found = q.find_run(reader, run)
        scalars = _Counted(_chain(return_scalars(reader, found["id"]), metric_scalars(reader, found["id"])))
        owner = {"store": reader.location, "run_id": found["id"], "uid": found["uid"]}
        try:
            root.mkdir(parents=True, exist_ok=True)
            target = tensorboard_folder(root, owner)
            partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=root))
        except OSError as exc:
            raise ArlError(f"cannot write {root}: {exc.strerror or exc}") from exc
        try:
            _write_events(tensorboard, partial, scalars)
            _replace_events(partial, target, owner)
        except OSError as exc:
            raise ArlError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(partial)
    return TensorBoardExport(found["uid"], target, scalars.counts["return"], scalars.counts["metric"])


def tensorboard_folder(root: Path, owner: Mapping[str, Any]) -> Path:
    """The folder in ``root`` that the export of run ``owner`` (its store, id and uid)
    writes to: the first of ``<uid>``, ``<uid>-run<id>`` and ``<uid>-run<id>-<hash of the
    store>`` that is not there yet or was made by an export of the same run (its
    :data:`OWNER_FILE` says so). A folder without that file is someone else's."""
    uid, run_id = str(owner["uid"]), owner["run_id"]
    names = (uid, f"{uid}-run{run_id}", f"{uid}-run{run_id}-{_export_key(owner['store'], run_id)[:8]}")
    for name in names:
        target = inside(root, path_part(name))
        if not target.exists() or _owner(target) == dict(owner):
            return target
    raise ArlError(
        f"cannot export run {run_id} ({uid}) into {root}: {target} is there and holds something else; "
        "export into another folder"
    )


def _owner(folder: Path) -> dict[str, Any] | None:
    """Which run the export in ``folder`` is of (its store, id and uid), as its
    :data:`OWNER_FILE` says; None if it has none, or one that cannot be read."""
    try:
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return owner if isinstance(owner, dict) else None


def _folder(directory: str | os.PathLike[str]) -> Path:
    """``directory``, which must not be a file (a folder not there yet is made later)."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ArlError(f"cannot export into {path}: it is a file, and the export writes a folder")
    return path


def _chain(*groups: Iterable[Scalar]) -> Iterator[Scalar]:
    for group in groups:
        yield from group


def _write_events(tensorboard: Any, folder: Path, scalars: Iterable[Scalar]) -> None:
    # flush_secs: the writer's thread writes when its queue fills or at close, not on a clock
    writer = tensorboard.SummaryWriter(str(folder), max_queue=1000, flush_secs=3600)
    try:
        for scalar in scalars:
            writer.add_scalar(scalar.key, scalar.value, scalar.step, walltime=scalar.time)
    finally:
        writer.close()


def _replace_events(partial: Path, target: Path, owner: Mapping[str, Any]) -> None:
    """The event files in ``partial`` moved to ``target``, in place of those it had;
    ``target`` marked as the export of run ``owner`` first, so that no other run's export
    takes the folder over even if this one fails half-way."""
    target.mkdir(exist_ok=True)
    (target / OWNER_FILE).write_text(json.dumps(dict(owner), ensure_ascii=False) + "\n", encoding="utf-8")
    for old in target.glob("events.out.tfevents.*"):
        old.unlink()
    for new in partial.iterdir():
        os.replace(new, target / new.name)


# -- MLflow -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MlflowExport:
    """What :func:`to_mlflow` logged: the run (its uid), where (``tracking_uri``,
    ``experiment``), the MLflow run's id, and how many params, returns, metric values and
    artifacts; ``replaced`` counts the earlier exports of the same run it deleted."""

    uid: str
    tracking_uri: str
    experiment: str
    run_id: str
    params: int
    returns: int
    metrics: int
    artifacts: tuple[str, ...]
    replaced: int


def to_mlflow(run: str | int, directory: str | os.PathLike[str], *, store: Store = None) -> MlflowExport:
    """Log ``run`` to a local MLflow store in ``directory`` (``sqlite:///<directory>/mlflow.db``,
    artifacts in ``<directory>/artifacts``) as one MLflow run named after its uid, in the
    MLflow experiment named after its ``experiment_uid`` (``arl`` if it has none).

    Params: the resolved experiment file, flattened (``phases.0.episodes``; a list of
    plain values is one JSON value; a value longer than MLflow's 6000 characters is cut
    and says so). Tags: ``arl.status``, ``arl.version``, ``arl.end_reason``, ``arl.run_uid``,
    ``arl.run_id``, ``arl.seed``, ``arl.store``, ``arl.error`` and a sweep's values as
    ``arl.swept.<key>``. Metrics: returns and logged metrics (module doc). Artifacts: the
    resolved file (``experiment.yml``) and the episodes (``episodes.csv``). The MLflow run
    ends as the arl run did (FINISHED, FAILED, or KILLED for INTERRUPTED); a run still
    going stays RUNNING.

    Exporting a run again logs it anew, then deletes the earlier MLflow run of it.
    """
    # Imported outside _quiet_mlflow: importing mlflow sets up its loggers, which that restores.
    mlflow: Any = require_tracking("mlflow.tracking", "exporting to MLflow")
    errors: Any = require_tracking("mlflow.exceptions", "exporting to MLflow")
    root = _folder(directory).resolve()
    try:
        (root / "artifacts").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArlError(f"cannot write {root}: {exc.strerror or exc}") from exc
    uri = f"sqlite:///{root / MLFLOW_DB}"
    with q.reading(store) as reader, _quiet_mlflow():
        found = q.find_run(reader, run)
        try:
            client = mlflow.MlflowClient(tracking_uri=uri)
            return _log_run(client, reader, found, uri, (root / "artifacts").as_uri())
        except errors.MlflowException as exc:
            raise ArlError(f"MLflow refused the export to {uri}: {exc.message}") from exc
        except OSError as exc:
            raise ArlError(f"cannot write {root}: {exc.strerror or exc}") from exc


def _log_run(client: Any, reader: q.Reader, found: Record, uri: str, artifact_location: str) -> MlflowExport:
    entities: Any = importlib.import_module("mlflow.entities")
    document, swept = _run_extras(reader, found["id"])
    export_key = _export_key(reader.location, found["id"])
    name = found["experiment_uid"] or MLFLOW_DEFAULT_EXPERIMENT
    experiment_id = _experiment(client, name, artifact_location)
    tags = {**_tags(found, swept, reader.location), "arl.export_key": export_key}
    created = client.create_run(experiment_id, start_time=_ms(found["started_at"]), tags=tags, run_name=found["uid"])
    run_id: str = created.info.run_id
    try:
        params = flat_params(document)
        _log_params(client, entities, run_id, params)
        scalars = _Counted(_chain(return_scalars(reader, found["id"]), metric_scalars(reader, found["id"])))
        _log_metrics(client, entities, run_id, scalars)
        artifacts = _log_artifacts(client, run_id, found["id"], document, reader)
        if found["status"] in _MLFLOW_STATUS:
            end = None if found["ended_at"] is None else _ms(found["ended_at"])
            client.set_terminated(run_id, _MLFLOW_STATUS[found["status"]], end_time=end)
    except BaseException:
        client.delete_run(run_id)  # no half-logged run left behind, nor the earlier one lost
        raise
    replaced = _delete_earlier(client, experiment_id, export_key, keep=run_id)
    counts = scalars.counts
    return MlflowExport(
        found["uid"], uri, name, run_id, len(params), counts["return"], counts["metric"], artifacts, replaced
    )


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's calls without what it says that is not the user's business.

    * mlflow-skinny 3.18 declares its ORM relations with SQLAlchemy's ``noload``, which
      SQLAlchemy 2.1 deprecates: the warning comes once, when MLflow's store module
      configures its mappers, and is MLflow's to fix, not arl's or the user's.
    * MLflow logs at INFO when it creates or upgrades its tables ("Creating initial MLflow
      database tables..."): lowered to WARNING here, as arl's own output says what was
      done.

    Both are process-wide settings, restored on leaving (``warnings.catch_warnings`` is
    not thread-safe: an export is not meant to run beside other threads' warnings).
    """
    logger = logging.getLogger("mlflow")
    level = logger.level
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            from sqlalchemy.exc import SADeprecationWarning

            warnings.filterwarnings("ignore", _SQLALCHEMY_NOLOAD, SADeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def _export_key(location: str, run_id: int) -> str:
    """What names one run of one store among the MLflow runs: a hash (a tag value any
    MLflow filter can match without quoting)."""
    return hashlib.sha256(f"{location}\0{run_id}".encode()).hexdigest()[:16]


def _experiment(client: Any, name: str, artifact_location: str) -> str:
    """The id of MLflow experiment ``name``, created (artifacts under the export folder) if new."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_location))


def _delete_earlier(client: Any, experiment_id: str, export_key: str, *, keep: str) -> int:
    """Delete the earlier MLflow runs of the same arl run (MLflow keeps them, marked
    deleted, until ``mlflow gc``); how many."""
    earlier = client.search_runs([experiment_id], filter_string=f"tags.`arl.export_key` = '{export_key}'")
    for found in earlier:
        if found.info.run_id != keep:
            client.delete_run(found.info.run_id)
    return sum(found.info.run_id != keep for found in earlier)


def _tags(found: Record, swept: Mapping[str, Any] | None, location: str) -> dict[str, str]:
    tags = {
        "arl.run_uid": found["uid"],
        "arl.run_id": str(found["id"]),
        "arl.status": found["status"],
        "arl.version": found["arl_version"],
        "arl.seed": str(found["seed"]),
        "arl.store": location,
    }
    for column in ("end_reason", "experiment_uid", "error"):
        if found[column] is not None:
            tags[f"arl.{column}"] = found[column]
    for key, value in (swept or {}).items():
        tags[series_key(f"arl.swept.{key}")] = _text(value)
    return {key: _cut(value, MAX_TAG_VALUE, " ... [truncated]") for key, value in tags.items()}


def flat_params(document: Mapping[str, Any]) -> dict[str, str]:
    """The resolved experiment file as MLflow params: one per value, keyed by its path
    (``schedule.0.train.agents.0.brain.name``); a list of plain values is one JSON value, a
    list holding mappings is walked by index; values cut to MLflow's 6000 characters.

    A key holding a dot (``{"a.b": 1}``) or not text (``{1: x}``) joins into a path
    another value may have too (``{"a": {"b": 2}}``): then each value whose path has such
    a key is keyed by the path and a short hash of its parts (``a.b-<hash>``), so that no
    value hides another, and the plain one keeps the plain key."""
    found: list[tuple[tuple[Any, ...], bool, str]] = []  # each value's path, whether it is plain, its text

    def walk(value: Any, path: tuple[Any, ...], plain: bool) -> None:
        if isinstance(value, Mapping) and value:
            for key, item in value.items():
                walk(item, (*path, key), plain and isinstance(key, str) and "." not in key)
        elif isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
            for index, item in enumerate(value):
                walk(item, (*path, index), plain)
        else:
            found.append((path, plain, _cut(_text(value), MAX_PARAM_VALUE, TRUNCATED)))

    walk(document, (), True)
    keys = [series_key(".".join(map(str, path))) for path, _, _ in found]
    shared = {key for key, times in Counter(keys).items() if times > 1}
    params: dict[str, str] = {}
    for key, (path, plain, text) in zip(keys, found, strict=True):
        params[key if plain or key not in shared else _apart(key, path)] = text
    return params


def _apart(key: str, path: tuple[Any, ...]) -> str:
    """``key`` with a hash of the parts of ``path`` (their types too: ``1`` is not ``"1"``)."""
    digest = hashlib.sha256(repr(path).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{key[: MAX_KEY - len(digest) - 1]}-{digest}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _cut(text: str, limit: int, marker: str) -> str:
    return text if len(text) <= limit else text[: limit - len(marker)] + marker


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _log_params(client: Any, entities: Any, run_id: str, params: Mapping[str, str]) -> None:
    items = list(params.items())
    for start in range(0, len(items), PARAMS_PER_BATCH):  # MLflow's most in one call
        batch = [entities.Param(key, value) for key, value in items[start : start + PARAMS_PER_BATCH]]
        client.log_batch(run_id, params=batch)


def _log_metrics(client: Any, entities: Any, run_id: str, scalars: Iterable[Scalar]) -> None:
    batch: list[Any] = []
    for scalar in scalars:
        batch.append(entities.Metric(scalar.key, scalar.value, round(scalar.time * 1000), scalar.step))
        if len(batch) == METRICS_PER_BATCH:  # MLflow's most in one call
            client.log_batch(run_id, metrics=batch)
            batch = []
    if batch:
        client.log_batch(run_id, metrics=batch)


def _log_artifacts(
    client: Any, run_id: str, arl_run_id: int, document: dict[str, Any], reader: q.Reader
) -> tuple[str, ...]:
    """The resolved file as YAML and the run's episodes as CSV (``arl-run results export
    --table episodes``), logged as the MLflow run's artifacts."""
    from arl.results.files import export

    with tempfile.TemporaryDirectory(prefix="arl-mlflow-") as folder:
        (Path(folder) / RESOLVED_FILE).write_text(_yaml(document), encoding="utf-8")
        export(arl_run_id, Path(folder) / EPISODES_FILE, table="episodes", format="csv", store=reader.conn.engine)
        client.log_artifacts(run_id, folder)
    return (RESOLVED_FILE, EPISODES_FILE)


def _yaml(document: dict[str, Any]) -> str:
    """``document`` as YAML, its keys in the order the store gave them (the file's own on
    SQLite; PostgreSQL's JSONB orders them its way)."""
    from ruamel.yaml import YAML

    text = io.StringIO()
    YAML(typ="rt").dump(document, text)
    return text.getvalue()
