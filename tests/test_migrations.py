"""Migrations: they build exactly the schema the code expects, and an
interrupted upgrade leaves the database as it was, ready to upgrade again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select

from feedd.store import migrate
from feedd.store.engine import make_engine
from feedd.store.schema import articles, dumps, metadata, revisions, sightings
from tests.support import TEST_MIGRATION, AppFactory, seed_files


def test_migrated_schema_matches_the_code(make_app: AppFactory) -> None:
    app = make_app()
    with app.store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []
    assert migrate.current_revision(app.store.engine) == migrate.head_revision()


def _counts(engine) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (dumps, articles, revisions, sightings)
        )


def _scripts(tmp_path: Path, tail: str) -> Path:
    location = tmp_path / "migrations"
    shutil.copytree(migrate.script_location(), location)
    head = migrate.head_revision()
    (location / "versions" / "0099_test.py").write_text(TEST_MIGRATION.format(head=head, tail=tail))
    return location


def test_interrupted_upgrade_rolls_back_then_upgrades(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app()
    app.ingester.ingest_paths(seed_files())
    engine = app.store.engine
    before = _counts(engine)
    assert before == (5, 47, 47, 60)

    broken = _scripts(tmp_path / "a", 'raise RuntimeError("killed mid-upgrade")')
    with pytest.raises(RuntimeError, match="killed mid-upgrade"):
        migrate.upgrade(engine, location=broken)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _counts(engine) == before
    with engine.connect() as conn:
        columns = [c.name for c in metadata.tables["articles"].columns]
        assert "note" not in conn.execute(select(articles)).keys() and columns

    fixed = _scripts(tmp_path / "b", "pass")
    migrate.upgrade(engine, location=fixed)
    assert migrate.current_revision(engine) == "0099"
    assert _counts(engine) == before, "batch migration must not delete child rows"


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert not migrate.needs_upgrade(engine)
