"""Fuzzing the whole path: bytes -> parse -> ingest -> feeds.

Whatever a dump holds, nothing raises but InvalidDump (which becomes a recorded
rejection), and every feed stays well-formed XML that feedparser reads without
complaint (bozo == 0).
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
from hypothesis import HealthCheck, example, find, given, settings
from hypothesis import strategies as st

from feedd.app import App, build
from feedd.config import FeedConfig, load_config
from feedd.core.parse import parse_dump
from feedd.errors import InvalidDump
from feedd.feeds.render import render, render_updates
from feedd.feeds.write import render_feed
from feedd.model import Article, UpdateEntry
from tests.test_crash import HEADER

START = datetime(2025, 1, 1, tzinfo=UTC)
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-be", "gb18030")

# Characters that break naive XML writers and feed readers, mixed into text.
NASTY = st.sampled_from(
    ["\x00", "\x01", "\x0b", "\x1b", "\x7f", "\x85", "\x9f", "\ufeff", "\ufffe", "\uffff"]
    + ["\u2028", "\u202e", "]]>", "<![CDATA[", "&amp;", "&#0;", "<script>", "\r", "😀", "哈" * 300]
    + ["https://example.com/a_(b)", "http://[::1", "…", "。", "2025-01-01", "1 2 3 下一页"]
)
LONE_SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
LINE = st.lists(st.one_of(st.text(max_size=60), NASTY, LONE_SURROGATE), max_size=6).map("".join)


def _encode(lines: list[str], encoding: str) -> bytes:
    body = HEADER + "\n".join(lines)
    if encoding == "utf-16-be":
        return b"\xfe\xff" + body.encode("utf-16-be", "surrogatepass")
    return body.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")


DUMPS = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda b: HEADER.encode() + b),
    st.builds(_encode, st.lists(LINE, max_size=8), st.sampled_from(ENCODINGS)),
)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("fuzz")
    app = build(
        load_config(
            None,
            env={},
            overrides={
                "database.url": f"sqlite:///{root / 'feedd.db'}",
                "feed.output_dir": str(root / "public"),
                "feed.include_updates": True,
                "feed.max_items": 20,
            },
        )
    )
    yield app
    app.close()


def assert_reads_cleanly(data: bytes) -> feedparser.FeedParserDict:
    ET.fromstring(data)  # well-formed, or this raises
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


_names = itertools.count()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=DUMPS)
def test_any_dump_ingests_or_is_rejected_and_the_feeds_stay_valid(
    fuzz_app: App, data: bytes
) -> None:
    n = next(_names)
    try:
        parsed = parse_dump(data)
    except InvalidDump as exc:
        assert exc.reason.strip(), "a rejection says why"
        parsed = None
    observed = START + timedelta(minutes=n)  # newest first: this dump's items lead the feed
    result = fuzz_app.ingester.ingest_bytes(f"fuzz_{n}.txt", data, observed)
    if parsed is None:
        assert result.status == "rejected" and result.reason
    else:
        assert result.status == "ingested" and result.items == len(parsed.items)
    for kind in ("rss", "atom"):
        for updates in (False, True):
            out = render_feed(fuzz_app.store, fuzz_app.config.feed, kind, updates=updates)
            feed = assert_reads_cleanly(out)
            if not updates:
                fresh = result.new if result.status == "ingested" else 0
                assert len(feed.entries) >= min(fresh, fuzz_app.config.feed.max_items)


def _article(n: int, text: str) -> Article:
    at = START + timedelta(hours=n)
    uid = f"00000000-0000-5000-8000-{n:012d}"
    return Article(n, uid, at, at, at, 1, 1, text, text)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.one_of(st.text(), LINE), min_size=1, max_size=5))
@example(texts=["见 http://[::1 这个地址,它没有写完。"])  # urlsplit raises on it
@example(texts=["孤立的\udc80代理项\ud800", "\x00\x1b\ufffe"])
def test_any_text_even_lone_surrogates_renders_as_a_valid_feed(texts: list[str]) -> None:
    # Surrogates cannot come out of a decoded dump, but the renderer must not
    # rely on that: text from any store is cleaned before it reaches XML.
    articles = [_article(n, t) for n, t in enumerate(texts)]
    config = FeedConfig()
    for kind in ("rss", "atom"):
        feed = assert_reads_cleanly(
            render(kind, articles, config, self_url="http://x/feed", updated=START)
        )
        assert len(feed.entries) == len(articles), "no entry dropped"
        updates = [UpdateEntry(a, 2, a.text + "。", a.first_seen) for a in articles]
        assert_reads_cleanly(
            render_updates(kind, updates, config, self_url="http://x/updates", updated=START)
        )


def _items(data: bytes) -> int:
    try:
        return len(parse_dump(data).items)
    except InvalidDump:
        return -1


@pytest.mark.parametrize(
    ("what", "condition"),
    [
        ("a rejected file", lambda d: _items(d) < 0),
        ("a dump with items", lambda d: _items(d) > 0),
        (
            "a UTF-16 dump with items",
            lambda d: d[:2] in (b"\xff\xfe", b"\xfe\xff") and _items(d) > 0,
        ),
        ("a lone surrogate in UTF-16", lambda d: d[:2] == b"\xff\xfe" and b"\x00\xdc" in d),
    ],
)
def test_the_fuzzer_reaches(what: str, condition: Callable[[bytes], bool]) -> None:
    # Guard against a strategy that only ever produces one kind of input.
    assert condition(find(DUMPS, condition, settings=settings(max_examples=2000)))
