"""Ingest on real databases (SQLite and PostgreSQL): seeds, constructed edits, export."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedd.core.fingerprint import fingerprint
from feedd.core.parse import parse_dump
from feedd.core.text import normalize
from tests.support import ROOT, AppFactory, dump_bytes, seed_files

GOLDEN = ROOT / "tests" / "golden" / "seeds.json"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seed_items() -> list[str]:
    return [i.text for f in seed_files() for i in parse_dump(f.read_bytes()).items]


def long_seed(min_chars: int = 490) -> str:
    return next(t for t in seed_items() if len(t) >= min_chars)


def ingest(app, name: str, *items: str, at: int = 0):  # type: ignore[no-untyped-def]
    return app.ingester.ingest_bytes(name, dump_bytes(*items), T0 + timedelta(hours=at))


def history_of(app):  # type: ignore[no-untyped-def]
    return list(app.store.export())


def test_seeds_backfill_matches_golden(make_app: AppFactory) -> None:
    app = make_app()
    results = app.ingester.ingest_paths(seed_files())
    assert [r.status for r in results] == ["ingested"] * 5
    arts = history_of(app)

    # Independent expectation: the seeds repeat items verbatim, so every
    # distinct item line is one article, first sighting new, the rest repeats.
    lines = [
        (f.name, i.line, i.text) for f in seed_files() for i in parse_dump(f.read_bytes()).items
    ]
    distinct = list(dict.fromkeys(t for _, _, t in lines))
    assert len(distinct) == 47 and len(lines) == 60
    assert len(arts) == len(distinct)
    by_text = {a.revisions[0].text: a for a in arts}
    assert set(by_text) == set(distinct)
    for a in arts:
        assert len(a.revisions) == 1
        kinds = [s.kind for s in a.sightings]
        assert kinds[0] == "new" and all(k == "repeat" for k in kinds[1:])

    # Noise lines are not articles; the date and category go to the next item.
    texts = {t for t in distinct}
    assert not texts & {"NLP", "2026-01-11", "1 2"}
    ngram = next(a for a in arts if a.revisions[0].text.startswith("1. 什么是NGram模型"))
    assert (ngram.sightings[0].date, ngram.sightings[0].category) == ("2026-01-11", "NLP")

    # The golden file pins the whole history per seed dump.
    order = {a.uid: n for n, a in enumerate(sorted(arts, key=lambda a: a.id))}
    per_dump: dict[str, list[list[object]]] = {}
    for a in arts:
        for s in a.sightings:
            per_dump.setdefault(s.dump, []).append([s.line, s.kind, order[a.uid], s.revision])
    for rows in per_dump.values():
        rows.sort()
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert per_dump == golden["sightings"]
    assert sorted(a.uid for a in arts) == sorted(golden["uids"])


def test_backfill_twice_changes_nothing(make_app: AppFactory) -> None:
    app = make_app()
    app.ingester.ingest_paths(seed_files())
    before = [json.dumps(a.__dict__, default=str) for a in history_of(app)]
    again = app.ingester.ingest_paths(seed_files())
    assert {r.status for r in again} == {"unchanged"}
    assert [json.dumps(a.__dict__, default=str) for a in history_of(app)] == before
    assert app.store.totals().dumps == 5


def test_export_accounts_for_every_item_line_once(make_app: AppFactory) -> None:
    app = make_app()
    app.ingester.ingest_paths(seed_files())
    seen = Counter((s.dump, s.line) for a in history_of(app) for s in a.sightings)
    expected = {(f.name, i.line) for f in seed_files() for i in parse_dump(f.read_bytes()).items}
    assert set(seen) == expected
    assert set(seen.values()) == {1}


def test_typo_fix_is_an_update(make_app: AppFactory) -> None:
    app = make_app()
    text = seed_items()[1]
    fixed = text[:40] + ("甲" if text[40] != "甲" else "乙") + text[41:]
    ingest(app, "001_a.txt", text)
    result = ingest(app, "002_a.txt", fixed, at=1)
    assert (result.new, result.update) == (0, 1)
    [art] = history_of(app)
    assert [r.number for r in art.revisions] == [1, 2]
    assert art.revisions[1].text == fixed
    assert [s.kind for s in art.sightings] == ["new", "update"]


def test_punctuation_only_change_is_an_update_with_same_simhash(make_app: AppFactory) -> None:
    app = make_app()
    text = next(t for t in seed_items() if "," in t[:200])
    changed = text.replace(",", "。", 1)
    assert fingerprint(text).simhash == fingerprint(changed).simhash
    ingest(app, "001_a.txt", text)
    result = ingest(app, "002_a.txt", changed, at=1)
    assert result.update == 1
    [art] = history_of(app)
    assert len(art.revisions) == 2


def test_full_width_variant_is_a_repeat(make_app: AppFactory) -> None:
    app = make_app()
    text = next(t for t in seed_items() if "SD" in t)
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    assert wide != text
    ingest(app, "001_a.txt", text)
    result = ingest(app, "002_a.txt", wide, at=1)
    assert (result.repeat, result.update, result.new) == (1, 0, 0)
    [art] = history_of(app)
    assert len(art.revisions) == 1


def test_a_recut_is_a_repeat_and_the_revision_keeps_the_longest_text(
    make_app: AppFactory,
) -> None:
    app = make_app()
    full = long_seed().rstrip(".… ")
    steps = [
        (full[:300] + "...", "new"),
        (full[:200] + "...", "repeat"),  # cut shorter: the entry must not shrink
        (full[:400] + "...", "repeat"),  # cut longer: the revision keeps the longer text
        (full, "repeat"),  # shown whole: still the same revision
        (full + " 补充说明:本文还讨论了训练细节与实验结果。", "update"),  # shown whole, then grew
    ]
    for at, (text, _) in enumerate(steps):
        ingest(app, f"00{at}_a.txt", text, at=at)
    [art] = history_of(app)
    assert [s.kind for s in art.sightings] == [kind for _, kind in steps]
    assert [r.text for r in art.revisions] == [full, steps[-1][0]]
    assert [s.revision for s in art.sightings] == [1, 1, 1, 1, 2]
    # Each sighting records how much of the text it showed.
    assert [s.shown for s in art.sightings] == [len(normalize(text)) for text, _ in steps]


def test_a_shorter_recut_never_shrinks_the_feed_entry(make_app: AppFactory) -> None:
    app = make_app()
    full = long_seed().rstrip(".… ")
    ingest(app, "001_a.txt", full[:400] + "...")
    ingest(app, "002_a.txt", full[:150] + "...", at=1)
    [art] = app.store.articles()
    assert art.text == full[:400] + "..." and art.updated_at == T0


def test_sentence_inserted_in_the_middle_is_an_update(make_app: AppFactory) -> None:
    app = make_app()
    text = long_seed()
    middle = len(text) // 2
    edited = text[:middle] + "这一段是编辑后新插入的一句话,用来说明方法的动机。" + text[middle:]
    ingest(app, "001_a.txt", text)
    result = ingest(app, "002_a.txt", edited, at=1)
    assert result.update == 1
    assert len(history_of(app)) == 1


def test_same_opening_different_articles_never_merge(make_app: AppFactory) -> None:
    app = make_app()
    items = seed_items()
    opening = "简介 本文是系列笔记的一部分,介绍生成模型的基本概念与方法。"
    assert len(opening) == 30
    first = opening + items[3]
    second = opening + items[8]
    ingest(app, "001_a.txt", first)
    result = ingest(app, "002_a.txt", second, at=1)
    assert result.new == 1 and result.update == 0
    assert len(history_of(app)) == 2


def test_restored_text_sights_the_earlier_revision(make_app: AppFactory) -> None:
    app = make_app()
    text = seed_items()[4]
    edited = text.replace("的", "地", 1)
    ingest(app, "001_a.txt", text)
    ingest(app, "002_a.txt", edited, at=1)
    result = ingest(app, "003_a.txt", text, at=2)
    assert result.update == 1
    [art] = history_of(app)
    assert len(art.revisions) == 2
    assert [(s.kind, s.revision) for s in art.sightings] == [
        ("new", 1),
        ("update", 2),
        ("update", 1),
    ]
    assert art.current_revision == 1
    # Seen again unchanged: now a plain repeat of revision 1.
    assert ingest(app, "004_a.txt", text, at=3).repeat == 1


def test_same_name_new_content_is_a_new_version(make_app: AppFactory) -> None:
    app = make_app()
    items = seed_items()
    first = ingest(app, "001_a.txt", items[0])
    second = ingest(app, "001_a.txt", items[0], items[1], at=1)
    assert (first.version, second.version) == (1, 2)
    assert (second.repeat, second.new) == (1, 1)


def test_identical_content_under_new_name_is_all_repeats(make_app: AppFactory) -> None:
    app = make_app()
    items = seed_items()[:5]
    ingest(app, "001_a.txt", *items)
    result = ingest(app, "002_b.txt", *items, at=5)
    assert (result.status, result.repeat, result.new, result.update) == ("ingested", 5, 0, 0)
    for art in history_of(app):
        assert art.last_seen == T0 + timedelta(hours=5)


def test_rejected_dump_is_recorded_with_reason(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    [result] = app.ingester.ingest_paths([bad])
    assert result.status == "rejected" and "binary" in (result.reason or "")
    [row] = app.store.dumps(status="rejected")
    assert row.name == "bad.txt" and "binary" in (row.error or "")
    assert bad.exists(), "backfill never moves or deletes a file"


def test_dry_run_leaves_nothing(make_app: AppFactory) -> None:
    app = make_app()
    with app.store.dry_run():
        results = app.ingester.ingest_paths(seed_files())
        assert sum(r.new for r in results) == 47
    assert app.store.totals().articles == 0
    assert app.store.totals().dumps == 0


def test_crash_mid_dump_leaves_no_trace(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    items = seed_items()
    ingest(app, "001_a.txt", *items[:3])
    calls = {"n": 0}
    original = app.ingester._ingest_parsed

    def boom(tx, *args):  # type: ignore[no-untyped-def]
        original(tx, *args)
        calls["n"] += 1
        raise RuntimeError("power cut after the last write, before commit")

    monkeypatch.setattr(app.ingester, "_ingest_parsed", boom)
    with pytest.raises(RuntimeError):
        ingest(app, "002_a.txt", *items[3:8], at=1)
    assert calls["n"] == 1
    totals = app.store.totals()
    assert (totals.dumps, totals.articles, totals.sightings) == (1, 3, 3)


def test_a_dump_shows_an_article_at_most_once(make_app: AppFactory) -> None:
    # Two lines of one dump are two articles, even with the same text; later
    # dumps that show both again sight each once.
    app = make_app()
    text = seed_items()[2]
    result = ingest(app, "001_a.txt", text, seed_items()[5], text)
    assert (result.new, result.repeat) == (3, 0)
    again = ingest(app, "002_a.txt", text, seed_items()[5], text, at=1)
    assert (again.new, again.repeat) == (0, 3)
    arts = history_of(app)
    assert len(arts) == 3 and all(len(a.sightings) == 2 for a in arts)


def test_exact_matches_claim_their_articles_before_near_ones(make_app: AppFactory) -> None:
    # A new post that starts as a copy of an old post's earlier text must not
    # take that post from its own line, which shows the post's current text.
    app = make_app()
    full = long_seed().rstrip(".… ")
    draft, filled = full[:300], full[:300] + " 正文:这一期新增了三篇文章与两个工具的介绍。"
    ingest(app, "001_a.txt", draft)
    ingest(app, "002_a.txt", filled, at=1)  # the draft was filled in: an update
    result = ingest(app, "003_a.txt", draft, filled, at=2)  # a new copy of the draft on top
    assert (result.new, result.repeat, result.update) == (1, 1, 0)


def test_preparing_ahead_in_a_second_process_changes_nothing(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 150 dumps: past PREPARE_AFTER, so the helper process prepares most of
    # them; a dump that does not parse and a file that cannot be read sit
    # among them, and the same text seen in an earlier run is not re-fingerprinted.
    from feedd.ingest import ahead as ingest_module
    from feedd.ingest.ahead import PREPARE_AFTER
    from tests.support import generate_stream

    submitted = Counter[str]()
    real_submit = ingest_module.Preparer.submit

    def submit(self, group: list[bytes]):  # type: ignore[no-untyped-def]
        submitted["dumps"] += len(group)
        return real_submit(self, group)

    monkeypatch.setattr(ingest_module.Preparer, "submit", submit)

    folder = tmp_path / "dumps"
    folder.mkdir()
    for n, (name, data) in enumerate(generate_stream(150)):
        (folder / name).write_bytes(b"not a dump at all\n" if n == 100 else data)
    (folder / "120_unreadable.txt").mkdir()  # a folder where a dump should be
    assert len(list(folder.iterdir())) > PREPARE_AFTER + 50

    exports = []
    for ahead in (False, True):
        # Inline on the parametrised database; ahead on a SQLite file of its own.
        where = {"database__url": f"sqlite:///{tmp_path / 'ahead.db'}"} if ahead else {}
        app = make_app(ingest__prepare_ahead=ahead, **where)
        results = app.ingester.ingest_paths([folder])
        statuses = Counter(r.status for r in results)
        assert statuses == {"ingested": 149, "rejected": 2}, statuses
        exports.append(
            [
                (
                    a.uid,
                    [r.text for r in a.revisions],
                    [(s.dump, s.line, s.kind) for s in a.sightings],
                )
                for a in app.store.export()
            ]
        )
    # The folder is set aside first (entries with a problem lead the order),
    # so it is one of the PREPARE_AFTER dumps taken inline.
    assert submitted["dumps"] == 150 - (PREPARE_AFTER - 1), "the helper prepared the rest"
    assert exports[0] == exports[1]
    assert sum(len(revs) > 1 for _, revs, _ in exports[1]) > 5, "the stream has updates"


_TASKS = Counter[str]()


def _dying_prepare(group, limits, settings):  # type: ignore[no-untyped-def]
    # Runs in the helper process: it dies on its second task, as if OOM-killed.
    import os

    from feedd.ingest.ahead import _prepare_ahead

    _TASKS["n"] += 1
    if _TASKS["n"] == 2:
        os._exit(1)
    return _prepare_ahead(group, limits, settings)


def test_a_helper_that_dies_costs_time_not_results(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    from feedd.ingest import ahead as ingest_module
    from tests.support import generate_stream

    folder = tmp_path / "stream"
    folder.mkdir()
    for name, data in generate_stream(140):
        (folder / name).write_bytes(data)
    files = sorted(folder.iterdir())
    inline = make_app(ingest__prepare_ahead=False)
    inline.ingester.ingest_paths(files)
    expected = [(a.uid, [r.text for r in a.revisions]) for a in inline.store.export()]

    monkeypatch.setattr(ingest_module, "_prepare_ahead", _dying_prepare)
    app = make_app(ingest__prepare_ahead=True, database__url=f"sqlite:///{tmp_path / 'h.db'}")
    with caplog.at_level("WARNING", logger="feedd.ingest"):
        results = app.ingester.ingest_paths(files)
    assert [r.status for r in results] == ["ingested"] * 140
    assert [(a.uid, [r.text for r in a.revisions]) for a in app.store.export()] == expected
    assert "helper process" in caplog.text and "died" in caplog.text
