"""Migration 0006: SQLite's candidate index as WITHOUT ROWID tables, rows kept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import text

from feedd.app import build
from feedd.config import load_config
from feedd.store import migrate
from feedd.store.engine import make_engine
from tests.support import generate_stream

OBSERVED = datetime(2026, 3, 1, tzinfo=UTC)
COLUMNS = {"segments": "hash, article_id", "segment_df": "hash, articles"}
# The tables as migration 0003 made them: rowid tables, a second B-tree for the key.
BEFORE = {
    "segments": "CREATE TABLE segments (hash BIGINT NOT NULL, article_id INTEGER NOT NULL,"
    " CONSTRAINT pk_segments PRIMARY KEY (hash, article_id),"
    " CONSTRAINT fk_segments_article_id_articles FOREIGN KEY(article_id)"
    " REFERENCES articles (id))",
    "segment_df": "CREATE TABLE segment_df (hash BIGINT NOT NULL, articles INTEGER NOT NULL,"
    " CONSTRAINT pk_segment_df PRIMARY KEY (hash))",
}


def _clustered(engine: Any) -> dict[str, bool]:
    """Table -> stored WITHOUT ROWID."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE name IN ('segments', 'segment_df')")
        ).all()
    return {name: "WITHOUT ROWID" in sql.upper() for name, sql in rows}


def _rows(engine: Any) -> dict[str, list[tuple[int, int]]]:
    with engine.connect() as conn:
        return {
            table: [
                tuple(r) for r in conn.execute(text(f"SELECT {cols} FROM {table} ORDER BY 1, 2"))
            ]
            for table, cols in COLUMNS.items()
        }


def test_a_fresh_sqlite_database_has_the_clustered_layout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate.upgrade(engine)
    assert _clustered(engine) == {"segments": True, "segment_df": True}


@pytest.mark.parametrize("db_factory", ["sqlite", "postgresql"], indirect=True)
def test_0006_keeps_every_row_and_ingest_goes_on(db_factory: Callable[[str], str]) -> None:
    url = db_factory("before0006")
    app = build(load_config(None, env={}, overrides={"database.url": url}))
    stream = generate_stream(16)
    try:
        for name, data in stream[:12]:
            assert app.ingester.ingest_bytes(name, data, OBSERVED).status == "ingested"
    finally:
        app.close()
    engine = make_engine(url)
    before = _rows(engine)
    assert before["segments"] and before["segment_df"]
    # Back to the database 0005 left: on SQLite the rowid tables, same rows.
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
        if engine.dialect.name == "sqlite":
            for table, cols in COLUMNS.items():
                conn.execute(text(f"CREATE TABLE old_{table} AS SELECT {cols} FROM {table}"))
                conn.execute(text(f"DROP TABLE {table}"))
                conn.execute(text(BEFORE[table]))
                conn.execute(text(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM old_{table}"))
                conn.execute(text(f"DROP TABLE old_{table}"))
    if engine.dialect.name == "sqlite":
        assert _clustered(engine) == {"segments": False, "segment_df": False}

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _rows(engine) == before
    if engine.dialect.name == "sqlite":
        assert _clustered(engine) == {"segments": True, "segment_df": True}
        # And back: the rowid tables again, every row kept.
        script = ScriptDirectory.from_config(migrate.alembic_config())
        with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            script.get_revision("0006").module.downgrade()
        assert _clustered(engine) == {"segments": False, "segment_df": False}
        assert _rows(engine) == before
        with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            script.get_revision("0006").module.upgrade()
        assert _clustered(engine) == {"segments": True, "segment_df": True}
    engine.dispose()

    app = build(load_config(None, env={}, overrides={"database.url": url}))
    try:
        results = [app.ingester.ingest_bytes(n, d, OBSERVED) for n, d in stream[12:]]
        assert [r.status for r in results] == ["ingested"] * 4
        assert sum(r.new for r in results) > 0
        assert len(_rows(app.store.engine)["segments"]) > len(before["segments"])
    finally:
        app.close()
