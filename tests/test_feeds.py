"""RSS and Atom output from a real SQLite store, read back with real parsers."""

from __future__ import annotations

import email.utils
import errno
import html
import os
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest

import feedd.feeds.render as render_module
from feedd.app import App, build
from feedd.config import FeedConfig, load_config
from feedd.core.parse import parse_dump
from feedd.feeds.render import (
    UNDATED,
    article_id,
    entry_time,
    feed_id,
    first_url,
    render,
    render_updates,
    revision_id,
)
from feedd.feeds.title import make_title
from feedd.feeds.write import FeedWriteError, publish, render_feed, write_if_changed
from feedd.model import Article
from tests.support import seed_texts

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
BASE = "http://feeds.example.test:8080"
ATOM = "{http://www.w3.org/2005/Atom}"
RFC822 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def dump(*items: str) -> str:
    return "INCOMING TRANSMISSION\n\nLATEST UPDATES\n" + "\n".join(items) + "\n"


def numbered(first: int, last: int) -> list[str]:
    """Distinct articles: seed openings behind a numbered marker."""
    base = seed_texts()
    return [f"第{n}号:编号为{n}的文章。" + base[n][:200] for n in range(first, last + 1)]


def edited(text: str) -> str:
    # An edit, not a re-cut: the opening changes too.
    return "修订版:" + text + " 这是新增加的一句话,用来说明这次修订。"


_DB: dict[str, Callable[[str], str]] = {}


@pytest.fixture(autouse=True)
def _database(db_factory: Callable[[str], str]) -> Iterator[None]:
    # Every test here runs on SQLite and on PostgreSQL (see conftest.db_factory).
    _DB["factory"] = db_factory
    yield
    _DB.clear()


def make(tmp_path: Path, name: str = "feedd", overrides: dict[str, Any] | None = None) -> App:
    values: dict[str, Any] = {
        "database.url": _DB["factory"](name),
        "feed.output_dir": str(tmp_path / f"{name}-public"),
        "feed.base_url": BASE,
    }
    values.update(overrides or {})
    return build(load_config(None, env={}, overrides=values))


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[App]]:
    made: list[App] = []
    yield made
    for app in made:
        app.close()


@pytest.fixture
def seeded(tmp_path: Path, apps: list[App]) -> App:
    if not SEEDS.is_dir():
        pytest.skip(f"seed dumps not found at {SEEDS}")
    app = make(tmp_path)
    apps.append(app)
    app.ingester.ingest_paths(sorted(SEEDS.glob("*.txt")))
    return app


def feed_bytes(app: App, kind: str) -> bytes:
    articles = app.store.articles(limit=app.config.feed.max_items)
    return render(
        "rss" if kind == "rss" else "atom",
        articles,
        app.config.feed,
        self_url=f"{BASE}/feed.{kind}",
        updated=app.store.last_change(),
    )


# the seed feeds --------------------------------------------------------------
def test_publish_writes_both_feeds_with_every_seed_article_newest_first(seeded: App) -> None:
    out = Path(seeded.config.feed.output_dir)
    changed = publish(seeded.store, seeded.config.feed, out, base_url=BASE)
    assert changed == {"feed.rss": True, "feed.atom": True}
    assert not (out / "updates.atom").exists()  # include_updates is off by default

    articles = seeded.store.articles()
    assert len(articles) == 47
    expected_ids = [f"urn:uuid:{a.uid}" for a in articles]
    for name in ("feed.rss", "feed.atom"):
        parsed = feedparser.parse((out / name).read_bytes())
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert [e.id for e in parsed.entries] == expected_ids
        published = [e.published_parsed for e in parsed.entries]
        assert published == sorted(published, reverse=True)


def test_atom_has_what_the_spec_requires(seeded: App) -> None:
    data = feed_bytes(seeded, "atom")
    assert b'type="CDATA"' not in data
    root = ET.fromstring(data)
    assert root.tag == f"{ATOM}feed"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh"
    assert root.findtext(f"{ATOM}id") == feed_id(seeded.config.feed)
    assert root.findtext(f"{ATOM}id", "").startswith("urn:uuid:")
    assert root.findtext(f"{ATOM}title") == "feedd"
    assert root.findtext(f"{ATOM}subtitle")
    assert root.findtext(f"{ATOM}author/{ATOM}name") == "feedd"
    assert root.findtext(f"{ATOM}generator") == "feedd"
    last_change = seeded.store.last_change()
    assert last_change is not None
    assert root.findtext(f"{ATOM}updated") == last_change.isoformat()
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links == {"self": f"{BASE}/feed.atom", "alternate": f"{BASE}/"}

    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 47
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == 47
    by_id = {f"urn:uuid:{a.uid}": a for a in seeded.store.articles()}
    for entry in entries:
        article = by_id[entry.findtext(f"{ATOM}id", "")]
        assert entry.findtext(f"{ATOM}title") == make_title(article.text)
        updated = entry_time(article.updated_at, article.updated_line)
        assert entry.findtext(f"{ATOM}updated") == updated.isoformat()
        published = entry_time(article.first_seen, article.first_line)
        assert entry.findtext(f"{ATOM}published") == published.isoformat()
        content = entry.find(f"{ATOM}content")
        assert content is not None and content.get("type") == "html"
        assert content.text == html.escape(article.text.strip(), quote=False)
        assert entry.find(f"{ATOM}link") is not None


def test_rss_has_what_the_spec_requires(seeded: App) -> None:
    data = feed_bytes(seeded, "rss")
    root = ET.fromstring(data)
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None
    assert channel.findtext("title") == "feedd"
    assert channel.findtext("link") == f"{BASE}/"
    assert channel.findtext("description")
    assert channel.findtext("language") == "zh"
    assert channel.findtext("generator") == "feedd"
    self_link = channel.find(f"{ATOM}link")
    assert self_link is not None
    assert (self_link.get("rel"), self_link.get("href")) == ("self", f"{BASE}/feed.rss")
    build_date = channel.findtext("lastBuildDate", "")
    assert RFC822.match(build_date)
    last_change = seeded.store.last_change()
    assert last_change is not None
    assert email.utils.parsedate_to_datetime(build_date) == last_change.replace(microsecond=0)

    items = channel.findall("item")
    assert len(items) == 47
    for item in items:
        guid = item.find("guid")
        assert guid is not None and guid.text and guid.text.startswith("urn:uuid:")
        assert guid.get("isPermaLink") == "false"
        pub_date = item.findtext("pubDate", "")
        assert RFC822.match(pub_date), pub_date
        assert email.utils.parsedate_to_datetime(pub_date).tzinfo is not None
        assert item.findtext("title") and item.findtext("description") and item.findtext("link")


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_feedparser_reads_back_ids_titles_and_links(seeded: App, kind: str) -> None:
    parsed = feedparser.parse(feed_bytes(seeded, kind))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.feed.title == "feedd"
    articles = seeded.store.articles()
    assert [(e.id, e.title) for e in parsed.entries] == [
        (f"urn:uuid:{a.uid}", make_title(a.text)) for a in articles
    ]
    for entry, article in zip(parsed.entries, articles, strict=True):
        assert entry.link == (first_url(article.text) or f"{BASE}/articles/{article.uid}")


def test_an_item_links_to_the_url_in_its_text(seeded: App) -> None:
    links = {a.uid: first_url(a.text) for a in seeded.store.articles()}
    assert "https://arxiv.org/pdf/2302.13971.pdf" in links.values()  # the LLaMA item
    # Six of the 47 carry a URL; a seventh was cut by the listing ("https://github.c...").
    assert sum(1 for url in links.values() if url) == 6


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("见 https://example.com/a.", "https://example.com/a"),
        ("(see https://example.com/a), then", "https://example.com/a"),
        ("https://en.wikipedia.org/wiki/A_(b) is a page", "https://en.wikipedia.org/wiki/A_(b)"),
        ("地址:https://example.com/路径", "https://example.com/"),
        ("ftp://example.com and javascript:alert(1)", None),
        ("https:// nothing", None),
        ("代码: https://github.c...", None),
        ("代码: https://github.com/a/b…", None),
        ('还有 <a href="http://evil">link</a> 都要原样显示', None),
        ("<img src=http://evil/x.png> 见 https://example.com/a", "https://example.com/a"),
        ("a<b 见 https://example.com/a", None),  # read as a tag: no link is safer
    ],
)
def test_first_url(text: str, url: str | None) -> None:
    assert first_url(text) == url


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_rendering_twice_gives_the_same_bytes(seeded: App, kind: str) -> None:
    assert feed_bytes(seeded, kind) == feed_bytes(seeded, kind)


def test_publishing_again_changes_nothing(seeded: App) -> None:
    out = Path(seeded.config.feed.output_dir)
    publish(seeded.store, seeded.config.feed, out, base_url=BASE)
    past = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    for name in ("feed.rss", "feed.atom"):
        os.utime(out / name, (past, past))
    assert publish(seeded.store, seeded.config.feed, out, base_url=BASE) == {
        "feed.rss": False,
        "feed.atom": False,
    }
    assert all((out / name).stat().st_mtime == past for name in ("feed.rss", "feed.atom"))


def test_ids_and_bytes_are_stable_across_a_fresh_database(
    seeded: App, tmp_path: Path, apps: list[App]
) -> None:
    other = make(tmp_path, "other")
    apps.append(other)
    other.ingester.ingest_paths(sorted(SEEDS.glob("*.txt")))
    assert [a.uid for a in other.store.articles()] == [a.uid for a in seeded.store.articles()]
    for kind in ("rss", "atom"):
        assert feed_bytes(other, kind) == feed_bytes(seeded, kind)


def test_max_items_caps_the_feed(tmp_path: Path, apps: list[App]) -> None:
    app = make(tmp_path, overrides={"feed.max_items": 5})
    apps.append(app)
    app.ingester.ingest_paths(sorted(SEEDS.glob("*.txt")))
    newest = [f"urn:uuid:{a.uid}" for a in app.store.articles(limit=5)]
    for kind in ("rss", "atom"):
        parsed = feedparser.parse(render_feed(app.store, app.config.feed, kind))
        assert [e.id for e in parsed.entries] == newest
    many = app.store.articles()
    data = render("atom", many, app.config.feed, self_url=f"{BASE}/feed.atom", updated=None)
    assert len(feedparser.parse(data).entries) == 5


def test_an_empty_store_gives_a_valid_stable_feed_not_dated_1970(
    tmp_path: Path, apps: list[App]
) -> None:
    app = make(tmp_path)
    apps.append(app)
    for kind in ("rss", "atom"):
        data = render_feed(app.store, app.config.feed, kind)
        assert data == render_feed(app.store, app.config.feed, kind)
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0 and parsed.entries == []
        assert parsed.feed.updated_parsed.tm_year != 1970
    atom = ET.fromstring(render_feed(app.store, app.config.feed, "atom"))
    assert atom.findtext(f"{ATOM}updated") == UNDATED.isoformat()


def test_a_feed_without_entries_is_dated_when_the_store_first_recorded_something(
    tmp_path: Path, apps: list[App]
) -> None:
    app = make(tmp_path, overrides={"feed.include_updates": True})
    apps.append(app)

    def dated(updates: bool) -> str:
        parsed = feedparser.parse(render_feed(app.store, app.config.feed, "atom", updates=updates))
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        return str(parsed.feed.updated)

    # Only rejected dumps: the feed is dated when the first one was recorded,
    # and stays so as more arrive.
    for n in (1, 2):
        result = app.ingester.ingest_bytes(f"00{n}_{n:016x}.txt", b"\x00\x01\x02 binary", T0)
        assert result.status == "rejected"
    first_recorded = app.store.dumps()[-1].ingested_at
    assert dated(updates=False) == first_recorded.isoformat()
    assert not dated(updates=False).startswith("1970")

    # Articles but no revision yet: the updates feed is dated at the oldest
    # article, and a later dump of new articles leaves its bytes alone.
    app.ingester.ingest_bytes("003_0000000000000003.txt", dump(*numbered(1, 3)).encode(), T0)
    assert dated(updates=True) == T0.isoformat()
    before = render_feed(app.store, app.config.feed, "atom", updates=True)
    later = T0 + timedelta(hours=1)
    app.ingester.ingest_bytes("004_0000000000000004.txt", dump(*numbered(4, 6)).encode(), later)
    assert render_feed(app.store, app.config.feed, "atom", updates=True) == before
    assert dated(updates=False) == later.isoformat()


def test_entries_of_one_dump_get_distinct_stable_times(tmp_path: Path, apps: list[App]) -> None:
    app = make(tmp_path, overrides={"feed.include_updates": True})
    apps.append(app)

    def atom_times(updates: bool) -> dict[str, tuple[str, str]]:
        parsed = feedparser.parse(render_feed(app.store, app.config.feed, "atom", updates=updates))
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        stamps = [e.updated for e in parsed.entries]
        assert len(set(stamps)) == len(stamps), "W3C: DuplicateUpdated"
        return {e.id: (e.published, e.updated) for e in parsed.entries}

    items = numbered(1, 10)
    result = app.ingester.ingest_bytes("001_0000000000000001.txt", dump(*items).encode(), T0)
    assert result.new == 10
    first = atom_times(updates=False)
    assert len(first) == 10
    # One dump, listed newest on top: the times go down the feed as its order does.
    for column in (0, 1):
        stamps = [datetime.fromisoformat(times[column]) for times in first.values()]
        assert stamps == sorted(stamps, reverse=True)
        assert all(T0 - timedelta(seconds=1) < stamp < T0 for stamp in stamps)

    # Ten edits in one later dump: ten revisions with ten distinct times, and
    # the articles keep their first-seen times.
    later = T0 + timedelta(hours=1)
    data = dump(*numbered(11, 12), *map(edited, items)).encode()
    result = app.ingester.ingest_bytes("002_0000000000000002.txt", data, later)
    assert (result.new, result.update) == (2, 10)
    revisions = atom_times(updates=True)
    assert len(revisions) == 10
    articles = atom_times(updates=False)
    assert len(articles) == 12
    assert {uid: articles[uid][0] for uid in first} == {uid: p for uid, (p, _) in first.items()}

    # A later dump (two new articles, the rest repeats) changes no existing time.
    even_later = later + timedelta(hours=1)
    data = dump(*numbered(13, 14), *map(edited, items)).encode()
    app.ingester.ingest_bytes("003_0000000000000003.txt", data, even_later)
    assert atom_times(updates=True) == revisions
    now = atom_times(updates=False)
    assert {uid: now[uid] for uid in articles} == articles


# untrusted text --------------------------------------------------------------
HOSTILE = [
    "控制字符\x01在这里,还有\x0b垂直制表和\x1b转义,以及\ufffe非字符。",
    "脚本注入<script>alert(1)</script>,请不要执行它。",
    "CDATA 的结束符 ]]> 出现在正文里,必须转义。",
    "实体 &amp; 和裸露的 & 符号,都要原样显示。",
    "这是一个正常的条目,介绍扩散模型的基本原理。",
]


@pytest.fixture
def hostile(tmp_path: Path, apps: list[App]) -> App:
    app = make(tmp_path)
    apps.append(app)
    # NUL is refused at parse time (binary; PostgreSQL text cannot hold it),
    # so the hostile controls here are the ones a text dump can carry.
    data = dump(*HOSTILE).encode("utf-8")
    result = app.ingester.ingest_bytes("001_0123456789abcdef.txt", data, T0)
    assert (result.status, result.new) == ("ingested", 5), result.reason
    texts = {a.text for a in app.store.articles()}
    assert any("\x01" in t and "\ufffe" in t for t in texts)  # the store keeps what it read
    return app


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_hostile_text_gives_well_formed_feeds(hostile: App, kind: str) -> None:
    data = feed_bytes(hostile, kind)
    ET.fromstring(data)
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert len(parsed.entries) == 5
    assert b"<script" not in data
    assert b"]]>" not in data
    assert b"CDATA[" not in data
    assert b"& " not in data  # every ampersand is escaped
    titles = {e.title for e in parsed.entries}
    assert "这是一个正常的条目,介绍扩散模型的基本原理" in titles


def test_hostile_text_reaches_an_atom_reader_as_escaped_html(hostile: App) -> None:
    # type="html" holding the escaped text: an HTML renderer shows the text.
    parsed = feedparser.parse(feed_bytes(hostile, "atom"))
    assert {c.get("type") for e in parsed.entries for c in e.content} == {"text/html"}
    contents = {html.unescape(e.content[0].value) for e in parsed.entries}
    assert "脚本注入<script>alert(1)</script>,请不要执行它。" in contents
    assert "实体 &amp; 和裸露的 & 符号,都要原样显示。" in contents
    assert "控制字符在这里,还有垂直制表和转义,以及非字符。" in contents


def test_hostile_text_reaches_an_rss_reader_as_escaped_html(hostile: App) -> None:
    # An RSS description is HTML by convention: the tag arrives as &lt;script&gt;.
    parsed = feedparser.parse(feed_bytes(hostile, "rss"))
    summaries = {e.summary for e in parsed.entries}
    assert "脚本注入&lt;script&gt;alert(1)&lt;/script&gt;,请不要执行它。" in summaries
    assert "实体 &amp; 和裸露的 & 符号,都要原样显示。" in {html.unescape(s) for s in summaries}


def article(number: int, text: str, **changes: Any) -> Article:
    base = Article(
        id=number,
        uid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"article-{number}")),
        first_seen=T0,
        last_seen=T0,
        updated_at=T0,
        current_revision=1,
        revision_count=1,
        text=text,
    )
    return replace(base, **changes)


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_a_lone_surrogate_is_dropped(kind: str) -> None:
    data = render(
        "rss" if kind == "rss" else "atom",
        [article(1, "孤立的代理项 \ud800 在正文中。")],
        FeedConfig(),
        self_url="http://x/feed",
        updated=None,
    )
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0 and parsed.entries[0].title == "孤立的代理项 在正文中"


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_one_bad_item_does_not_fail_the_feed(
    kind: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fragile(text: str, max_chars: int = 80) -> str:
        if "BAD" in text:
            raise ValueError("All strings must be XML compatible")
        return make_title(text, max_chars)

    monkeypatch.setattr(render_module, "make_title", fragile)
    articles = [article(1, "第一条正常的内容。"), article(2, "BAD 条目。"), article(3, "第三条。")]
    data = render(
        "rss" if kind == "rss" else "atom",
        articles,
        FeedConfig(),
        self_url="http://x/feed",
        updated=T0,
    )
    parsed = feedparser.parse(data)
    assert [e.id for e in parsed.entries] == [article_id(articles[0]), article_id(articles[2])]
    assert "left" in caplog.text and articles[1].uid in caplog.text


def test_naive_times_are_taken_as_utc() -> None:
    naive = T0.replace(tzinfo=None)
    item = article(1, "时间没有时区。", first_seen=naive, updated_at=naive)
    data = render("atom", [item], FeedConfig(), self_url="http://x/feed", updated=naive)
    root = ET.fromstring(data)
    assert root.findtext(f"{ATOM}updated") == T0.isoformat()


# the updates feed ------------------------------------------------------------
def test_the_updates_feed_has_one_entry_per_new_revision(tmp_path: Path, apps: list[App]) -> None:
    app = make(tmp_path, overrides={"feed.include_updates": True})
    apps.append(app)
    items = [i.text for i in parse_dump((SEEDS / "000_d0e46117916ee2ce.txt").read_bytes()).items]
    first, edited, third = items[0], items[1], items[2]
    app.ingester.ingest_bytes("001_aaaaaaaaaaaaaaaa.txt", dump(*items[:3]).encode(), T0)
    # An edit, not a re-cut: the opening changes too (a cut text shown longer
    # is the same revision).
    longer = "修订版:" + edited.rstrip(".…") + " 这是新增加的一句话,用来说明这次修订。"
    later = T0 + timedelta(days=1)
    result = app.ingester.ingest_bytes(
        "002_bbbbbbbbbbbbbbbb.txt", dump(first, longer, third).encode(), later
    )
    assert (result.new, result.update) == (0, 1)

    out = tmp_path / "public"
    changed = publish(app.store, app.config.feed, out, base_url=BASE)
    assert changed == dict.fromkeys(["feed.rss", "feed.atom", "updates.rss", "updates.atom"], True)

    updated = next(a for a in app.store.articles() if a.revision_count == 2)
    for name in ("updates.rss", "updates.atom"):
        parsed = feedparser.parse((out / name).read_bytes())
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert len(parsed.entries) == 1
        entry = parsed.entries[0]
        assert entry.id == revision_id(updated, 2)
        assert entry.id != article_id(updated)
        assert entry.link == f"{BASE}/articles/{updated.uid}"
        assert entry.title.endswith("(revision 2)")
        assert "这是新增加的一句话" in entry.summary
        assert {link.get("href") for link in parsed.feed.links if link.get("rel") == "self"} == {
            f"{BASE}/{name}"
        }

    atom = ET.fromstring((out / "updates.atom").read_bytes())
    assert atom.findtext(f"{ATOM}updated") == later.isoformat()
    assert atom.findtext(f"{ATOM}id") != feed_id(app.config.feed)
    main = feedparser.parse((out / "feed.atom").read_bytes())
    entry = next(e for e in main.entries if e.id == article_id(updated))
    assert entry.published == entry_time(T0, updated.first_line).isoformat()
    assert entry.updated == entry_time(later, updated.updated_line).isoformat()
    assert "这是新增加的一句话" in entry.content[0].value


def test_revision_ids_are_stable_and_distinct() -> None:
    item = article(1, "x")
    assert revision_id(item, 2) == revision_id(item, 2)
    assert revision_id(item, 2) != revision_id(item, 3)
    assert revision_id(article(2, "x"), 2) != revision_id(item, 2)
    assert revision_id(replace(item, uid="not-a-uuid"), 2).startswith("urn:uuid:")


def test_render_updates_keeps_order_and_cap() -> None:
    from feedd.model import UpdateEntry

    entries = [
        UpdateEntry(article(n, f"文章 {n}。"), 2, f"文章 {n} 的第二版。", T0 - timedelta(hours=n))
        for n in range(1, 8)
    ]
    data = render_updates(
        "atom", entries, FeedConfig(max_items=3), self_url="http://x/u", updated=T0
    )
    parsed = feedparser.parse(data)
    assert [e.id for e in parsed.entries] == [revision_id(e.article, 2) for e in entries[:3]]


# writing ---------------------------------------------------------------------
def test_write_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    assert write_if_changed(path, b"one") is True
    assert path.read_bytes() == b"one"
    assert path.stat().st_mode & 0o777 == 0o644
    past = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    os.utime(path, (past, past))
    assert write_if_changed(path, b"one") is False
    assert path.stat().st_mtime == past
    assert write_if_changed(path, b"two") is True
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.atom"]


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failing_write_leaves_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "feed.atom"
    write_if_changed(path, b"old feed")

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, disk_full)
    with pytest.raises(FeedWriteError, match="No space left on device") as info:
        write_if_changed(path, b"new feed")
    monkeypatch.undo()
    assert "feed.output_dir" in str(info.value)
    assert path.read_bytes() == b"old feed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.atom"]


def test_publish_into_an_unusable_folder_raises_feed_write_error(
    seeded: App, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(FeedWriteError, match="feed.output_dir"):
        publish(seeded.store, seeded.config.feed, blocker, base_url=BASE)
