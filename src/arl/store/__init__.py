"""The SQL store: every run, phase, episode, environment step and agent action.

:mod:`arl.store.schema` holds the tables, :mod:`arl.store.engine` opens a store,
:class:`arl.store.writer.StoreWriter` is the one writer of a run, and
:mod:`arl.store.query` answers the questions the rest of arl asks of a store.
"""

# Nothing is imported here: the CLI needs `arl.store.location` without SQLAlchemy.
