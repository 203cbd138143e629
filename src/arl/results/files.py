"""Writing one table of a run to a CSV or Parquet file, in bounded memory.

A file needs its columns before its first row, and JSON columns spread into as many
columns as the run has sensor, setpoint and reward ids. So the steps and actions of a
run are read twice, a chunk at a time: once to learn the columns (and, for Parquet,
each column's type), once to write. The second read stops at the last row the first
one saw, so a run still writing cannot add rows (or columns) in between. The file is
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from arl.errors import ArlError
from arl.results import queries as q
from arl.results.common import FORMATS, TABLES, require
from arl.results.queries import Record, Store

_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_INT64 = range(-(2**63), 2**63)

Chunks = Callable[[int | None], Iterator[list[Record]]]
"""A table's rows in chunks; given an id, only rows up to that id (see the module doc)."""


def export(
    run: str | int,
    path: str | os.PathLike[str],
    *,
    table: str = "steps",
    format: str | None = None,
    store: Store = None,
    chunk_rows: int = q.CHUNK_ROWS,
) -> int:
    """Write ``table`` (``steps``, ``actions`` or ``episodes``) of ``run`` to ``path`` as
    ``format`` (``csv`` or ``parquet``; by default from the suffix of ``path``) and return
    the number of rows written. Columns are those of :func:`arl.results.steps`,
    :func:`~arl.results.actions` and :func:`~arl.results.episodes`; in CSV, lists and
    dicts are written as JSON, times as ISO 8601."""
    path = Path(path)
    fmt = format_of(path, format)
    if table not in TABLES:
        raise ArlError(f"no table {table!r} to export; choose one of {', '.join(TABLES)}")
    if fmt == "parquet":
        require("pyarrow.parquet", "parquet files")  # before reading the run, not after
    with q.reading(store) as reader:
        fixed, chunks = _source(reader, q.find_run(reader, run)["id"], table, chunk_rows)
        columns, kinds, last_id = _survey(fixed, chunks(None))
        rows = chunks(last_id or 0)  # ids start at 1: no row seen, none read
        if fmt == "csv":
            return _atomically(path, lambda partial: _write_csv(partial, columns, rows))
        return _atomically(path, lambda partial: _write_parquet(partial, columns, kinds, rows))


def format_of(path: Path, given: str | None) -> str:
    """The file format: the one given, else the one the suffix of ``path`` names."""
    fmt = given or _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ArlError(f"cannot tell the format of {path} from its suffix: give --format {' or '.join(FORMATS)}")
    if fmt not in FORMATS:
        raise ArlError(f"no export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def _source(reader: q.Reader, run_id: int, table: str, chunk_rows: int) -> tuple[tuple[str, ...], Chunks]:
    """The columns every file of ``table`` has, and its rows."""
    if table == "episodes":  # one row an episode: they fit in memory
        episodes = q.episode_table(reader, run_id)
        return tuple(episodes.columns), lambda _last_id: iter([episodes.records])
    flat = q.FLAT_TABLES[table]
    return flat.columns, lambda last_id: q.flat_chunks(reader, run_id, flat, up_to_id=last_id, chunk_rows=chunk_rows)


def _survey(
    fixed: tuple[str, ...], chunks: Iterable[list[Record]]
) -> tuple[list[str], dict[str, set[str]], int | None]:
    """The columns (``fixed``, then the others in the order they first appear), the kinds
    of value each holds, and the largest row id seen."""
    kinds: dict[str, set[str]] = {column: set() for column in fixed}
    last_id: int | None = None
    for chunk in chunks:
        for record in chunk:
            for column, value in record.items():
                kinds.setdefault(column, set()).add(_kind(value))
            row_id = record.get("_id")
            if row_id is not None and (last_id is None or row_id > last_id):
                last_id = row_id
    kinds.pop("_id", None)
    return q.column_order(fixed, kinds), kinds, last_id


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if value in _INT64 else "json"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, list) and all(_kind(v) in ("int", "float") for v in value):
        return "list[float]" if any(isinstance(v, float) for v in value) else "list[int]"
    return "json"


def _atomically(path: Path, write: Callable[[Path], int]) -> int:
    """Run ``write`` on a temporary file next to ``path``, then rename it to ``path``."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        written = write(partial)
        os.replace(partial, path)
    except OSError as exc:
        raise ArlError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if partial.exists():
            partial.unlink()
    return written


def _write_csv(path: Path, columns: list[str], chunks: Iterable[list[Record]]) -> int:
    written = 0
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for chunk in chunks:
            writer.writerows([_csv_value(record.get(column)) for column in columns] for record in chunk)
            written += len(chunk)
    return written


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _write_parquet(path: Path, columns: list[str], kinds: dict[str, set[str]], chunks: Iterable[list[Record]]) -> int:
    pa: Any = require("pyarrow", "parquet files")
    pq: Any = require("pyarrow.parquet", "parquet files")
    types = {column: _arrow_type(pa, kinds[column]) for column in columns}
    schema = pa.schema([(column, pa.string() if kind is None else kind) for column, kind in types.items()])
    written = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for chunk in chunks:
            arrays = []
            for column in columns:
                values = [record.get(column) for record in chunk]
                if types[column] is None:  # mixed or nested: as JSON text
                    values = [None if v is None else json.dumps(v) for v in values]
                arrays.append(pa.array(values, type=schema.field(column).type))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            written += len(chunk)
    return written


def _arrow_type(pa: Any, kinds: set[str]) -> Any:
    """The Arrow type of a column holding values of ``kinds``; None: JSON text."""
    kinds = kinds - {"null"}
    simple = {
        frozenset({"bool"}): pa.bool_(),
        frozenset({"int"}): pa.int64(),
        frozenset({"float"}): pa.float64(),
        frozenset({"int", "float"}): pa.float64(),
        frozenset({"str"}): pa.string(),
        frozenset({"datetime"}): pa.timestamp("us", tz="UTC"),
        frozenset({"list[int]"}): pa.list_(pa.int64()),
        frozenset({"list[float]"}): pa.list_(pa.float64()),
        frozenset({"list[int]", "list[float]"}): pa.list_(pa.float64()),
        frozenset(): pa.string(),
    }
    return simple.get(frozenset(kinds))
