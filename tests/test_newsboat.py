"""A real feed reader: Debian's newsboat reloads the served feeds headless.

.ci/run installs newsboat; locally the test skips without it (under CI it fails).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedd.app import App
from feedd.feeds.title import make_title
from feedd.server import make_app as make_wsgi_app
from feedd.server import start_background
from tests.support import IN_CI, AppFactory, dump_bytes, seed_files, seed_texts

NEWSBOAT = shutil.which("newsboat")
if NEWSBOAT is None and IN_CI:
    pytest.fail("CI=true but newsboat is not installed (.ci/run installs it)", pytrace=False)
pytestmark = pytest.mark.skipif(NEWSBOAT is None, reason="newsboat is not installed")


def reload(urls: Path, cache: Path, home: Path) -> None:
    subprocess.run(
        [str(NEWSBOAT), "-u", str(urls), "-c", str(cache), "-C", "/dev/null", "-x", "reload"],
        check=True,
        capture_output=True,
        timeout=60,
        env={**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "TERM": "dumb"},
    )


def items(cache: Path, feed: str) -> list[tuple[str, str, int]]:
    with sqlite3.connect(cache) as conn:
        return conn.execute(
            "SELECT guid, title, unread FROM rss_item WHERE feedurl = ? ORDER BY id", (feed,)
        ).fetchall()


@pytest.mark.parametrize("name", ["feed.atom", "feed.rss"])
def test_newsboat_sees_every_item_once(make_app: AppFactory, tmp_path: Path, name: str) -> None:
    app: App = make_app()
    app.ingester.ingest_paths(seed_files())
    app.publish()
    wsgi = make_wsgi_app(app.store, app.output_dir, base_url=app.config.feed.base_url)
    with start_background(wsgi, "127.0.0.1", 0) as server:
        url = f"{server.url}/{name}"
        urls = tmp_path / "urls"
        urls.write_text(url + "\n")
        cache = tmp_path / "cache.db"
        reload(urls, cache, tmp_path)
        first = items(cache, url)
        assert len(first) == 47
        expected = {make_title(a.text): f"urn:uuid:{a.uid}" for a in app.store.articles()}
        assert {title for _, title, _ in first} == set(expected)
        assert {guid for guid, _, _ in first} == set(expected.values())

        # The reader reads everything; then one new article and one edit land.
        with sqlite3.connect(cache) as conn:
            conn.execute("UPDATE rss_item SET unread = 0")
        edited_source = seed_texts()[3]
        edited = edited_source.replace("的", "之", 1)
        new = "全新的一篇文章:本文介绍一种新的检索增强生成方法,并给出了完整的实验结果与分析。" * 3
        later = datetime.now(UTC) + timedelta(hours=1)
        result = app.ingester.ingest_bytes(
            "900_00000000000000aa.txt", dump_bytes(new, edited), later
        )
        assert (result.new, result.update) == (1, 1)
        app.publish()
        reload(urls, cache, tmp_path)
        second = items(cache, url)
        assert len(second) == 48, "an edit must not add an item"
        unread = [(guid, title) for guid, title, flag in second if flag]
        assert unread == [(f"urn:uuid:{app.store.articles(limit=1)[0].uid}", make_title(new))]
