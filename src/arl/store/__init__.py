"""The SQL store: every run, phase, episode, environment step and agent action.

:mod:`arl.store.schema` holds the tables, :mod:`arl.store.engine` opens a store,
:mod:`arl.store.migrate` keeps its schema revision (migrations in ``migrations/``),
:class:`arl.store.writer.StoreWriter` is the one writer of a run,
:mod:`arl.store.query` answers the questions the rest of arl asks of a store, and
:mod:`arl.store.commands` is ``arl-run db``. See docs/store.md.
"""

# Nothing is imported here: the CLI needs `arl.store.location` without SQLAlchemy.
