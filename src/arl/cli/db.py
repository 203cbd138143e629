"""``arl-run db``: create a store, upgrade its schema, show its revision.

SQLAlchemy and Alembic are imported only when a command runs: ``arl-run`` imports this
module to list its commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from arl.cli.common import fail, store_option

if TYPE_CHECKING:
    from sqlalchemy import Engine


@click.group()
def db() -> None:
    """Create a store or upgrade its schema.

    A PostgreSQL database must exist (createdb); a SQLite file is created.
    """


@db.command()
@store_option
def init(store: str | None) -> None:
    """Create the schema in an empty store.

    A store already at this arl's revision is left as it is; an older one is not
    touched (exit code 1): upgrade it with `arl-run db upgrade`.
    """
    from arl.store import migrate

    def run(engine: Engine, where: str) -> str:
        before, after = migrate.create(engine)
        migrate.check(after, where)
        if before.empty:
            return f"created the store {where} at schema revision {after.revision}"
        return f"the store {where} is already at schema revision {after.revision}"

    _with_store(store, run)


@db.command()
@store_option
def upgrade(store: str | None) -> None:
    """Migrate the store to this arl's schema revision; an empty store is created."""
    from arl.store import migrate

    def run(engine: Engine, where: str) -> str:
        before, after = migrate.upgrade(engine, where)
        if before == after:
            return f"the store {where} is already at schema revision {after}"
        if before is None:
            return f"created the store {where} at schema revision {after}"
        return f"upgraded the store {where} from schema revision {before} to {after}"

    _with_store(store, run)


@db.command()
@store_option
def current(store: str | None) -> None:
    """Show the store's schema revision and this arl's; exit code 1 unless they match."""
    from arl.store import migrate

    def run(engine: Engine, where: str) -> str:
        with engine.connect() as conn:
            state = migrate.schema_state(conn)
        revision = state.revision or ("none (empty)" if state.empty else "none")
        click.echo(f"{where}: schema revision {revision}, this arl's {migrate.HEAD}")
        migrate.check(state, where)  # says what to do when they differ
        return "up to date"

    _with_store(store, run, create=False)


def _with_store(store: str | None, run: Callable[[Engine, str], str], *, create: bool = True) -> None:
    """Run ``run`` on an engine for the store and print what it returns; print the error
    and exit 1 when it raises :class:`ArlError` or the database fails. With ``create``
    False, a SQLite file that does not exist is an error rather than created."""
    from sqlalchemy.exc import SQLAlchemyError

    from arl.errors import ArlError
    from arl.store.engine import StoreNotFound, connect_engine, describe_location, short_error
    from arl.store.location import store_url

    url = store_url(store)
    where = describe_location(url)
    try:
        engine = connect_engine(url, create=create)
        try:
            click.echo(run(engine, where))
        finally:
            engine.dispose()
    except StoreNotFound as exc:
        fail(f"there is no store at {exc.location}")
    except ArlError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(f"cannot open the store {where}: {short_error(exc)}")
