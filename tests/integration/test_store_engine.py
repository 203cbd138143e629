"""Opening a store: SQLite's pragmas, stores that keep nothing, the store's URL and how
it is named in messages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from arl.errors import ArlError
from arl.store.engine import describe_location, open_store
from arl.store.location import DEFAULT_URL, PATIENCE, store_url
from arl.store.writer import StoreWriter


@pytest.mark.parametrize(("patience", "busy_timeout"), [(None, round(PATIENCE * 1000)), (2.5, 2500)])
def test_sqlite_connections_get_the_pragmas(tmp_path: Path, patience: float | None, busy_timeout: int) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url) if patience is None else open_store(url, patience=patience)
    with engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
    engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": busy_timeout,  # the store's patience: one setting, in seconds
        "foreign_keys": 1,
        "synchronous": 1,
    }


@pytest.mark.parametrize(
    "url", ["", "  ", "sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"]
)
def test_a_store_that_keeps_nothing_is_refused(url: str) -> None:
    expected = "is empty" if not url.strip() else "in-memory SQLite database: the rows of a run would be thrown away"
    with pytest.raises(ArlError, match=expected):
        open_store(url)
    with pytest.raises(ArlError, match=expected):
        StoreWriter(url, "inproc://unused").start()


def test_creating_a_store_logs_nothing_of_alembic(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    open_store(f"sqlite:///{tmp_path / 'new.db'}").dispose()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
    assert logging.getLogger("alembic").level == logging.NOTSET  # as it was


def test_store_url_and_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARL_STORE_URL", raising=False)
    assert store_url(None) == DEFAULT_URL
    monkeypatch.setenv("ARL_STORE_URL", "sqlite:///from-env.db")
    assert store_url(None) == "sqlite:///from-env.db"
    assert store_url("sqlite:///explicit.db") == "sqlite:///explicit.db"
    assert store_url("") == ""  # given empty: an error when opened, never the default in disguise
    monkeypatch.setenv("ARL_STORE_URL", "")
    assert store_url(None) == DEFAULT_URL  # an empty variable counts as unset

    monkeypatch.chdir(tmp_path)
    assert describe_location("sqlite:///runs/arl.db") == str(tmp_path / "runs" / "arl.db")
    masked = describe_location("postgresql://arl:s3cret@db.example:5432/arl")
    assert "s3cret" not in masked
    assert masked == "postgresql://arl:***@db.example:5432/arl"


def test_a_checkpoint_thread_that_cannot_connect_says_so_and_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store's file went away before the thread connected (a connection's pragmas
    then raise sqlite3's own error, not SQLAlchemy's): a warning, never an escaped exception."""
    import shutil

    from arl.store.checkpoint import WalCheckpointer

    folder = tmp_path / "gone"
    folder.mkdir()
    engine = open_store(f"sqlite:///{folder / 'store.db'}")
    engine.dispose()
    shutil.rmtree(folder)
    checkpointer = WalCheckpointer(engine)
    with caplog.at_level(logging.WARNING, logger="arl.store"):
        checkpointer.start()
        checkpointer.close()
    assert any("no connection for checkpoints" in r.getMessage() for r in caplog.records)
    engine.dispose()
