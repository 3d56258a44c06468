"""Hostile and broken dumps: each kind has a defined outcome.

A file is either ingested, or rejected with a reason a person can act on
(recorded in the database, and moved to the quarantine folder by the daemon).
Nothing of it may stop the daemon or touch an article that was there before.

Content cases run through ``Ingester`` on a real SQLite database; the cases
about files on disk (vanishing, still being written, permissions, symlinks,
directories, FIFOs) run through the daemon.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import random
import shutil
import stat
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest

from feedd.app import App, build
from feedd.config import load_config
from feedd.daemon import Daemon
from feedd.dumpfiles import DumpFile
from feedd.feeds.write import render_feed
from tests.support import dump_bytes, seed_files
from tests.test_crash import HEADER, Feedd, clean_env, db_rows, parse_feed_files, wait_for

OBSERVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LONG = "这一行足够长,是一条真正的文章摘要,不会被当作分类词或者日期。"


def article_state(app: App) -> list[tuple[str, tuple[str, ...]]]:
    """What must never change for an article once it exists: its id and its texts."""
    return [(a.uid, tuple(r.text for r in a.revisions)) for a in app.store.export()]


def assert_feeds_valid(app: App) -> None:
    for kind in ("rss", "atom"):
        parsed = feedparser.parse(render_feed(app.store, app.config.feed, kind))
        assert parsed.bozo == 0, (kind, parsed.get("bozo_exception"))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """A real SQLite store that already holds the first seed dump's 12 articles."""
    app = build(
        load_config(
            None,
            env={},
            overrides={
                "database.url": f"sqlite:///{tmp_path / 'feedd.db'}",
                "feed.output_dir": str(tmp_path / "public"),
            },
        )
    )
    [first] = app.ingester.ingest_paths(seed_files()[:1])
    assert (first.status, first.new) == ("ingested", 12)
    yield app
    app.close()


# --- content: through the ingester ------------------------------------------------


def utf16(text: str) -> bytes:
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


SEED0 = seed_files()[0].read_bytes()
SEED0_TEXT = SEED0.decode("utf-8")


@dataclass(frozen=True)
class Case:
    data: bytes
    status: str  # ingested | rejected
    expect: str  # the reason (rejected) or the encoding (ingested)
    new: int = 0
    repeat: int = 0


CASES: dict[str, Case] = {
    "empty": Case(b"", "rejected", "empty file"),
    "blank lines only": Case(b"\n \n\t\n", "rejected", "empty file: no text at all"),
    "header only": Case(HEADER.encode(), "ingested", "utf-8"),
    "no header": Case(f"{LONG}\n{LONG}2\n".encode(), "rejected", "no dump header"),
    "png": Case(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "rejected",
        "binary data",
    ),
    "pdf": Case(b"%PDF-1.7\n" + HEADER.encode(), "rejected", "binary file signature"),
    "nul bytes": Case(dump_bytes(LONG + "\x00" + LONG), "rejected", "NUL bytes"),
    "invalid utf-8": Case(
        HEADER.encode() + "Ça, c'est une très longue ligne à lire.".encode("latin-1"),
        "rejected",
        "cannot decode: not UTF-8",
    ),
    "utf-8 encoded surrogate": Case(
        HEADER.encode() + b"\xed\xb3\x80" + LONG.encode(), "rejected", "cannot decode"
    ),
    "utf-16 lone surrogate": Case(
        utf16(HEADER) + b"\x00\xdc" + LONG.encode("utf-16-le"),
        "rejected",
        "cannot decode as utf-16",
    ),
    "utf-16 truncated": Case(utf16(HEADER + LONG)[:-1], "rejected", "cannot decode as utf-16"),
    "gb18030": Case(SEED0_TEXT.encode("gb18030"), "ingested", "gb18030", repeat=12),
    "utf-16 with bom": Case(utf16(SEED0_TEXT), "ingested", "utf-16", repeat=12),
    "utf-16 big endian": Case(
        codecs.BOM_UTF16_BE + SEED0_TEXT.encode("utf-16-be"), "ingested", "utf-16", repeat=12
    ),
    "utf-8 with bom": Case(codecs.BOM_UTF8 + SEED0, "ingested", "utf-8-sig", repeat=12),
    "crlf line ends": Case(SEED0.replace(b"\n", b"\r\n"), "ingested", "utf-8", repeat=12),
    "utf-16 surrogate pair": Case(
        utf16(HEADER + "表情符号😀不是孤立的代理项," + LONG), "ingested", "utf-16", new=1
    ),
    "control characters": Case(
        dump_bytes(
            "控制字符\x01\x02\x08\x0b\x0c\x1b[31m红\x7f\x85\x9f与\u2028\ufeff\ufffe," + LONG
        ),
        "ingested",
        "utf-8",
        new=1,
    ),
    "markup": Case(
        dump_bytes("<script>alert(1)</script>]]><![CDATA[&amp;&#0;&#x1; 与 <!-- -->," + LONG),
        "ingested",
        "utf-8",
        new=1,
    ),
    # simhash 2.1.2 on numpy 2 raises OverflowError once a feature occurs > 255 times.
    "a feature 300 times (cjk)": Case(dump_bytes("哈" * 300), "ingested", "utf-8", new=1),
    "a feature 300 times (latin)": Case(dump_bytes("abc " * 300), "ingested", "utf-8", new=1),
    "a feature 300 times (underscore)": Case(dump_bytes("_" * 300), "ingested", "utf-8", new=1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_kind_of_content_has_a_defined_outcome(app: App, name: str) -> None:
    case = CASES[name]
    before = article_state(app)
    result = app.ingester.ingest_bytes(f"{name}.txt", case.data, OBSERVED)
    assert result.status == case.status, result
    if case.status == "rejected":
        assert result.reason is not None and case.expect in result.reason
        [row] = [d for d in app.store.dumps(status="rejected") if d.name == f"{name}.txt"]
        assert row.error == result.reason, "the reason is recorded with the dump"
        assert article_state(app) == before
    else:
        assert result.encoding == case.expect
        assert (result.new, result.repeat, result.update) == (case.new, case.repeat, 0)
        after = article_state(app)
        assert after[: len(before)] == before, "earlier articles are untouched"
        assert len(after) == len(before) + case.new
    assert_feeds_valid(app)
    # Twice is a no-op: the same name and content is recognised, not recorded again.
    again = app.ingester.ingest_bytes(f"{name}.txt", case.data, OBSERVED)
    assert again.status == ("rejected" if case.status == "rejected" else "unchanged")
    assert sum(d.name == f"{name}.txt" for d in app.store.dumps()) == 1


def test_item_text_is_stored_exactly_and_reaches_the_feed_cleaned(app: App) -> None:
    raw = "控制\x01\x1b[0m字符\x7f\x85与\ufffe," + LONG
    app.ingester.ingest_bytes("controls.txt", dump_bytes(raw), OBSERVED)
    [article] = [a for a in app.store.export() if a.first_seen == OBSERVED]
    assert article.text == raw, "the database keeps the text exactly as read"
    atom = render_feed(app.store, app.config.feed, "atom")
    [entry] = [e for e in feedparser.parse(atom).entries if e.title.startswith("控制")]
    assert entry.content[0].value == "控制[0m字符与," + LONG


def test_gb18030_and_utf8_copies_of_a_dump_are_the_same_articles(app: App) -> None:
    before = article_state(app)
    gb = app.ingester.ingest_bytes("gb.txt", SEED0_TEXT.encode("gb18030"), OBSERVED)
    assert (gb.encoding, gb.new, gb.repeat) == ("gb18030", 0, 12)
    assert article_state(app) == before


# --- big files: refused without reading them into memory ----------------------------


def _read_bytes_so_far() -> int:
    """Bytes this process has read through read() so far (Linux /proc)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _measured_ingest(app: App, path: Path) -> tuple[Any, int, int]:
    """(result, peak traced Python memory, bytes read) of ingesting one file."""
    read_before = _read_bytes_so_far()
    tracemalloc.start()
    try:
        [result] = app.ingester.ingest_paths([path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak, _read_bytes_so_far() - read_before


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_a_50_mb_single_line_is_refused_after_reading_little(app: App, tmp_path: Path) -> None:
    path = tmp_path / "one_line.txt"
    with path.open("wb") as out:
        out.write(HEADER.encode())
        block = ("一行到底" * 4096).encode()  # 48 KiB, no newline
        for _ in range(50 * 2**20 // len(block) + 1):
            out.write(block)
    size = path.stat().st_size
    assert size > 50 * 2**20
    result, peak, read = _measured_ingest(app, path)
    assert result.status == "rejected"
    assert "longer than ingest.max_line_bytes" in (result.reason or "")
    limit = app.config.ingest.max_line_bytes
    assert read < 4 * limit, f"read {read} bytes of {size}"
    assert peak < 8 * limit, f"peak {peak} bytes for a {size}-byte file"


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_a_file_over_max_dump_bytes_is_refused_unread(app: App, tmp_path: Path) -> None:
    limit = app.config.ingest.max_dump_bytes
    assert limit == 64 * 2**20, "the documented default"
    path = tmp_path / "huge.txt"
    path.write_bytes(HEADER.encode())
    os.truncate(path, limit + 1)  # sparse: costs no disk
    result, peak, read = _measured_ingest(app, path)
    assert result.status == "rejected"
    assert f"{limit + 1} bytes, over ingest.max_dump_bytes" in (result.reason or "")
    assert read < 2**20 and peak < 2**20, (read, peak)


def common_hanzi() -> list[str]:
    out = []
    for lead in range(0xB0, 0xD8):
        for trail in range(0xA1, 0xFF):
            try:
                out.append(bytes([lead, trail]).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return out


@pytest.mark.slow
def test_100000_items_in_one_dump_are_ingested(
    app: App, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(100_000)
    hanzi = common_hanzi()
    items = ["".join(rng.choices(hanzi, k=30)) + f",第{n}条。" for n in range(100_000)]
    data = dump_bytes(*items)
    started = time.perf_counter()
    result = app.ingester.ingest_bytes("huge_listing.txt", data, OBSERVED)
    seconds = time.perf_counter() - started
    record_property("ingest_seconds", round(seconds, 1))
    with capsys.disabled():
        print(f"\n100,000 items ({len(data) / 2**20:.1f} MiB) ingested in {seconds:.1f} s")
    assert (result.status, result.items, result.new) == ("ingested", 100_000, 100_000)
    assert app.store.totals().articles == 12 + 100_000
    assert_feeds_valid(app)


# --- files on disk: through the daemon ---------------------------------------------


def test_a_fifo_swapped_in_after_the_listing_does_not_hang_the_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    # In a child process: a reader that blocks on the FIFO would hang forever.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from feedd.dumpfiles import read_dump\n"
        "from feedd.errors import InvalidDump\n"
        "try:\n"
        "    read_dump(Path(sys.argv[1]), max_bytes=1 << 20, max_line_bytes=1 << 20)\n"
        "except InvalidDump as exc:\n"
        "    print(exc.reason)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(fifo)],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=True,
    )
    assert proc.stdout.strip() == "not a regular file (a directory or a device)"


def test_a_file_that_vanishes_between_scan_and_read_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feedd = Feedd(tmp_path, daemon={"settle_seconds": 0})
    config = load_config(feedd.config, env={})
    daemon = Daemon(config)
    daemon.app = build(config)
    try:
        old = time.time() - 60  # long settled
        keep = feedd.drop(seed_files()[0].name, SEED0, mtime=old)
        gone = feedd.drop(seed_files()[1].name, seed_files()[1].read_bytes(), mtime=old)
        ready, _ = daemon._ready_files()
        assert [d.path for d in ready] == [keep, gone]
        gone.unlink()  # another worker took it, or a person deleted it
        with caplog.at_level(logging.INFO, logger="feedd"):
            results = [daemon._ingest_one(dump) for dump in ready]
        assert results[0] is not None and results[0].status == "ingested"
        assert results[1] is None
        assert f"{gone.name} vanished before it was read; skipped" in caplog.text
        assert [d.name for d in daemon.app.store.dumps()] == [keep.name], "nothing recorded"
        assert not feedd.quarantine.exists()
        # Read-time vanishing (after the stat) is the same outcome, said by the ingester.
        assert daemon.app.ingester.ingest_file(DumpFile(gone, gone.name, 1, old)) is None
        daemon.scan()  # the next scan goes on as if nothing happened
        assert (feedd.public / "feed.atom").read_bytes().count(b"<entry>") == 12
    finally:
        daemon.app.close()


def test_symlinks_are_followed_only_when_allowed_and_only_inside(tmp_path: Path) -> None:
    watch = tmp_path / "dumps"
    watch.mkdir()
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret.txt"
    secret.write_bytes(SEED0)
    real = watch / "real.txt"
    real.write_bytes(seed_files()[1].read_bytes())
    (watch / "link_in.txt").symlink_to("../dumps/real.txt")
    (watch / "link_out.txt").symlink_to(secret)
    (watch / "link_dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    links = sorted(watch.glob("link_*.txt"))
    outcomes = {}
    for follow in (False, True):
        config = load_config(
            None,
            env={},
            overrides={
                "database.url": f"sqlite:///{tmp_path / f'follow_{follow}.db'}",
                "ingest.watch_dir": str(watch),
                "ingest.follow_symlinks": follow,
            },
        )
        app = build(config)
        try:
            for r in app.ingester.ingest_paths(links, root=watch):
                outcomes[follow, r.name] = (r.status, r.reason or "")
        finally:
            app.close()
    for name in ("link_in.txt", "link_out.txt", "link_dangling.txt"):
        status, reason = outcomes[False, name]
        assert status == "rejected" and "not followed" in reason, name
    assert outcomes[True, "link_in.txt"] == ("ingested", "")
    assert outcomes[True, "link_out.txt"][0] == "rejected"
    assert "points outside the watch folder" in outcomes[True, "link_out.txt"][1]
    assert outcomes[True, "link_dangling.txt"][0] == "rejected"
    assert secret.read_bytes() == SEED0


def test_a_move_that_fails_does_not_block_the_dumps_behind_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The quarantine cannot be created (here: its parent is a file; in real
    # life a read-only or full disk, or a FIFO that cannot be copied across
    # filesystems). The rejection is recorded, the file stays, and the good
    # dump after it is still ingested.
    (tmp_path / "not-a-folder").write_text("")
    feedd = Feedd(
        tmp_path,
        ingest={"quarantine_dir": "not-a-folder/quarantine"},
        daemon={"settle_seconds": 0},
    )
    config = load_config(feedd.config, env={})
    daemon = Daemon(config)
    daemon.app = build(config)
    try:
        old = time.time() - 60
        bad = feedd.drop("000_aaaaaaaaaaaaaaaa.txt", b"\x89PNG\r\n\x1a\n", mtime=old)
        feedd.drop("001_bbbbbbbbbbbbbbbb.txt", SEED0, mtime=old)
        with caplog.at_level(logging.INFO, logger="feedd"):
            daemon.scan()
            daemon.scan()
        statuses = {d.name: d.status for d in daemon.app.store.dumps()}
        assert statuses == {bad.name: "rejected", "001_bbbbbbbbbbbbbbbb.txt": "ingested"}
        assert bad.exists()
        assert caplog.text.count(f"could not move {bad.name}") == 1, "not retried every tick"
        assert (feedd.public / "feed.atom").read_bytes().count(b"<entry>") == 12
    finally:
        daemon.app.close()


def exported_texts(feedd: Feedd) -> list[tuple[str, list[str]]]:
    """Each exported article's id and revision texts (sightings may grow)."""
    rows = [json.loads(line) for line in feedd.export().splitlines()]
    return [(r["id"], [rev["text"] for rev in r["revisions"]]) for r in rows]


def without_permission_bypass() -> tuple[str, ...] | None:
    """A command prefix under which file modes apply to this process's children.

    Tests run as root here, and root reads any file. Dropping the two
    capabilities that bypass file modes makes a mode-000 file unreadable to a
    root daemon too. None when that is not possible (root without setpriv).
    """
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search")


def test_files_the_daemon_finds_on_disk(tmp_path: Path) -> None:
    wrapper = without_permission_bypass()
    feedd = Feedd(tmp_path, daemon={"scan_interval": 0.2, "settle_seconds": 1.0})
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(seed_files()[4].read_bytes())
    daemon = feedd.run_daemon(wrapper or ())
    try:
        wait_for(lambda: (feedd.public / "feed.atom").exists(), what="the daemon to start")
        first = feedd.drop("000_d0e46117916ee2ce.txt", SEED0)
        wait_for(lambda: db_rows(feedd.db, "SELECT count(*) FROM articles") == [(12,)])
        before = exported_texts(feedd)
        assert len(before) == 12

        # All of these land at once; each must end in its own defined state.
        quarantined = {
            "link_outside.txt": "not followed",
            "x.txt": "not a regular file",
            "pipe.txt": "not a regular file",
            "empty.txt": "empty file",
            "picture.txt": "binary data",
            "huge.txt": "over ingest.max_dump_bytes",
        }
        (feedd.dumps / "link_outside.txt").symlink_to(secret)
        (feedd.dumps / "x.txt").mkdir()
        (feedd.dumps / "x.txt" / "inner.txt").write_bytes(SEED0)
        os.mkfifo(feedd.dumps / "pipe.txt")
        if wrapper is not None:  # else root reads it anyway: nothing to test
            quarantined["unreadable.txt"] = "no permission to read the file"
            unreadable = feedd.dumps / "unreadable.txt"
            unreadable.write_bytes(seed_files()[3].read_bytes())
            os.chmod(unreadable, 0o000)
        feedd.drop("empty.txt", b"")
        feedd.drop("picture.txt", b"\x89PNG\r\n\x1a\n" + bytes(100))
        huge = feedd.dumps / "huge.txt.part"
        huge.write_bytes(HEADER.encode())
        os.truncate(huge, 64 * 2**20 + 1)
        huge.rename(feedd.dumps / "huge.txt")
        feedd.drop("copy_under_new_name.txt", SEED0)
        feedd.drop("header_only.txt", HEADER.encode())
        feedd.drop("gb18030.txt", seed_files()[1].read_text().encode("gb18030"))

        def settled() -> bool:
            return (
                all((feedd.quarantine / f"{name}.reason.txt").exists() for name in quarantined)
                and len(db_rows(feedd.db, "SELECT id FROM dumps")) == 1 + len(quarantined) + 3
            )

        wait_for(settled, what="every hostile file to reach its outcome")
        for name, reason in quarantined.items():
            assert not os.path.lexists(feedd.dumps / name), name
            assert os.path.lexists(feedd.quarantine / name), name
            assert reason in (feedd.quarantine / f"{name}.reason.txt").read_text(), name
        assert (feedd.quarantine / "link_outside.txt").is_symlink(), "the link, not its target"
        assert secret.read_bytes() == seed_files()[4].read_bytes()
        assert (feedd.quarantine / "x.txt" / "inner.txt").read_bytes() == SEED0
        assert stat.S_ISFIFO((feedd.quarantine / "pipe.txt").lstat().st_mode)
        rows = {
            name: (status, items, new, repeat)
            for name, status, items, new, repeat in db_rows(
                feedd.db,
                "SELECT name, status, item_count, new_count, repeat_count FROM dumps",
            )
        }
        assert rows["copy_under_new_name.txt"] == ("ingested", 12, 0, 12)
        assert rows["header_only.txt"] == ("ingested", 0, 0, 0)
        assert rows["gb18030.txt"][:3] == ("ingested", 12, 12)
        assert all(rows[name][0] == "rejected" for name in quarantined)

        # A file still being written: every intermediate state is a valid dump,
        # so reading it early would show as a second version of it.
        slow = feedd.dumps / "001_00000000000000ff.txt"
        rng = random.Random(20)
        hanzi = common_hanzi()
        lines = ["".join(rng.choices(hanzi, k=30)) + "。" for _ in range(20)]  # unrelated

        with slow.open("w", encoding="utf-8") as out:  # 1 s of writing, settle is 1 s
            out.write(HEADER)
            for line in lines:
                out.write(line + "\n")
                out.flush()
                time.sleep(0.05)
        wait_for(
            lambda: db_rows(feedd.db, "SELECT item_count FROM dumps WHERE name = ?", slow.name),
            what="the slow dump",
        )
        # Same name, new content: a second version of the dump, not a rejection.
        replacement = dump_bytes(*lines, "写完以后又加上的一条新文章,内容也足够长,不是分类词。")
        feedd.drop(first.name, replacement)
        wait_for(
            lambda: len(db_rows(feedd.db, "SELECT id FROM dumps WHERE name = ?", first.name)) == 2,
            what="the second version",
        )
        time.sleep(1.0)  # time for a wrong extra read of the slow file to show
        assert db_rows(feedd.db, "SELECT item_count FROM dumps WHERE name = ?", slow.name) == [
            (20,)
        ]
        assert db_rows(
            feedd.db,
            "SELECT version, item_count, new_count, repeat_count FROM dumps "
            "WHERE name = ? ORDER BY id",
            first.name,
        ) == [(1, 12, 12, 0), (2, 21, 1, 20)]

        assert daemon.poll() is None, "the daemon is still running"
        after = exported_texts(feedd)
        assert len(after) == 12 + 12 + 20 + 1
        assert after[:12] == before, "every earlier article intact"
        feeds = parse_feed_files(feedd.public)
        for data in feeds.values():
            assert feedparser.parse(data).bozo == 0
    finally:
        code = feedd.stop(daemon)
    assert code == 0
    assert "Traceback" not in feedd.log_text()
