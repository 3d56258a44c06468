"""A small history for the web tests: the seed dumps, an edited article, a
re-cut, a hostile text, a category and a rejected dump; served by a real
waitress on a loopback port. Shared by tests/test_web_pages.py and
tests/test_web_api.py."""

from __future__ import annotations

import gzip
import http.client
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

from feedd.app import App
from feedd.model import Article
from feedd.web.serve import start_background
from tests.support import AppFactory, dump_bytes, seed_files

EDIT_V1 = (
    "研究团队提出了一种新的检索增强方法，在长文档问答上显著优于此前的基线，"
    "并公开了训练脚本、评测数据与全部模型权重，供社区复现与改进。"
)
EDIT_V2 = (
    "研究团队提出了一种新的检索增强方法，在长文档问答与多跳推理上显著优于此前的基线，"
    "并公开了训练脚本、评测数据与全部模型权重，供社区复现与改进。"
)
# Markup, a right-to-left override and a zero-width space: the page must show
# it as text, escaped, and isolated so that it reorders nothing around it.
HOSTILE = (
    "<script>alert('x')</script>\u202e反转\u200b 一个开源的多模态评测框架发布了新版本，"
    "支持视频理解、图表问答与长上下文检索，并提供统一的排行榜与可复现的评测配置。"
)
HOSTILE_RECUT = HOSTILE[:60] + "…"
CATEGORY = "机器学习"
DATE = "2026-01-05"
BAD_DUMP = "903_dddddddddddddddd.txt"


@dataclass
class Site:
    app: App
    port: int
    edited: Article  # two revisions
    hostile: Article  # one revision, then a re-cut sighting

    def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, Message, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.msg, response.read()
        finally:
            conn.close()

    def page(self, path: str, **kwargs: Any) -> str:
        status, headers, body = self.get(path, **kwargs)
        assert status == 200, (path, status, body[:300])
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return body.decode("utf-8")

    def json(self, path: str) -> Any:
        status, headers, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        assert headers["Content-Type"] == "application/json"
        return json.loads(body)


def build_history(app: App) -> tuple[Article, Article]:
    """Ingest the seeds and the crafted dumps; (the edited, the hostile) article."""
    app.ingester.ingest_paths(seed_files())
    seeds = app.store.articles()
    start = max(a.first_seen for a in seeds) + timedelta(hours=1)
    app.ingester.ingest_bytes(
        "900_aaaaaaaaaaaaaaaa.txt", dump_bytes(CATEGORY, EDIT_V1, DATE, HOSTILE), start
    )
    app.ingester.ingest_bytes(
        "901_bbbbbbbbbbbbbbbb.txt",
        dump_bytes(EDIT_V2, HOSTILE_RECUT),
        start + timedelta(minutes=5),
    )
    rejected = app.ingester.ingest_bytes(BAD_DUMP, b"\x00\x01\x02 not a dump", start)
    assert rejected.status == "rejected"
    app.publish()
    found = {a.text: a for a in app.store.articles()}
    edited = app.store.article(found[EDIT_V2].uid)
    hostile = app.store.article(found[HOSTILE].uid)
    assert edited is not None and edited.revision_count == 2
    assert hostile is not None and hostile.revision_count == 1
    return edited, hostile


@contextmanager
def serve_site(make_app: AppFactory, **overrides: Any) -> Iterator[Site]:
    app = make_app(**overrides)
    edited, hostile = build_history(app)
    with start_background(app.wsgi(), "127.0.0.1", 0, threads=4) as server:
        yield Site(app, server.port, edited, hostile)


def now() -> datetime:
    return datetime.now(UTC)


_ROW = re.compile(r'<tr class="article" data-uid="([0-9a-f-]+)">(.*?)</tr>', re.S)


def rows(page: str) -> list[tuple[str, str]]:
    """(uid, the row's HTML) of each article row of an index page."""
    return _ROW.findall(page)


def link(page: str, rel: str) -> str | None:
    """The href of the page's ``<a rel=...>``, unescaped."""
    match = re.search(rf'<a rel="{rel}" href="([^"]*)"', page)
    return match.group(1).replace("&amp;", "&") if match else None
