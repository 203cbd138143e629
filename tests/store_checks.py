"""Checks that a store is consistent after a run ended any way: killed, failed, cut off."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, func, inspect, select, text

from arl.store.schema import Base


def check_consistent(engine: Engine) -> None:
    """Every table reads; the foreign keys are enforced (so no row is without its parent);
    every step stored once, with no more actions than its agents took; an ended episode
    that stored steps says how many it took; the backend's own integrity check passes."""
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            conn.execute(select(func.count()).select_from(table)).scalar_one()
        check_foreign_keys_enforced(conn)
        per_episode = conn.execute(
            text(
                "SELECT e.id, count(s.id), count(DISTINCT s.step), "
                "(SELECT count(*) FROM agent_actions a WHERE a.episode_id = e.id) "
                "FROM episodes e LEFT JOIN environment_steps s ON s.episode_id = e.id GROUP BY e.id"
            )
        ).all()
        for episode, rows, distinct, actions in per_episode:
            assert rows == distinct, f"episode {episode} stored a step twice"
            assert 2 * (rows - 1) <= actions <= 2 * rows, f"episode {episode}: {actions} actions for {rows} steps"
        uncounted = conn.execute(
            text(
                "SELECT e.id FROM episodes e WHERE e.ended_at IS NOT NULL AND e.steps IS NULL "
                "AND EXISTS (SELECT 1 FROM environment_steps s WHERE s.episode_id = e.id)"
            )
        ).all()
        assert uncounted == [], f"episodes ended with steps stored but no step count: {uncounted}"
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def check_foreign_keys_enforced(conn: Connection) -> None:
    """Every foreign key of the schema exists in the database and is checked on this
    connection: then no row can be without its parent, and counting orphans would prove
    nothing."""
    inspector = inspect(conn)
    for table in Base.metadata.sorted_tables:
        expected = {(fk.name, fk.referred_table.name) for fk in table.foreign_key_constraints}
        found = {(fk["name"], fk["referred_table"]) for fk in inspector.get_foreign_keys(table.name)}
        assert found == expected, table.name
    if conn.dialect.name == "sqlite":
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    else:  # "replica" would skip the triggers that check foreign keys; NOT VALID ones skip old rows
        assert conn.exec_driver_sql("SHOW session_replication_role").scalar() == "origin"
        unchecked = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"
        assert conn.exec_driver_sql(unchecked).scalar() == 0
