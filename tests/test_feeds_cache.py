"""The entry cache of feedd.feeds.render: a cached render is byte for byte a fresh one.

The daemon keeps one ``EntryCache`` per App and re-renders after every dump;
what it writes must be exactly what a fresh render of the same articles
would write, however the articles changed in between.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import feedd.feeds.render as render_module
from feedd.app import build
from feedd.config import FeedConfig, load_config
from feedd.feeds.render import EntryCache, FeedKind, render, render_updates
from feedd.feeds.title import make_title
from feedd.feeds.write import render_feed
from feedd.model import Article, UpdateEntry
from tests.support import dump_bytes, seed_texts

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
KINDS: tuple[FeedKind, ...] = ("rss", "atom")
# Texts a scraped listing gives: Chinese, markup, URLs, characters XML refuses.
TEXTS = st.one_of(
    st.text(min_size=1, max_size=120),
    st.sampled_from(
        [
            "第一条正常的内容。",
            "<script>alert(1)</script> & 一些文字",
            "详见 https://example.com/a_(b). 结束",
            "控制字符\x00\x0b\x1b在这里\ufffe",
            "BAD 条目。",
            "很长的标题" * 40,
        ]
    ),
)


def article(n: int, text: str, *, revision: int = 1, at: datetime = T0) -> Article:
    return Article(
        id=n,
        uid=f"00000000-0000-4000-8000-{n:012x}",
        first_seen=T0 + timedelta(minutes=n),
        last_seen=at,
        updated_at=at,
        current_revision=revision,
        revision_count=revision,
        text=text,
        first_line=n % 7,
        updated_line=(n + revision) % 7,
    )


def both(
    kind: FeedKind, arts: list[Article], feed: FeedConfig, cache: EntryCache
) -> tuple[bytes, bytes]:
    """(fresh, cached) renders of the article feed."""
    args = {"self_url": f"{feed.base_url}/feed.{kind}", "updated": T0}
    return render(kind, arts, feed, **args), render(kind, arts, feed, cache=cache, **args)


def updates_of(arts: list[Article]) -> list[UpdateEntry]:
    return [
        UpdateEntry(a, a.current_revision, a.text, a.updated_at, a.updated_line)
        for a in arts
        if a.current_revision > 1
    ]


# A step changes the listing as ingest would: a new article on top, an edit
# (a new revision), the oldest dropped, or a feed setting changed.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("new"), TEXTS),
        st.tuples(st.just("edit"), st.integers(0, 20), TEXTS),
        st.tuples(st.just("drop")),
        st.tuples(st.just("max_items"), st.integers(1, 6)),
        st.tuples(st.just("title_max_chars"), st.integers(8, 80)),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(start=st.lists(TEXTS, max_size=6), steps=STEPS)
def test_a_cached_render_is_byte_identical_to_a_fresh_one(
    start: list[str],
    steps: list[tuple[Any, ...]],
) -> None:
    arts = [article(n, text) for n, text in enumerate(start)]
    feed = FeedConfig(max_items=4)
    cache = EntryCache()
    for step in [("start",), *steps]:
        if step[0] == "new":
            arts.insert(0, article(len(arts) + 100, step[1]))
        elif step[0] == "edit" and arts:
            old = arts[step[1] % len(arts)]
            new = replace(
                old,
                text=step[2],
                current_revision=old.current_revision + 1,
                revision_count=old.revision_count + 1,
                updated_at=old.updated_at + timedelta(hours=1),
                updated_line=old.updated_line + 1,
            )
            arts[arts.index(old)] = new
        elif step[0] == "drop" and arts:
            arts.pop()
        elif step[0] in ("max_items", "title_max_chars"):
            feed = replace(feed, **{step[0]: step[1]})
        for kind in KINDS:
            fresh, cached = both(kind, arts, feed, cache)
            assert cached == fresh, step
            updates = updates_of(arts)
            args = {"self_url": "http://x/updates", "updated": T0}
            assert render_updates(kind, updates, feed, cache=cache, **args) == render_updates(
                kind, updates, feed, **args
            )


def test_a_kept_entry_is_not_built_again(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    fill = render_module._article_entry

    def counting(fe, kind, art, feed):  # type: ignore[no-untyped-def]
        built.append(art.uid)
        fill(fe, kind, art, feed)

    monkeypatch.setattr(render_module, "_article_entry", counting)
    arts = [article(n, f"第{n}条内容。") for n in range(5)]
    feed, cache = FeedConfig(), EntryCache()
    both("atom", arts, feed, cache)
    built.clear()
    both("atom", arts, feed, cache)
    assert built == [a.uid for a in arts]  # by the fresh render only
    built.clear()
    newer = [article(9, "新的一条。"), *arts]
    render("atom", newer, feed, self_url="http://x/feed", updated=T0, cache=cache)
    assert built == [newer[0].uid]  # only the new article is built
    built.clear()
    render("rss", newer, feed, self_url="http://x/feed", updated=T0, cache=cache)
    assert len(built) == len(newer)  # each kind keeps its own entries


def test_the_cache_keeps_only_what_the_last_render_showed() -> None:
    feed, cache = FeedConfig(max_items=3), EntryCache()
    for first in range(0, 30, 5):
        arts = [article(n, f"第{n}条。") for n in range(first, first + 10)]
        for kind in KINDS:
            render(kind, arts, feed, self_url="http://x/feed", updated=T0, cache=cache)
        assert len(cache) == 2 * feed.max_items
    render("atom", arts, replace(feed, title="other"), self_url="x", updated=T0, cache=cache)
    assert len(cache) == feed.max_items  # another config: the old entries are gone


def test_a_bad_entry_is_left_out_and_logged_at_every_render(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fragile(text: str, max_chars: int = 80) -> str:
        if "BAD" in text:
            raise ValueError("All strings must be XML compatible")
        return make_title(text, max_chars)

    monkeypatch.setattr(render_module, "make_title", fragile)
    arts = [article(1, "第一条。"), article(2, "BAD 条目。"), article(3, "第三条。")]
    feed, cache = FeedConfig(), EntryCache()
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="feedd.feeds"):
            fresh, cached = both("atom", arts, feed, cache)
        assert cached == fresh and b"BAD" not in cached
        assert caplog.text.count(arts[1].uid) == 2  # the fresh render and the cached one


def test_publish_through_the_app_renders_what_a_fresh_render_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's path: App.publish with the App's cache, after each dump."""
    app = build(
        load_config(
            None,
            env={},
            overrides={
                "database.url": f"sqlite:///{tmp_path / 'feedd.db'}",
                "feed.output_dir": str(tmp_path / "public"),
                "feed.include_updates": True,
            },
        )
    )
    try:
        base = seed_texts()
        texts = [f"第{n}号:编号为{n}的文章。" + base[n][:200] for n in range(8)]
        for i in range(3):
            shown = texts[i * 2 : i * 2 + 5]
            if i == 2:  # an article of the dump before, edited: an update
                shown[0] += " 这是新增加的一句话,用来说明这次修订。"
            app.ingester.ingest_bytes(
                f"{i:03d}_{i:016x}.txt", dump_bytes(*shown), T0 + timedelta(hours=i)
            )
            app.publish()
            for name, kind, updates in (
                ("feed.atom", "atom", False),
                ("feed.rss", "rss", False),
                ("updates.atom", "atom", True),
                ("updates.rss", "rss", True),
            ):
                fresh = render_feed(app.store, app.config.feed, kind, updates=updates)
                assert (tmp_path / "public" / name).read_bytes() == fresh, (i, name)
        assert app.store.updates(limit=5), "the last dump should have brought an update"
        assert len(app.feed_cache) > 0
    finally:
        app.close()
