"""Migrations: they build exactly the schema the code expects, and an
interrupted upgrade leaves the database as it was, ready to upgrade again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text

from feedd.app import build
from feedd.config import load_config
from feedd.core.fingerprint import FingerprintSettings, head_key, segments
from feedd.core.text import compact, normalize
from feedd.store import migrate
from feedd.store.engine import make_engine
from feedd.store.schema import (
    articles,
    dumps,
    include_name,
    metadata,
    revisions,
    sightings,
)
from tests.support import (
    ROOT,
    TEST_MIGRATION,
    AppFactory,
    dump_bytes,
    generate_stream,
    seed_files,
)


def test_migrated_schema_matches_the_code(make_app: AppFactory) -> None:
    app = make_app()
    with app.store.engine.connect() as conn:
        # The search index is engine-specific DDL, outside the metadata (schema.py).
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diffs = compare_metadata(context, metadata)
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
    migrate.upgrade(engine, "0002")
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT hash FROM segments WHERE revision_id = 1").all()
    expected = segments(normalize(text), FingerprintSettings(max_segments=24))
    assert sorted(h for (h,) in stored) == sorted(expected) and len(expected) > 1


# The schema before migration 0003, as the code of that time wrote it: the
# test runs that code (from git history) on real dumps, then upgrades.
BEFORE_0003 = "2af2388a63f525d221a999dc42de9cc8afb07241"


def _old_feedd(tmp_path: Path, commit: str = BEFORE_0003) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("no git history to take the old code from")
    out = tmp_path / "old"
    out.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "feedd", "migrations"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    # Code that finds its migrations as the package feedd.migrations must find
    # its own, not the installed checkout's (which an editable install maps).
    shutil.copytree(out / "migrations", out / "feedd" / "migrations")
    return out


def test_0003_upgrades_a_database_made_by_the_previous_code(
    db_factory: Callable[[str], str], tmp_path: Path
) -> None:
    old = _old_feedd(tmp_path)
    url = db_factory("old")
    dumps_dir = tmp_path / "dumps"
    dumps_dir.mkdir()
    for f in seed_files():
        shutil.copy(f, dumps_dir / f.name)
    for name, data in generate_stream(40, seed=3):
        (dumps_dir / f"1{name}").write_bytes(data)
    env = {**os.environ, "FEEDD_DATABASE_URL": url, "PYTHONPATH": str(old)}
    env.pop("COVERAGE_PROCESS_START", None)
    subprocess.run(
        [sys.executable, "-m", "feedd", "-q", "backfill", str(dumps_dir), "--no-feeds"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    engine = make_engine(url)
    assert migrate.current_revision(engine) == "0002"
    with engine.connect() as conn:
        before = {
            uid: (rev, n)
            for uid, rev, n in conn.exec_driver_sql(
                "SELECT a.uid, a.current_revision, COUNT(s.id) FROM articles a"
                " JOIN sightings s ON s.article_id = a.id GROUP BY a.uid, a.current_revision"
            )
        }
    counts = _counts(engine)
    engine.dispose()

    app = build(load_config(None, env={}, overrides={"database.url": url}))  # upgrades
    try:
        engine = app.store.engine
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert _counts(engine) == counts
        with engine.connect() as conn:
            after = {
                uid: (rev, n)
                for uid, rev, n in conn.exec_driver_sql(
                    "SELECT a.uid, a.current_revision, COUNT(s.id) FROM articles a"
                    " JOIN sightings s ON s.article_id = a.id GROUP BY a.uid, a.current_revision"
                )
            }
            # Existing articles keep their ids and histories.
            assert after == before and any(rev > 1 for rev, _ in after.values())
            # The index holds each article's current text, and segment_df counts it.
            current = conn.exec_driver_sql(
                "SELECT a.id, r.text, a.head_hash FROM articles a JOIN revisions r"
                " ON r.article_id = a.id AND r.number = a.current_revision"
            ).all()
            postings = Counter(
                h for (h,) in conn.exec_driver_sql("SELECT hash FROM segments").all()
            )
            df = dict(conn.exec_driver_sql("SELECT hash, articles FROM segment_df").all())
            missing_shown = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM sightings WHERE shown_chars IS NULL"
            ).scalar_one()
        expected: Counter[int] = Counter()
        for _, text, head in current:
            norm = normalize(text)
            expected.update(segments(norm, FingerprintSettings()))
            assert head == head_key(compact(norm))
        assert postings == expected and df == dict(expected)
        assert missing_shown == 0
        # And ingest goes on: an edited and a re-cut article are recognised.
        texts = [text for _, text, _ in current if len(text) > 300]
        edited = texts[0].replace("的", "之", 1)
        recut = texts[1].rstrip(".… ")[:200] + "..."
        result = app.ingester.ingest_bytes(
            "999_ffffffffffffffff.txt", dump_bytes(edited, recut), datetime(2027, 1, 1, tzinfo=UTC)
        )
        assert (result.new, result.update, result.repeat) == (0, 1, 1)
    finally:
        app.close()


# The last code before migration 0004 (full-text search).
BEFORE_0004 = "6ab7b5b9df352da26b0e09c190d3ec9cb0b1e64c"


def _backfill_with_old_code(old: Path, url: str, tmp_path: Path) -> None:
    dumps_dir = tmp_path / "dumps"
    dumps_dir.mkdir()
    for f in seed_files():
        shutil.copy(f, dumps_dir / f.name)
    for name, data in generate_stream(40, seed=3):
        (dumps_dir / f"1{name}").write_bytes(data)
    env = {**os.environ, "FEEDD_DATABASE_URL": url, "PYTHONPATH": str(old)}
    env.pop("COVERAGE_PROCESS_START", None)
    subprocess.run(
        [sys.executable, "-m", "feedd", "-q", "backfill", str(dumps_dir), "--no-feeds"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )


def test_0004_indexes_the_texts_of_a_database_made_by_the_previous_code(
    db_factory: Callable[[str], str], tmp_path: Path
) -> None:
    url = db_factory("old")
    _backfill_with_old_code(_old_feedd(tmp_path, BEFORE_0004), url, tmp_path)
    engine = make_engine(url)
    assert migrate.current_revision(engine) == "0003"
    counts = _counts(engine)
    engine.dispose()

    app = build(load_config(None, env={}, overrides={"database.url": url}))  # upgrades
    try:
        engine = app.store.engine
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert _counts(engine) == counts
        listing = app.store.articles()
        updated = [a for a in listing if a.revision_count > 1]
        assert updated
        # Words of two characters, of three and more, and words only an edit
        # made (generate_stream edits put a 改 into the text).
        edited_words = [
            a.text[i - 2 : i + 3]
            for a in updated
            for i, c in enumerate(a.text)
            if c == "改" and a.text[i - 2 : i + 3] not in a.first_text
        ]
        queries = ["模型", "注意力", "改", edited_words[0], "编号为7的"]
        for query in queries:
            want = [a.id for a in listing if query.lower() in a.text.lower()]
            assert want, query
            assert [a.id for a in app.store.search(query, limit=1000)] == want, query
            assert app.store.search_count(query) == len(want)
        if engine.dialect.name == "sqlite":
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO revisions_fts (revisions_fts, rank) VALUES ('integrity-check', 0)"
                )
                indexed = conn.exec_driver_sql("SELECT COUNT(*) FROM revisions_fts").scalar_one()
            assert indexed == counts[2]  # every revision
        # And ingest keeps it in step: an edit is found by its new words.
        text = max((a.text for a in listing), key=len)
        edited = text.replace(text[100:104], "鲲鹏引擎", 1)
        result = app.ingester.ingest_bytes(
            "999_ffffffffffffffff.txt", dump_bytes(edited), datetime(2027, 1, 1, tzinfo=UTC)
        )
        assert result.update == 1
        assert [a.text for a in app.store.search("鲲鹏引擎")] == [edited]
    finally:
        app.close()


# The last code before migration 0005 (indexes for browsing).
BEFORE_0005 = "94f8488b2f771420bfa3558c583f3d09e756fccb"


def _indexes(engine, table: str) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect

    return {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes(table)}


def _explained(engine, sql: str, params: dict[str, object]) -> str:  # type: ignore[no-untyped-def]
    """The plan of ``sql`` with sequential scans ruled out (a small history
    is cheaper to scan): which index can serve it."""
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
        rows = conn.execute(text(prefix + sql), params).all()
    return " ".join(str(value) for row in rows for value in row)


def test_0005_indexes_a_database_made_by_the_previous_code(
    db_factory: Callable[[str], str], tmp_path: Path
) -> None:
    url = db_factory("old")
    _backfill_with_old_code(_old_feedd(tmp_path, BEFORE_0005), url, tmp_path)
    engine = make_engine(url)
    assert migrate.current_revision(engine) == "0004"
    assert "ix_sightings_category" not in _indexes(engine, "sightings")
    counts = _counts(engine)
    with engine.begin() as conn:  # a category on some lines, as dumps give them
        conn.execute(sightings.update().where(sightings.c.id % 7 == 0).values(category="机器学习"))
    engine.dispose()

    app = build(load_config(None, env={}, overrides={"database.url": url}))  # upgrades
    try:
        engine = app.store.engine
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert _counts(engine) == counts
        assert _indexes(engine, "revisions")["ix_revisions_first_seen"] == ["first_seen", "number"]
        assert _indexes(engine, "sightings")["ix_sightings_category"] == ["category", "article_id"]
        # The filters and the charts are served by them.
        plan = _explained(
            engine,
            "SELECT article_id FROM sightings WHERE category = :c AND article_id = 5",
            {"c": "机器学习"},
        )
        assert "ix_sightings_category" in plan, plan
        charts = "SELECT count(*) FROM revisions WHERE first_seen >= '2026-01-01'"
        plan = _explained(engine, charts, {})
        assert "ix_revisions_first_seen" in plan, plan
        listing = app.store.articles()
        with engine.connect() as conn:
            tagged = {
                aid
                for (aid,) in conn.execute(
                    select(sightings.c.article_id).where(sightings.c.category == "机器学习")
                )
            }
        assert tagged
        browsed = app.store.browse(category="机器学习", limit=1000)
        assert [a.id for a in browsed] == [a.id for a in listing if a.id in tagged]
        # Words of one and two characters, found through the new index on
        # PostgreSQL (and as before on SQLite).
        for query in ("模型", "改", "模", "。"):
            want = [a.id for a in listing if query in a.text]
            assert want, query
            assert [a.id for a in app.store.search(query, limit=1000)] == want, query
            assert app.store.search_count(query) == len(want), query
        if engine.dialect.name == "postgresql":
            grams = "FROM revisions WHERE feedd_grams(text) @> feedd_grams(:k)"
            plan = _explained(engine, f"SELECT id {grams}", {"k": "改"})
            assert "ix_revisions_text_grams" in plan, plan
            # Filled from the stored rows: read through the index.
            with engine.connect() as conn:
                conn.exec_driver_sql("SET enable_seqscan = off")
                filled = conn.execute(text(f"SELECT count(*) {grams}"), {"k": "模型"}).scalar_one()
            assert filled == sum("模型" in t for t in _all_texts(engine)) > 0
            # Analysed at once: the counts that tell common words from rare ones.
            with engine.connect() as conn:
                analysed = conn.execute(
                    text("SELECT count(*) FROM pg_stats WHERE tablename = :ix"),
                    {"ix": "ix_revisions_text_grams"},
                ).scalar_one()
            assert analysed == 1
        # And ingest keeps the new index in step: a character no text held.
        text_ = max((a.text for a in listing), key=len)
        edited = text_.replace(text_[100:102], "鲲鲸", 1)
        result = app.ingester.ingest_bytes(
            "999_ffffffffffffffff.txt", dump_bytes(edited), datetime(2027, 1, 1, tzinfo=UTC)
        )
        assert result.update == 1
        assert [a.text for a in app.store.search("鲲")] == [edited]
        assert [a.text for a in app.store.search("鲲鲸")] == [edited]
    finally:
        app.close()


def _all_texts(engine) -> list[str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [t for (t,) in conn.execute(select(revisions.c.text))]
