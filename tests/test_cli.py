"""The CLI as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from feedd.cli import cli
from feedd.store import migrate
from tests.support import SEEDS, dump_bytes, seed_files

_DB: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _database(db_url: str) -> Iterator[None]:
    # Every CLI test runs on SQLite and on PostgreSQL (see conftest.db_factory).
    _DB["url"] = db_url
    yield
    _DB.clear()


def feedd(tmp_path: Path, *args: str, check: bool = True, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    full_env = {
        **os.environ,
        "FEEDD_DATABASE_URL": _DB["url"],
        "FEEDD_FEED_OUTPUT_DIR": str(tmp_path / "public"),
        "FEEDD_INGEST_WATCH_DIR": str(tmp_path),
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "feedd", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"feedd {args} exited {proc.returncode}: {proc.stderr}")
    return proc


def test_every_command_has_help() -> None:
    def walk(cmd: click.Command, path: str) -> list[tuple[str, str]]:
        out = [(path, cmd.help or "")]
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                out += walk(sub, f"{path} {name}")
        return out

    commands = walk(cli, "feedd")
    names = {p for p, _ in commands}
    for required in ("run", "backfill", "status", "history", "export", "feed", "serve"):
        assert f"feedd {required}" in names
    assert all(text.strip() for _, text in commands), [p for p, t in commands if not t.strip()]


def test_backfill_status_articles_export(tmp_path: Path) -> None:
    out = feedd(tmp_path, "backfill", str(SEEDS)).stdout
    assert "60 item lines: 47 new, 13 repeat, 0 update" in out
    again = json.loads(feedd(tmp_path, "backfill", "--json", str(SEEDS)).stdout)
    assert (again["ingested"], again["unchanged"], again["new"]) == (0, 5, 0)

    status = json.loads(feedd(tmp_path, "status", "--json").stdout)
    assert status["totals"]["articles"] == 47
    assert status["totals"]["kinds"] == {"new": 47, "repeat": 13, "update": 0}
    assert status["last_ingest"]["name"] == seed_files()[-1].name
    assert status["daemon"]["alive"] is False
    assert "articles: 47" in feedd(tmp_path, "status").stdout

    arts = json.loads(feedd(tmp_path, "articles", "--json", "--limit", "5").stdout)
    assert len(arts) == 5 and all(a["title"] for a in arts)

    lines = feedd(tmp_path, "export").stdout.splitlines()
    assert len(lines) == 47
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
    for line in lines:
        row = json.loads(line)
        assert set(row) == {"id", "title", "first_seen", "last_seen", "revisions", "sightings"}
        assert iso.match(row["first_seen"]) and iso.match(row["last_seen"])
        for rev in row["revisions"]:
            assert set(rev) == {"number", "text", "simhash", "first_seen"}
            assert re.fullmatch(r"[0-9a-f]{16}", rev["simhash"])
        for s in row["sightings"]:
            assert set(s) == {"dump", "line", "revision", "kind", "seen_at", "shown"}
            assert s["kind"] in ("new", "repeat", "update") and s["line"] >= 4
            assert isinstance(s["shown"], int) and s["shown"] > 0


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    summary = json.loads(feedd(tmp_path, "backfill", "--dry-run", "--json", str(SEEDS)).stdout)
    assert summary["new"] == 47 and summary["dry_run"] is True
    assert json.loads(feedd(tmp_path, "status", "--json").stdout)["totals"]["articles"] == 0


def test_history_and_explain_show_the_update(tmp_path: Path) -> None:
    text = seed_files()[0].read_text(encoding="utf-8").split("\n")[4]
    edited = text.replace("编码向量", "编码矢量", 1)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "001_0000000000000001.txt").write_bytes(dump_bytes(text))
    (tmp_path / "d" / "002_0000000000000002.txt").write_bytes(dump_bytes(edited))
    feedd(tmp_path, "backfill", str(tmp_path / "d"))
    [row] = [json.loads(x) for x in feedd(tmp_path, "export").stdout.splitlines()]
    hist = json.loads(feedd(tmp_path, "history", "--json", row["id"][:8]).stdout)
    assert [r["number"] for r in hist["revisions"]] == [1, 2]
    assert hist["revisions"][1]["diff"].count("[-向-]{+矢+}") == 1
    assert "{+矢+}" in feedd(tmp_path, "history", row["id"]).stdout

    same = json.loads(feedd(tmp_path, "explain", "--json", "--text", edited).stdout)[0]
    assert (same["decision"], same["article"]) == ("repeat", row["id"])
    again = edited.replace("离散", "分立", 1)
    near = json.loads(feedd(tmp_path, "explain", "--json", "--text", again).stdout)[0]
    assert (near["decision"], near["article"]) == ("update", row["id"])
    assert near["candidates"][0]["containment"] >= near["thresholds"]["verify_threshold"]
    other = json.loads(
        feedd(
            tmp_path, "explain", "--json", "--text", seed_files()[1].read_text().split("\n")[3]
        ).stdout
    )[0]
    assert other["decision"] == "new"
    text_out = feedd(tmp_path, "explain", "--text", again).stdout
    assert "containment" in text_out and "update" in text_out


def test_unknown_article_is_one_line_exit_1(tmp_path: Path) -> None:
    feedd(tmp_path, "db", "upgrade")
    proc = feedd(tmp_path, "history", "ffffffff", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "feedd articles" in proc.stderr


@pytest.mark.parametrize(
    ("config", "env", "needle"),
    [
        ("[feed]\nmaxitems = 3\n", {}, "feed.maxitems"),
        ("[feed]\nmax_items = 'many'\n", {}, "feed.max_items"),
        ("[nope]\n", {}, "[nope]"),
        ("[feed\n", {}, "not valid TOML"),
        ("", {"FEEDD_FEED_MAX_ITEMS": "x"}, "FEEDD_FEED_MAX_ITEMS"),
        ("[database]\nurl = 'postgresql+psycopg://u@127.0.0.1:1/x'\n", {}, "database.url"),
        ("[database]\nurl = 'mysql://x'\n", {}, "database.url"),
        ("[match]\nsimhash_k = 9\n", {}, "match.simhash_k"),
    ],
)
def test_config_mistakes_exit_2_with_one_line(
    tmp_path: Path, config: str, env: dict[str, str], needle: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config)
    env = {"FEEDD_DATABASE_URL": "", **env} if "database" in config else env
    proc = subprocess.run(
        [sys.executable, "-m", "feedd", "--config", str(path), "status"],
        capture_output=True,
        text=True,
        env={k: v for k, v in {**os.environ, **env}.items() if v},
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_with_missing_watch_dir_exits_2(tmp_path: Path) -> None:
    proc = feedd(tmp_path, "run", "--watch-dir", str(tmp_path / "missing"), check=False)
    assert proc.returncode == 2
    assert "ingest.watch_dir" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_json_logs_feed_and_db_commands(tmp_path: Path) -> None:
    # A backfill logs summaries; the line per dump is DEBUG, shown with -v.
    proc = feedd(tmp_path, "-v", "--log-format", "json", "backfill", str(SEEDS))
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    ingested = [e for e in events if e.get("event") == "ingested"]
    assert [e["dump"] for e in ingested] == [f.name for f in seed_files()]
    assert all({"items", "new", "repeat", "update", "ms"} <= set(e) for e in ingested)
    assert {e["level"] for e in ingested} == {"debug"}
    [final] = [e for e in events if e.get("event") == "backfilled"]
    assert (final["dumps"], final["new"], final["repeat"]) == (5, 47, 13)
    quiet = feedd(tmp_path, "-q", "backfill", str(SEEDS))
    assert "ingested" not in quiet.stderr and "backfilled" not in quiet.stderr

    out = tmp_path / "one.rss"
    feedd(tmp_path, "feed", "--format", "rss", "-o", str(out))
    assert out.read_bytes().count(b"<item>") == 47
    atom = feedd(tmp_path, "feed", "--format", "atom").stdout
    assert atom.count("<entry>") == 47
    assert feedd(tmp_path, "feed", "--format", "rss").stdout == out.read_text(encoding="utf-8")

    head = migrate.head_revision()
    assert f"schema at {head}" in feedd(tmp_path, "db", "upgrade").stdout
    assert feedd(tmp_path, "db", "current").stdout.startswith(f"{head} (head {head})")


def test_an_inserted_section_is_an_update_and_explain_says_so(tmp_path: Path) -> None:
    from tests.test_decide import BODY, OTHER, SECTION, TITLE, cut

    shown = len(TITLE) + 200
    old, new = cut(TITLE + BODY + OTHER, shown), cut(TITLE + SECTION + BODY + OTHER, shown)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "001_0000000000000001.txt").write_bytes(dump_bytes(old))
    (tmp_path / "d" / "002_0000000000000002.txt").write_bytes(dump_bytes(new))
    feedd(tmp_path, "backfill", str(tmp_path / "d" / "001_0000000000000001.txt"))
    explained = json.loads(feedd(tmp_path, "explain", "--json", "--text", new).stdout)[0]
    assert explained["decision"] == "update"
    assert explained["candidates"][0]["inserted"] and "inserted" in explained["reason"]
    assert (
        "a section inserted after its opening" in feedd(tmp_path, "explain", "--text", new).stdout
    )
    feedd(tmp_path, "backfill", str(tmp_path / "d"))
    [row] = [json.loads(x) for x in feedd(tmp_path, "export").stdout.splitlines()]
    assert [s["kind"] for s in row["sightings"]] == ["new", "update"]
