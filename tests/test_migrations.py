"""Migrations: they build exactly the schema the code expects, and an
interrupted upgrade leaves the database as it was, ready to upgrade again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select

from feedd.core.fingerprint import FingerprintSettings, segments
from feedd.core.text import normalize
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


def test_0002_recomputes_the_segment_hashes_of_stored_revisions(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0001")
    text = "简介：FlashAttention的关键创新在于使用类似于在线Softmax的思想来对自注意力计算进行分块"
    with engine.begin() as conn:
        now = "2026-01-01 00:00:00.000000"
        conn.exec_driver_sql(
            "INSERT INTO dumps (id, name, content_hash, size, version, observed_at, ingested_at,"
            " status, item_count, noise_count, new_count, repeat_count, update_count,"
            f" duration_ms) VALUES (1, 'a.txt', 'x', 1, 1, '{now}', '{now}', 'ingested',"
            " 1, 0, 1, 0, 0, 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO articles (id, uid, current_revision, revision_count, first_seen,"
            f" updated_at, first_dump_id, first_line) VALUES (1, 'u', 1, 1, '{now}', '{now}', 1, 4)"
        )
        conn.exec_driver_sql(
            "INSERT INTO revisions (id, article_id, number, text, norm_hash, simhash, band0,"
            " band1, band2, band3, first_seen, first_dump_id, first_line)"
            f" VALUES (1, 1, 1, ?, 0, 0, 0, 0, 0, 0, '{now}', 1, 4)",
            (text,),
        )
        conn.exec_driver_sql("INSERT INTO segments VALUES (12345, 1, 1)")  # an old crc32
    migrate.upgrade(engine)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT hash FROM segments WHERE revision_id = 1").all()
    expected = segments(normalize(text), FingerprintSettings())
    assert sorted(h for (h,) in stored) == sorted(expected) and len(expected) > 1
