"""A real feed reader: Debian's newsboat reloads the served feeds headless.

.ci/run installs newsboat; locally the test skips without it (under CI it fails).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import termios
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedd.app import App
from feedd.feeds.title import make_title
from feedd.web import make_app as make_wsgi_app
from feedd.web.serve import start_background
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


# What newsboat shows a person: its article view, saved to a file ('s' saves
# the rendered article). Driven through a pseudo-terminal, as a person would.
HOSTILE = (
    "恶意条目:实体 & 和 <b>x</b> 以及 <script>alert(1)</script> 还有 "
    '<a href="http://evil">link</a> 都要原样显示,这是一段足够长的正文。'
)


def _drain(fd: int, quiet: float = 0.5, limit: float = 15.0) -> bytes:
    """Read the screen output until it has been quiet for ``quiet`` seconds."""
    out = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], quiet)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    return out


def rendered_article(url: str, work: Path) -> str:
    """The first article of the feed at ``url`` as newsboat's article view shows it."""
    work.mkdir(parents=True, exist_ok=True)
    saved = work / "saved"
    saved.mkdir()
    (work / "urls").write_text(url + "\n")
    (work / "config").write_text(f'save-path "{saved}"\n')
    cache = work / "cache.db"
    reload(work / "urls", cache, work)
    env = {**os.environ, "HOME": str(work), "XDG_CONFIG_HOME": str(work), "TERM": "xterm"}
    argv = [str(NEWSBOAT), "-u", str(work / "urls"), "-c", str(cache), "-C", str(work / "config")]
    pid, fd = pty.fork()
    if pid == 0:  # the child: newsboat on the terminal
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    screen = b""
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        screen += _drain(fd)
        # Open the feed, open its article, save it under the default name.
        for key in (b"\r", b"\r", b"s", b"\r"):
            os.write(fd, key)
            screen += _drain(fd)
        deadline = time.monotonic() + 15
        while not any(saved.iterdir()) and time.monotonic() < deadline:
            screen += _drain(fd, quiet=0.2, limit=0.5)
        os.write(fd, b"Q")
        _drain(fd, limit=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    files = list(saved.iterdir())
    assert len(files) == 1, f"newsboat saved {files}; screen ended: {screen[-2000:]!r}"
    return files[0].read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["feed.atom", "feed.rss"])
def test_newsboat_shows_hostile_text_literally(
    make_app: AppFactory, tmp_path: Path, name: str
) -> None:
    app: App = make_app()
    result = app.ingester.ingest_bytes(
        "001_0123456789abcdef.txt", dump_bytes(HOSTILE), datetime(2026, 3, 1, 8, tzinfo=UTC)
    )
    assert result.new == 1, result.reason
    app.publish()
    wsgi = make_wsgi_app(app.store, app.output_dir, base_url=app.config.feed.base_url)
    with start_background(wsgi, "127.0.0.1", 0) as server:
        shown = rendered_article(f"{server.url}/{name}", tmp_path / "reader")

    head, _, body = shown.partition("\n \n")
    headers = dict(line.split(": ", 1) for line in head.splitlines() if ": " in line)
    assert headers["Title"] == make_title(HOSTILE)
    # The reader wraps lines (at spaces, or anywhere in CJK text).
    assert "".join(HOSTILE.split()) in "".join(body.split()), shown
    assert "evil" not in headers["Link"], "the item must not link to a URL inside markup"
    assert "Links:" not in body, "the text must not become live links"
