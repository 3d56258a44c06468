"""The JSON API over real HTTP, on SQLite and PostgreSQL: the shapes are the
CLI's `--json` (feedd/shapes.py, asked of a real `feedd` process), the
cursors page through everything once, and bad parameters are a 400 that
says which."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from feedd import shapes
from tests.support import AppFactory
from tests.web_site import BAD_DUMP, Site, serve_site


@pytest.fixture
def site(make_app: AppFactory) -> Iterator[Site]:
    with serve_site(make_app) as served:
        yield served


def feedd_json(site: Site, tmp_path: Path, *args: str) -> Any:
    """What the CLI prints with --json, on the site's database and folders."""
    config = site.app.config
    env = {
        "FEEDD_DATABASE_URL": config.database_url,
        "FEEDD_FEED_OUTPUT_DIR": str(site.app.output_dir),
        "FEEDD_INGEST_WATCH_DIR": str(site.app.watch_dir),
        "FEEDD_INGEST_QUARANTINE_DIR": str(config.path(config.ingest.quarantine_dir)),
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "feedd", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_api_answers_in_the_cli_json_shapes(site: Site, tmp_path: Path) -> None:
    api = site.json("/api/articles?limit=5")
    cli = feedd_json(site, tmp_path, "articles", "--limit", "5")
    assert api["articles"] == cli
    assert set(cli[0]) == {
        "id",
        "title",
        "first_seen",
        "last_seen",
        "updated_at",
        "revisions",
        "updated",
    }
    uid = site.edited.uid
    history = feedd_json(site, tmp_path, "history", uid)
    assert site.json(f"/api/articles/{uid}") == history
    assert site.json(f"/api/articles/{uid[:8]}") == history
    assert "diff" in history["revisions"][1]
    rejected = feedd_json(site, tmp_path, "rejected")
    assert site.json("/api/dumps")["rejected"] == rejected
    status = feedd_json(site, tmp_path, "status")
    served = site.json("/api/status")
    assert list(served) == list(status)
    for key in ("totals", "last_ingest", "rejected", "rejected_open", "quarantined", "feeds"):
        assert served[key] == status[key], key


def test_api_articles_pages_through_everything_once_both_ways(site: Site) -> None:
    everything = [a.uid for a in site.app.store.articles()]
    seen: list[str] = []
    cursors: list[str | None] = [None]
    while True:
        path = "/api/articles?limit=7" + (f"&cursor={cursors[-1]}" if cursors[-1] else "")
        status, headers, body = site.get(path)
        assert status == 200
        page = json.loads(body)
        seen += [a["id"] for a in page["articles"]]
        assert (page["prev_cursor"] is None) == (cursors[-1] is None)
        if page["next_cursor"] is None:
            assert 'rel="next"' not in headers.get("Link", "")
            break
        assert f'cursor={page["next_cursor"]}>; rel="next"' in headers["Link"]
        cursors.append(page["next_cursor"])
        assert len(cursors) < 50
    assert seen == everything
    # From the third page back: the second page, then the first.
    third = site.json(f"/api/articles?limit=7&cursor={cursors[2]}")
    second = site.json(f"/api/articles?limit=7&cursor={third['prev_cursor']}")
    assert [a["id"] for a in second["articles"]] == everything[7:14]
    first = site.json(f"/api/articles?limit=7&cursor={second['prev_cursor']}")
    assert [a["id"] for a in first["articles"]] == everything[:7]
    assert first["prev_cursor"] is None


def test_api_search_pages_both_ways_through_the_search_index(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = site.app.store
    everything = [a.uid for a in store.articles() if "模型" in a.text]
    assert len(everything) > 9
    asked: list[dict[str, Any]] = []
    search = store.search

    def spy(query: str, **kwargs: Any) -> Any:
        asked.append(kwargs)
        return search(query, **kwargs)

    def browse(**kwargs: Any) -> Any:
        raise AssertionError("a search alone pages through SqlStore.search")

    monkeypatch.setattr(store, "search", spy)
    monkeypatch.setattr(store, "browse", browse)
    q = quote("模型")
    pages = [site.json(f"/api/articles?q={q}&limit=3")]
    while pages[-1]["next_cursor"]:
        pages.append(site.json(f"/api/articles?q={q}&limit=3&cursor={pages[-1]['next_cursor']}"))
        assert len(pages) < 50
    assert [a["id"] for page in pages for a in page["articles"]] == everything
    # Back from the last page to the first, each page as it was going forward.
    back = pages[-1]
    for page in reversed(pages[:-1]):
        back = site.json(f"/api/articles?q={q}&limit=3&cursor={back['prev_cursor']}")
        assert back["articles"] == page["articles"]
    assert back["prev_cursor"] is None
    assert any(kwargs.get("after_id") for kwargs in asked)  # pages back, by the index too


def test_api_articles_filters(site: Site) -> None:
    def ids(query: str) -> list[str]:
        return [a["id"] for a in site.json("/api/articles?" + query)["articles"]]

    assert ids("updated=1") == [site.edited.uid]
    assert ids("q=" + quote("多跳推理")) == [site.edited.uid]
    assert ids("q=" + quote("多跳") + "&updated=true") == [site.edited.uid]
    since = site.edited.first_seen.isoformat()
    assert set(ids("since=" + quote(since))) == {site.edited.uid, site.hostile.uid}
    assert ids("since=2999-01-01") == []
    [row] = site.json("/api/articles?updated=1")["articles"]
    assert row == shapes.article_summary(site.edited)
    assert row["updated"] is True and row["revisions"] == 2


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=x1", "cursor"),
        ("since=31.12.2026", "since"),
        ("q=" + "+".join(f"w{i}" for i in range(20)), "16 words"),
    ],
)
def test_api_bad_parameters_are_a_400_saying_which(site: Site, query: str, needle: str) -> None:
    status, headers, body = site.get("/api/articles?" + query)
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert needle in json.loads(body)["error"]


def test_api_article_not_found_and_ambiguous(site: Site) -> None:
    for ref in ("ffffffff-0000", "abc", str(site.edited.id)):
        status, _, body = site.get(f"/api/articles/{ref}")
        assert status == 404 and json.loads(body)["error"], ref
    # Every uid starts with a hex digit: some 1-character prefix is shared,
    # but only 4+ characters are a reference; find a shared 4-character one.
    uids = sorted(a.uid for a in site.app.store.articles())
    shared = next((a[:4] for a, b in zip(uids, uids[1:], strict=False) if a[:4] == b[:4]), None)
    if shared is not None:
        status, _, body = site.get(f"/api/articles/{shared}")
        report = json.loads(body)
        assert status == 404 and report["count"] >= 2
        assert all(m["id"].startswith(shared) for m in report["matches"])


def test_api_dumps_counts_and_the_quarantine(site: Site) -> None:
    report = site.json("/api/dumps?limit=2")
    totals = site.app.store.totals()
    assert report["ingested_total"] == totals.dumps
    assert report["rejected_total"] == totals.rejected == 1
    assert len(report["ingested"]) == 2
    newest = site.app.store.dumps(status="ingested", limit=1)[0]
    assert report["ingested"][0] == shapes.dump(newest)
    [rejected] = report["rejected"]
    assert rejected["name"] == BAD_DUMP and "NUL" in rejected["reason"]
    assert site.get("/api/dumps?limit=-1")[0] == 400


def test_api_activity_counts_match_the_database(site: Site) -> None:
    report = site.json("/api/activity")
    assert set(report) == {"per_day_90", "per_day_all", "per_hour_48"}
    totals = site.app.store.totals()
    every = report["per_day_all"]
    assert every["unit"] == "day"
    assert sum(b["new"] for b in every["buckets"]) == totals.articles
    assert sum(b["updates"] for b in every["buckets"]) == totals.revisions - totals.articles
    assert report["per_hour_48"]["unit"] == "hour"


def test_healthz_keeps_its_shape(site: Site) -> None:
    report = site.json("/healthz")
    assert list(report) == ["ok", "database", "last_ingest", "pending_dumps", "articles"]
    assert report["ok"] is True and report["articles"] == site.app.store.totals().articles


@pytest.mark.parametrize(
    "path",
    [
        "/?q=%00",
        "/?q=%25&updated=1",
        "/?q=_&category=%00x",
        "/?category=" + "x" * 100,
        "/?since=" + quote("2026-01-01T00:00:00+99:00"),
        "/?cursor=a" + "9" * 18,
        "/?cursor=b0",
        "/api/articles?q=%ED%A0%80",  # a lone surrogate's bytes: not UTF-8
        "/api/articles?q=" + quote("'; DROP TABLE articles; --"),
        "/api/articles/" + "f" * 64,
        "/dumps/%00x",
        "/dumps/" + quote("<b>\u202e.txt"),
        "/dumps/" + "x" * 300,
    ],
)
def test_hostile_parameters_never_break_a_page(site: Site, path: str) -> None:
    status, headers, body = site.get(path)
    assert status in (200, 400, 404), (path, status, body[:200])
    if headers["Content-Type"].startswith("text/html"):
        assert b"<script" not in body and b"<b>" not in body
    assert site.app.store.totals().articles > 0
