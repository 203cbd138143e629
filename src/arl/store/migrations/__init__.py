"""The store's Alembic migrations: ``env.py`` and one file a revision in ``versions/``.

They run through :mod:`arl.store.migrate` (``arl-run db upgrade``), never through an
``alembic.ini``: arl hands Alembic the connection. A new revision is written by hand
next to the others, ``down_revision`` naming the previous head, and
:data:`arl.store.migrate.REVISIONS` extended; the tests check that upgrading an empty
database yields exactly :mod:`arl.store.schema`.
"""
