"""How fast the history pages answer with a big history: ``/`` at 100k articles.

    python bench/web.py                          # 100,000 articles, 300 GETs of each page
    python bench/web.py --articles 5000 --requests 50 --json
    python bench/web.py --rebuild                # ingest the database again

The database is made honestly: dumps of generated articles (bench/stream.py's
text maker: seed sentences, 30% of the letters swapped, a series number) go
through feedd's real ingest, ``ingest.backfill_batch`` dumps per transaction
as in ``feedd backfill``, until ``--articles`` articles exist. Each dump shows
twelve new articles on top of the previous dump's first four, which come back
edited 15% of the time (so about 4% of the articles have updates); the dumps
are spread over the year before the build, so that the 90-day chart has
bars. Lines that are all new articles are feedd's slowest (every one is
looked up, fingerprinted, indexed for search and written): 85 to 200 lines/s
on a busy 2-core machine, so 100k articles took 26 minutes there. The file
is kept in ``--out`` (bench/out/, git-ignored), named by its size, seed and
schema revision; a new migration means a new build.

A real ``feedd serve`` in its own process serves it on a free loopback port,
and one keep-alive client sends ``--requests`` rounds of sequential GETs, one
of each page per round (interleaved, so that a slow moment of the machine
hits every page alike), with ``Accept-Encoding: gzip`` as a browser does:

- ``/``: the newest articles (the promise: p95 under 100 ms);
- ``/?cursor=…``: the 50th page, reached by following ``rel=next`` from ``/``;
- ``/articles/<uid>``: sampled articles, the most revised among them;
- ``/feed.atom``: a static file the server has cached, the floor of the HTTP
  stack (waitress, the WSGI app, the loopback socket, this client).

Each page is asked a few times first, unmeasured. Reported: p50, p95 and max
per page, its body size, and the first (cold) request of ``/``. Targets
(reported, never asserted): each page's p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream  # noqa: E402
from common import Report, percentile, quiet_feedd_logs  # noqa: E402

HERE = Path(__file__).resolve().parent
TARGET_MS = 100.0
NEW_PER_DUMP = 12
CARRIED = 4  # articles of the previous dump shown again below the new ones
EDIT_RATE = 0.15  # chance that a carried article comes back edited
SPAN = timedelta(days=365)  # the dumps' dates: the year before the build
DEEP_PAGE = 50
ARTICLE_SAMPLE = 20
WARMUP = 5
REQUEST_TIMEOUT = 30.0
_NEXT = re.compile(r"<a\b[^>]*\brel=\"?next\"?[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"\bhref=\"([^\"]*)\"", re.IGNORECASE)


# --- the database ------------------------------------------------------------------


def listing(articles: int, seed: int, end: datetime) -> Iterator[tuple[str, bytes, datetime]]:
    """(name, bytes, observed_at) of dumps that bring ``articles`` new articles in all."""
    rng = random.Random(seed)
    maker = stream.TextMaker(rng, stream.seed_sentences(stream.DEFAULT_SEEDS))
    dumps = -(-articles // NEW_PER_DUMP)
    step = SPAN / dumps
    made = 0
    shown: list[tuple[str, bool]] = []  # (body, cut) of the previous dump, in order
    for seq in range(dumps):
        fresh = []
        for _ in range(min(NEW_PER_DUMP, articles - made)):
            made += 1
            body = maker.body(made)
            fresh.append((body, len(body) > stream.CUT_AT + 3))
        carried = []
        for body, cut in shown[:CARRIED]:
            if rng.random() < EDIT_RATE:
                body, cut = maker.edit(body, cut)
            carried.append((body, cut))
        shown = fresh + carried
        lines = []
        for body, cut in shown:
            if rng.random() < 0.05:
                lines.append(rng.choice(stream.CATEGORIES))
            lines.append(body[: stream.CUT_AT] + "..." if cut else body)
        data = (stream.HEADER + "\n".join(lines) + "\n").encode("utf-8")
        yield f"{seq:06d}_{rng.getrandbits(64):016x}.txt", data, end - SPAN + step * seq


def head_revision() -> str:
    from feedd.store import migrate

    return str(migrate.head_revision())


def database(out: Path, articles: int, seed: int, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The cached database for these settings, built first if missing."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"web-{articles}a-s{seed}-r{head_revision()}.db"
    if path.exists() and not rebuild:
        return path, {"built": False}
    for stale in out.glob(f"{path.name}*"):
        stale.unlink()
    part = path.with_name(path.name + ".part")
    for stale in out.glob(f"{part.name}*"):
        stale.unlink()
    info = build_database(part, articles, seed)
    # One self-contained file: fold the WAL in before the rename.
    conn = sqlite3.connect(part)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    os.replace(part, path)
    for leftover in out.glob(f"{part.name}-*"):
        leftover.unlink()
    return path, {"built": True, **info}


def build_database(path: Path, articles: int, seed: int) -> dict[str, Any]:
    from feedd.app import build
    from feedd.config import load_config
    from feedd.ingest import DumpBytes

    quiet_feedd_logs()
    app = build(load_config(None, env={}, overrides={"database.url": f"sqlite:///{path}"}))
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    lines = 0
    started = time.perf_counter()
    last_note = started

    def feed() -> Iterator[Any]:
        for name, data, when in listing(articles, seed, end):
            yield DumpBytes(name, data, when)

    try:
        with app.store.batch(app.config.ingest.backfill_batch, seconds=float("inf")):
            for result in app.ingester.ingest(feed()):
                if result.status != "ingested":
                    raise SystemExit(f"web: {result.name} was {result.status}: {result.reason}")
                lines += result.items
                if time.perf_counter() - last_note > 30:
                    last_note = time.perf_counter()
                    print(
                        f"  web: building: {lines:,} lines, "
                        f"{lines / (last_note - started):,.0f} lines/s",
                        file=sys.stderr,
                        flush=True,
                    )
        totals = app.store.totals()
    finally:
        app.close()
    seconds = time.perf_counter() - started
    return {
        "build_seconds": seconds,
        "build_lines": lines,
        "build_lines_per_s": lines / seconds if seconds else 0.0,
        "articles": totals.articles,
        "revisions": totals.revisions,
    }


def publish(config: Path) -> None:
    """The feed files of the database (the baseline's static file among them)."""
    from feedd.app import build
    from feedd.config import load_config

    quiet_feedd_logs()
    app = build(load_config(config, env={}), upgrade=False, create=False)
    try:
        app.publish()
    finally:
        app.close()


def write_config(folder: Path, db: Path) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n'
        f'[ingest]\nwatch_dir = "{folder / "watch"}"\n'
        f'quarantine_dir = "{folder / "quarantine"}"\n'
        f'[feed]\noutput_dir = "{folder / "public"}"\nlanguage = "zh"\n'
        # One line per request on stderr would time the log too.
        '[log]\nlevel = "warning"\n',
        encoding="utf-8",
    )
    (folder / "watch").mkdir(exist_ok=True)
    return config


# --- the server and the client ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}
    log = (config.parent / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedd",
            "--config",
            str(config),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env,
        cwd=config.parent,
    )
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = (config.parent / "serve.log").read_text(errors="replace")
            raise SystemExit(f"web: feedd serve exited {process.returncode}: {text[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("web: feedd serve did not answer /healthz within 60 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Client:
    """One keep-alive connection; reconnects when the server closes it."""

    HEADERS = {"Accept-Encoding": "gzip", "Accept": "text/html,*/*", "User-Agent": "bench/web"}

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes, float, dict[str, str]]:
        """(status, body, seconds, headers); the time covers sending to the last byte."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.conn.connect()
            started = time.perf_counter()
            try:
                self.conn.request("GET", path, headers=self.HEADERS)
                response = self.conn.getresponse()
                body = response.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
                continue
            seconds = time.perf_counter() - started
            headers = {k.lower(): v for k, v in response.getheaders()}
            if response.will_close:
                self.close()
            return response.status, body, seconds, headers
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def html_of(body: bytes, headers: dict[str, str]) -> str:
    if headers.get("content-encoding") == "gzip":
        import gzip

        body = gzip.decompress(body)
    return body.decode("utf-8", errors="replace")


def next_link(page: str, current: str) -> str | None:
    """The path of the page's rel=next link, resolved against ``current``."""
    from urllib.parse import urljoin, urlsplit

    tag = _NEXT.search(page)
    href = _HREF.search(tag.group(0)) if tag else None
    if href is None:
        return None
    target = urlsplit(urljoin("http://127.0.0.1" + current, unescape(href.group(1))))
    return target.path + (f"?{target.query}" if target.query else "")


def sample_articles(db: Path, seed: int) -> list[str]:
    """Article paths: a seeded sample across the history, the most revised first."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (most,) = conn.execute(
            "SELECT uid FROM articles ORDER BY revision_count DESC, id LIMIT 1"
        ).fetchone()
        ids = [row[0] for row in conn.execute("SELECT id FROM articles")]
        picked = random.Random(seed).sample(ids, min(ARTICLE_SAMPLE - 1, len(ids)))
        marks = ",".join("?" * len(picked))
        rest = [
            row[0]
            for row in conn.execute(f"SELECT uid FROM articles WHERE id IN ({marks})", picked)
        ]
    finally:
        conn.close()
    return [f"/articles/{uid}" for uid in [most, *rest]]


def measure(port: int, db: Path, requests: int, seed: int) -> dict[str, Any]:
    client = Client(port)
    notes: list[str] = []
    status, body, cold, headers = client.get("/")
    if status != 200:
        raise SystemExit(f"web: GET / answered {status}")
    index = html_of(body, headers)
    new_page = 'id="articles"' in index
    if not new_page:
        notes.append(
            "GET / is not the history page yet (no table#articles): its figures are "
            "the old feed-links page's"
        )
    # The 50th page, as a reader gets there: rel=next from /, page after page.
    deep: str | None = "/"
    page = index
    for _ in range(DEEP_PAGE - 1):
        assert deep is not None
        link = next_link(page, deep)
        if link is None:
            notes.append(f"no rel=next link on {deep}: the deep page is not measured")
            deep = None
            break
        deep = link
        status, body, _, headers = client.get(deep)
        if status != 200:
            raise SystemExit(f"web: GET {deep} answered {status}")
        page = html_of(body, headers)
    articles = sample_articles(db, seed)
    pages: dict[str, list[str]] = {
        "/": ["/"],
        f"/ page {DEEP_PAGE}": [deep] if deep else [],
        "/articles/<uid>": articles,
        "/feed.atom (floor)": ["/feed.atom"],
    }
    pages = {name: paths for name, paths in pages.items() if paths}
    times: dict[str, list[float]] = {name: [] for name in pages}
    sizes: dict[str, list[int]] = {name: [] for name in pages}
    errors: dict[str, int] = {name: 0 for name in pages}
    for paths in pages.values():
        for k in range(WARMUP):
            client.get(paths[k % len(paths)])
    for round_ in range(requests):
        for name, paths in pages.items():
            path = paths[round_ % len(paths)]
            status, body, seconds, _ = client.get(path)
            if status != 200:
                errors[name] += 1
                continue
            times[name].append(seconds * 1000)
            sizes[name].append(len(body))
    client.close()
    return {
        "cold_ms": cold * 1000,
        "new_page": new_page,
        "deep_path": deep,
        "times": times,
        "sizes": sizes,
        "errors": errors,
        "notes": notes,
    }


# --- the report --------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="rounds of GETs (one per page)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where the database is kept")
    parser.add_argument("--rebuild", action="store_true", help="ingest the database again")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.articles < 1 or args.requests < 1:
        parser.error("--articles and --requests must be at least 1")

    report = Report("web", params={"articles": args.articles, "requests": args.requests})
    print(f"web: database of {args.articles:,} articles in {args.out}", file=sys.stderr)
    db, built = database(args.out, args.articles, args.seed, args.rebuild)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    stored, updated = conn.execute(
        "SELECT count(*), sum(revision_count > 1) FROM articles"
    ).fetchone()
    conn.close()
    report.params.update(db=str(db), db_bytes=db.stat().st_size, **built)
    with tempfile.TemporaryDirectory(prefix="feedd-bench-web-") as tmp:
        folder = Path(tmp)
        # The server reads a copy: its WAL and checkpoints stay out of the cache.
        served = folder / "feedd.db"
        shutil.copyfile(db, served)
        config = write_config(folder, served)
        publish(config)
        port = free_port()
        print(f"web: serving on 127.0.0.1:{port}, {args.requests} rounds", file=sys.stderr)
        server = start_server(config, port)
        try:
            result = measure(port, served, args.requests, args.seed)
        finally:
            stop_server(server)
    report.notes += result["notes"]
    report.figure("articles", int(stored))
    report.figure("articles with updates", int(updated or 0))
    if built.get("built"):
        report.figure("build lines/s", round(built["build_lines_per_s"]), "lines/s")
    report.figure("/ first (cold) request", round(result["cold_ms"], 2), "ms")
    floor = result["times"]["/feed.atom (floor)"]
    floor_p95 = percentile(sorted(floor), 0.95)
    for name, values in result["times"].items():
        ordered = sorted(values)
        p95 = percentile(ordered, 0.95)
        report.figure(f"{name} p50", round(percentile(ordered, 0.50), 2), "ms")
        report.figure(f"{name} p95", round(p95, 2), "ms")
        report.figure(f"{name} max", round(ordered[-1] if ordered else 0.0, 2), "ms")
        sizes = result["sizes"][name]
        report.figure(f"{name} bytes (gzip)", round(sum(sizes) / len(sizes)) if sizes else 0)
        report.figure(f"{name} errors", result["errors"][name])
        if name != "/feed.atom (floor)":
            report.figure(f"{name} p95 over the floor", round(p95 - floor_p95, 2), "ms")
            report.target(
                f"{name} p95", round(p95, 2), f"< {TARGET_MS:.0f} ms", p95 < TARGET_MS, "ms"
            )
    report.emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
