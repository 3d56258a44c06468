"""Full-text search over the articles' current texts (feedd/store/search.py), on
SQLite (FTS5 trigram) and PostgreSQL (pg_trgm, and feedd_grams for words of
one or two characters): Chinese words of two and of three or more characters,
edits, paging both ways, hostile queries, the indexes in step with ingest."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from feedd.app import App
from feedd.core.parse import parse_dump
from feedd.errors import FeeddError, InvalidQuery
from feedd.store import migrate
from feedd.store.engine import make_engine
from feedd.store.schema import GRAMS_INDEX, articles
from feedd.store.search import MAX_TERMS
from feedd.store.search import parse as parse_query
from feedd.store.sql import _search_params
from tests.support import AppFactory, dump_bytes, seed_files

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ingest(app: App, name: str, *items: str, at: int = 0) -> object:
    return app.ingester.ingest_bytes(name, dump_bytes(*items), T0 + timedelta(hours=at))


def seed_items() -> list[str]:
    return [i.text for f in seed_files() for i in parse_dump(f.read_bytes()).items]


def expected(app: App, query: str) -> list[int]:
    """What a search must find, worked out in Python: the articles whose current
    text holds every word, in the listing's order."""
    words = query.lower().split()
    return [a.id for a in app.store.articles() if all(w in a.text.lower() for w in words)]


def found(app: App, query: str, page: int = 1000) -> list[int]:
    """Every page of a search, following the cursor."""
    out: list[int] = []
    before: int | None = None
    while True:
        arts = app.store.search(query, limit=page, before_id=before)
        out += [a.id for a in arts]
        if len(arts) < page:
            return out
        before = arts[-1].id


def found_backwards(app: App, query: str, last: int, page: int) -> list[int]:
    """Every page of a search before article ``last`` (and ``last``), reached
    from the end back to the top with ``after_id``; newest first."""
    out = [last]
    while True:
        arts = app.store.search(query, limit=page, after_id=out[0])
        assert len(arts) <= page
        out = [a.id for a in arts] + out
        if len(arts) < page:
            return out


def check_index(engine: Engine) -> None:
    """On SQLite, the FTS5 index is whole and holds one entry per revision."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO revisions_fts (revisions_fts, rank) VALUES ('integrity-check', 0)"
            )
            entries = conn.exec_driver_sql("SELECT COUNT(*) FROM revisions_fts").scalar_one()
            stored = conn.exec_driver_sql("SELECT COUNT(*) FROM revisions").scalar_one()
        assert entries == stored


@pytest.fixture
def seeded(make_app: AppFactory) -> App:
    app = make_app()
    app.ingester.ingest_paths(seed_files())
    return app


# Two characters: no trigram, scanned. Three or more: through the index.
CHINESE = ["模型", "训练", "模", "注意力", "自注意力机制", "FlashAttention", "flashattention"]
# Every word must occur: two scanned, an indexed and a scanned one, a miss.
SEVERAL = ["模型 训练", "注意力 模型", "模型 不存在的词语"]


def test_chinese_words_of_two_and_of_three_or_more_characters_find_their_articles(
    seeded: App,
) -> None:
    for query in CHINESE + SEVERAL:
        want = expected(seeded, query)
        assert found(seeded, query) == want, query
        assert seeded.store.search_count(query) == len(want), query
        assert want or query == "模型 不存在的词语", f"the seeds should hold {query!r}"
        first = seeded.store.search(query, limit=3)
        assert [a.id for a in first] == want[:3], query
        for art in first:
            assert art == seeded.store.article(art.id, full=False)


@pytest.mark.parametrize("path", ["index", "scan"])
def test_short_words_are_found_anywhere_through_the_index_or_a_scan(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    # Words of one or two characters at the very end of a text begin no
    # trigram of the text itself: the sentinel after each text gives them one.
    if path == "scan":  # what a common word gets: too many trigrams, or texts, to ask
        monkeypatch.setattr("feedd.store.sql.MAX_PREFIX_TERMS", 0)
        monkeypatch.setattr("feedd.store.sql.DENSE_DOCS", -1)
    app = make_app()
    app.ingester.ingest_paths(seed_files())
    ends = [
        "这篇笔记讲的是一种新的训练方法，它的名字叫鲲鹏",
        "这一篇笔记讲的是另一种动物，不是狗，是猫",
        "这一篇笔记的最后两个字母，也就是缩写，是AI",
        "这一篇笔记里有希腊字母ΣΟΦΙΑ，也有一个表情😀，最后是一个字：鲸",
    ]
    ingest(app, "101_a.txt", *ends, at=10)
    listing = app.store.articles()
    queries = ["鲲鹏", "猫", "AI", "ai", "Ai", "是鲲", "模型", "的", "I", "。", "..", "A"]
    # Greek as written: SQLite's LIKE folds the case of ASCII letters only.
    queries += ["ΣΟ", "Σ", "😀", "情😀", "鲸", "：鲸", "ΣΟΦ", "ΦΙΑ"]
    for query in queries:
        assert found(app, query) == expected(app, query), query
        assert app.store.search_count(query) == len(expected(app, query)), query
    assert [a.text for a in app.store.search("鲲鹏")] == [ends[0]]
    assert [a.text for a in app.store.search("猫")] == [ends[1]]
    assert [a.text for a in app.store.search("😀")] == [ends[3]]
    assert len(listing) == 47 + 4


@pytest.mark.postgres
@pytest.mark.parametrize("db_factory", ["postgres"], indirect=True)
def test_postgres_asks_the_index_for_a_rare_short_word_and_scans_for_a_common_one(
    seeded: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = seeded.store.engine
    rare, common = "鲲", "的"
    ingest(seeded, "101_a.txt", "这一篇笔记的最后一个字是一种大鱼的名字：鲲", at=10)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE revisions"))
        conn.commit()
    texts = [a.text for a in seeded.store.articles()]
    assert sum(common in t for t in texts) > 40 and sum(rare in t for t in texts) == 1
    # More than a handful of texts make a word common here (5,000 by default).
    monkeypatch.setattr("feedd.store.sql.DENSE_DOCS", 10)

    def plan(query: str, *, counting: bool = False) -> list[str]:
        terms = parse_query(query)
        assert terms is not None
        with engine.connect() as conn:
            return sorted(_search_params(conn, terms, counting=counting) or {})

    assert plan(rare) == ["gram0", "key0"]  # the index of feedd_grams
    assert plan(common) == ["term0"]  # a scan in listing order
    assert plan(common, counting=True) == ["gram0", "key0"]  # every match is needed
    assert plan(f"{common} {rare}") == ["gram1", "key1", "term0"]
    assert plan("注意力 模型") == ["term1", "trgm0"]
    assert plan("模型的") == ["term0"]  # common too: both its pairs are
    for query in (rare, common, f"{common} {rare}", "注意力 模型", "Attention"):
        assert found(seeded, query, page=7) == expected(seeded, query), query
        assert seeded.store.search_count(query) == len(expected(seeded, query)), query
    # The index serves the query (with scans off: the seeds are few rows).
    with engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        explained = conn.execute(
            text("EXPLAIN SELECT id FROM revisions WHERE feedd_grams(text) @> feedd_grams(:k)"),
            {"k": rare},
        ).all()
    assert GRAMS_INDEX in " ".join(str(r[0]) for r in explained)


def test_pages_follow_the_listing_order_without_gaps_or_repeats(seeded: App) -> None:
    want = expected(seeded, "模型")
    assert len(want) > 10
    for page in (1, 4, 7):
        assert found(seeded, "模型", page=page) == want
        # And back from the last one to the top, page by page.
        assert found_backwards(seeded, "模型", want[-1], page) == want
    # The listing's order is not the ids': one dump's top line is its newest item.
    assert want != sorted(want, reverse=True)
    # A page back from an article is the ``limit`` just before it, newest first.
    assert [a.id for a in seeded.store.search("模型", limit=3, after_id=want[5])] == want[2:5]
    assert seeded.store.search("模型", after_id=want[0]) == []


def test_search_and_browse_page_alike(seeded: App) -> None:
    # Both take before_id (the last article of the previous page: the next,
    # older page) and after_id (the page before, newer), newest first.
    listing = [a.id for a in seeded.store.articles()]
    with_word = expected(seeded, "模型")
    anchor = with_word[len(with_word) // 2]
    older = [a.id for a in seeded.store.browse(contains=["模型"], limit=4, before_id=anchor)]
    newer = [a.id for a in seeded.store.browse(contains=["模型"], limit=4, after_id=anchor)]
    assert older == [a.id for a in seeded.store.search("模型", limit=4, before_id=anchor)]
    assert newer == [a.id for a in seeded.store.search("模型", limit=4, after_id=anchor)]
    at = with_word.index(anchor)
    assert older == with_word[at + 1 : at + 5] and newer == with_word[at - 4 : at]
    at = listing.index(anchor)
    browsed = [a.id for a in seeded.store.browse(limit=3, before_id=anchor)]
    assert browsed == listing[at + 1 : at + 4]
    browsed = [a.id for a in seeded.store.browse(limit=3, after_id=anchor)]
    assert browsed == listing[at - 3 : at]
    with pytest.raises(ValueError, match="not both"):
        seeded.store.search("模型", before_id=anchor, after_id=anchor)
    with pytest.raises(ValueError, match="not both"):
        seeded.store.browse(before_id=anchor, after_id=anchor)


def test_an_update_is_found_by_its_new_words_and_a_restore_by_its_old_ones(
    make_app: AppFactory,
) -> None:
    app = make_app()
    text = next(t for t in seed_items() if len(t) >= 490)
    middle = len(text) // 2
    new_words = "鲲鹏引擎这一段是编辑后新插入的一句话"
    edited = text[:middle] + new_words + text[middle:]
    ingest(app, "001_a.txt", text)
    assert found(app, "鲲鹏引擎") == [] and found(app, "鲲鹏") == []
    result = ingest(app, "002_a.txt", edited, at=1)
    assert result.update == 1  # type: ignore[attr-defined]
    [art] = app.store.articles()
    assert found(app, "鲲鹏引擎") == [art.id] and found(app, "鲲鹏") == [art.id]
    check_index(app.store.engine)
    # Shown as it was before: revision 1 is current again, and so are its words.
    result = ingest(app, "003_a.txt", text, at=2)
    assert result.update == 1  # type: ignore[attr-defined]
    assert found(app, "鲲鹏引擎") == [] and found(app, "鲲鹏") == []
    assert found(app, text[middle - 5 : middle + 5]) == [art.id]
    check_index(app.store.engine)


def test_a_text_shown_longer_is_found_by_its_new_end(make_app: AppFactory) -> None:
    app = make_app()
    full = next(t for t in seed_items() if len(t) >= 490).rstrip(".… ")
    tail = full[-12:]
    assert tail not in full[:300]
    ingest(app, "001_a.txt", full[:300] + "...")
    assert found(app, tail) == []
    assert ingest(app, "002_a.txt", full, at=1).repeat == 1  # type: ignore[attr-defined]
    [art] = app.store.articles()
    assert art.revision_count == 1 and art.text == full  # the revision was extended
    assert found(app, tail) == [art.id]
    check_index(app.store.engine)


def test_a_dump_that_fails_leaves_nothing_in_the_index(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    items = seed_items()
    ingest(app, "001_a.txt", *items[:3])
    original = app.ingester._ingest_parsed

    def boom(tx, *args):  # type: ignore[no-untyped-def]
        original(tx, *args)
        raise RuntimeError("power cut after the last write, before commit")

    monkeypatch.setattr(app.ingester, "_ingest_parsed", boom)
    with pytest.raises(RuntimeError):
        ingest(app, "002_a.txt", *items[3:8], at=1)
    word = next(w for w in (items[5][:6], items[6][:6]) if w not in "".join(items[:3]))
    assert found(app, word) == [] and app.store.search_count(word) == 0
    check_index(app.store.engine)
    monkeypatch.undo()
    ingest(app, "002_a.txt", *items[3:8], at=1)
    assert found(app, word) == expected(app, word) != []


HOSTILE = [
    '"',
    '"模型"',
    '模型" OR "训练',
    "模型 OR 训练",
    "NEAR(模型 训练)",
    "模型*",
    "^模型",
    "text:模型",
    "-模型",
    "'; DROP TABLE articles; --",
    "%",
    "%%%",
    "_",
    "模_",
    "\\",
    "\\%",
    "模型\x00训练",
    "\x00",
    "\ud800模型",
    "   \t\n ",
    "",
    "模" * 10_000,
    "模型训练" * 2_500,
    "x" * 10_240,
]


def test_hostile_queries_give_results_or_nothing_never_an_error(seeded: App) -> None:
    for query in HOSTILE:
        arts = seeded.store.search(query)
        count = seeded.store.search_count(query)
        if "\x00" in query or "\ud800" in query or not query.split():
            assert arts == [] and count == 0, repr(query)  # no stored text can match
            continue
        # Quotes, FTS5 syntax and LIKE wildcards are literal text.
        want = expected(seeded, query)
        assert [a.id for a in arts] == want[:50], repr(query[:40])
        assert count == len(want), repr(query[:40])


def test_too_many_words_are_a_clear_error(seeded: App) -> None:
    words = " ".join(f"词{i}" for i in range(MAX_TERMS + 1))
    with pytest.raises(InvalidQuery, match=f"at most {MAX_TERMS} words"):
        seeded.store.search(words)
    with pytest.raises(InvalidQuery):
        seeded.store.search_count(words)
    # Repeated words count once.
    assert seeded.store.search(" ".join(["模型"] * 50)) == seeded.store.search("模型")


def test_odd_cursors_and_limits_give_an_empty_page(seeded: App) -> None:
    assert seeded.store.search("模型", limit=0) == []
    assert seeded.store.search("模型", limit=-5) == []
    for cursor in (0, -1, 10**6, 2**31, 2**63, 2**70):
        assert seeded.store.search("模型", before_id=cursor) == []
        assert seeded.store.search("模型", after_id=cursor) == []
    assert len(seeded.store.search("模", limit=2**70)) == len(expected(seeded, "模"))


def redo_migrations(conn: Connection, revisions: Sequence[str]) -> None:
    """Undo these migrations' own steps, newest first, then do them again,
    oldest first; the migrations after them stay as they are."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    modules = []
    for name in revisions:
        found = script.get_revision(name)
        assert found is not None, name
        modules.append(found.module)
    with Operations.context(MigrationContext.configure(conn)):
        for module in reversed(modules):
            module.downgrade()
        for module in modules:
            module.upgrade()


def test_the_migrations_fill_the_indexes_from_the_stored_history(make_app: AppFactory) -> None:
    # Made at head, the search indexes of 0004 and 0005 dropped and made again
    # from the stored rows: they must index what was stored before them.
    # tests/test_migrations.py upgrades databases made by the code of that time.
    app = make_app()
    app.ingester.ingest_paths(seed_files())
    text = next(t for t in seed_items() if len(t) >= 490)
    ingest(app, "101_a.txt", text.replace("的", "之", 1), at=10)
    engine = app.store.engine
    queries = ("模型", "注意力", "之", "模", "力机")
    before = {q: found(app, q) for q in queries}
    with engine.begin() as conn:
        redo_migrations(conn, ("0004", "0005"))
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert {q: found(app, q) for q in before} == before
    assert all(before.values())
    check_index(engine)


def test_a_sqlite_without_the_trigram_tokenizer_stops_the_upgrade_saying_why(
    tmp_path: Path,
) -> None:
    # SQLite here has the tokenizer; a copy of the migrations asks for one
    # that no SQLite has, which fails the same way.
    location = tmp_path / "migrations"
    shutil.copytree(migrate.script_location(), location)
    script = location / "versions" / "0004_search.py"
    script.write_text(script.read_text().replace("tokenize='trigram'", "tokenize='nosuch'"))
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0003", location=location)
    with pytest.raises(FeeddError, match="needs FTS5 with the trigram tokenizer"):
        migrate.upgrade(engine, location=location)
    assert migrate.current_revision(engine) == "0003"
    engine.dispose()


def test_an_article_id_and_a_uid_prefix_of_digits_are_never_confused(seeded: App) -> None:
    # uids are hex: "4321" may begin one. An int is an id, a str a uid.
    engine = seeded.store.engine
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('articles', 'id'), 4320)"))
        else:  # ids follow the highest; a row without revisions is never listed
            row = conn.execute(articles.select().limit(1)).one()._asdict()
            conn.execute(articles.insert().values({**row, "id": 4320, "uid": "placeholder"}))
    ingest(seeded, "101_a.txt", "这一篇笔记的编号很大，它是四千三百二十一号", at=10)
    new = seeded.store.article(4321)
    assert new is not None and new.text.endswith("四千三百二十一号")
    other = next(a for a in seeded.store.articles() if a.id != new.id)
    with engine.begin() as conn:
        conn.execute(
            articles.update().where(articles.c.id == other.id).values(uid="4321" + other.uid[4:])
        )
    found_by_id = seeded.store.article(4321, full=False)
    assert found_by_id is not None and found_by_id.id == 4321
    found_by_uid = seeded.store.article("4321", full=False)
    assert found_by_uid is not None and found_by_uid.id == other.id
    # Digits too short for a uid prefix are no id either.
    assert seeded.store.article(str(other.id)) is None and seeded.store.article(other.id)
    assert seeded.store.article(0) is None and seeded.store.article(2**40) is None
