"""Load test for the feed server: keep-alive clients, plain and conditional GETs.

    python bench/http_load.py                      # its own server on a generated feed
    python bench/http_load.py --url http://127.0.0.1:8080/feed.rss
    python bench/http_load.py --requests 100 --connections 10 --json

Each of ``--connections`` threads holds one ``http.client`` keep-alive
connection and takes the next request from a shared plan until ``--requests``
are done or ``--time-limit`` passes. The plan is drawn from
``random.Random(seed)``: a ``--conditional`` share of the requests carry the
current ETag in If-None-Match and must get 304; the others must get 200. The
report says whether the 200/304 split matches what was sent.

The self-contained mode runs the server in a child process, so the clients and
the server do not share one interpreter lock and the figures are the server's.
Only loopback addresses are accepted: this is a benchmark, not a stress tool
for other people's servers.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import itertools
import json
import logging
import math
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

MAX_REQUESTS = 100_000
MAX_CONNECTIONS = 200
MAX_TIME_LIMIT = 600.0
REQUEST_TIMEOUT = 10.0  # seconds for one request; a stalled server counts as errors
SERVER_START_TIMEOUT = 60.0


@dataclass
class LoadReport:
    url: str
    requests: int  # planned
    connections: int
    total: int = 0  # completed, with a response or an error
    errors: int = 0
    status_200: int = 0
    status_304: int = 0
    other_status: dict[str, int] = field(default_factory=dict)
    sent_plain: int = 0
    sent_conditional: int = 0
    split_ok: bool = False
    connects: int = 0  # TCP connections opened, including reconnects
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    seconds: float = 0.0
    requests_per_second: float = 0.0
    timed_out: bool = False
    error_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def generate_feed(items: int = 50, seed: int = 1) -> bytes:
    """An RSS 2.0 document of about the size feedd writes (50 items of Chinese text)."""
    rng = random.Random(seed)
    words = ["扩散模型", "自编码器", "向量量化", "归一化流", "注意力"]
    words += ["训练", "采样", "论文", "代码"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    entries = []
    for i in range(items):
        text = "，".join(rng.choice(words) for _ in range(40)) + "。"
        when = format_datetime(start + timedelta(minutes=7 * i), usegmt=True)
        entries.append(
            f"<item><title>{escape(text[:80])}</title><description>{escape(text)}</description>"
            f'<guid isPermaLink="false">urn:uuid:{i:08d}-0000-5000-8000-000000000000</guid>'
            f"<pubDate>{when}</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        "<title>feedd bench</title><link>http://127.0.0.1/</link>"
        "<description>load test</description>" + "".join(entries) + "</channel></rss>\n"
    ).encode()


def require_loopback(host: str) -> None:
    """Refuse any host that resolves to something other than this machine."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise SystemExit(f"http_load: cannot resolve {host!r}: {exc}") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise SystemExit(
            f"http_load: {host!r} resolves to {sorted(addresses)}; only loopback is allowed"
        )


def _plan(requests: int, conditional: float, seed: int) -> list[bool]:
    """Which requests carry If-None-Match: exactly round(requests * conditional), shuffled."""
    count = round(requests * conditional)
    plan = [True] * count + [False] * (requests - count)
    random.Random(seed).shuffle(plan)
    return plan


def _current_etag(host: str, port: int, path: str) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        etag = response.getheader("ETag")
        if response.status != 200 or not etag:
            raise SystemExit(
                f"http_load: GET {path} gave {response.status} with ETag {etag!r}; "
                "a feed file must exist and carry an ETag"
            )
        return etag
    finally:
        conn.close()


def run_load(
    url: str,
    *,
    requests: int = 2000,
    connections: int = 50,
    conditional: float = 0.5,
    seed: int = 1,
    time_limit: float = 120.0,
) -> LoadReport:
    """Send the plan against ``url`` and measure; ``url`` must be on loopback."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"http_load: --url must be http://HOST:PORT/PATH, got {url!r}")
    host, port, path = parts.hostname, parts.port or 80, parts.path or "/feed.rss"
    require_loopback(host)
    etag = _current_etag(host, port, path)
    plan = _plan(requests, conditional, seed)
    report = LoadReport(url=url, requests=requests, connections=connections)
    next_index = itertools.count()  # next() on a count is atomic in CPython
    lock = threading.Lock()
    latencies: list[float] = []
    deadline = time.monotonic() + time_limit

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        local: list[tuple[bool, int | None, float, str | None, bool]] = []
        try:
            while True:
                index = next(next_index)
                if index >= len(plan):
                    break
                if time.monotonic() > deadline:
                    with lock:
                        report.timed_out = True
                    break
                is_conditional = plan[index]
                headers = {"If-None-Match": etag} if is_conditional else {}
                # http.client reconnects by itself once the server closed the
                # connection (waitress closes after every 304); count those.
                connected = conn.sock is None
                started = time.perf_counter()
                try:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status: int | None = response.status
                    problem = None
                except (OSError, http.client.HTTPException) as exc:
                    status, problem = None, f"{type(exc).__name__}: {exc}"
                    conn.close()
                elapsed = time.perf_counter() - started
                local.append((is_conditional, status, elapsed, problem, connected))
        finally:
            conn.close()
            with lock:
                for is_conditional, status, elapsed, problem, connected in local:
                    report.total += 1
                    report.connects += connected
                    if is_conditional:
                        report.sent_conditional += 1
                    else:
                        report.sent_plain += 1
                    latencies.append(elapsed)
                    if status == 200:
                        report.status_200 += 1
                    elif status == 304:
                        report.status_304 += 1
                    else:
                        report.errors += 1
                        key = str(status) if status is not None else "no response"
                        report.other_status[key] = report.other_status.get(key, 0) + 1
                        if problem and len(report.error_samples) < 5:
                            report.error_samples.append(problem)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(time_limit + REQUEST_TIMEOUT + 5)
    report.seconds = time.perf_counter() - started
    latencies.sort()
    report.p50_ms = 1000 * percentile(latencies, 0.50)
    report.p95_ms = 1000 * percentile(latencies, 0.95)
    report.p99_ms = 1000 * percentile(latencies, 0.99)
    report.max_ms = 1000 * (latencies[-1] if latencies else 0.0)
    report.requests_per_second = report.total / report.seconds if report.seconds else 0.0
    report.split_ok = (
        report.errors == 0
        and report.status_200 == report.sent_plain
        and report.status_304 == report.sent_conditional
    )
    return report


# --- the self-contained server ------------------------------------------------


def serve_folder(folder: Path, threads: int) -> None:
    """Child process: serve ``folder`` on an ephemeral loopback port until stdin closes."""
    from feedd.app import build
    from feedd.config import load_config
    from feedd.web import make_app
    from feedd.web.serve import start_background

    # waitress warns "Task queue depth is N" for every request that waits for a
    # thread, which is every request here: 50 clients share 8 threads on purpose.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    config = load_config(
        env={},
        overrides={
            "database.url": f"sqlite:///{folder / 'bench.db'}",
            "feed.output_dir": str(folder / "public"),
        },
    )
    app = build(config)
    wsgi = make_app(app.store, folder / "public", base_url="http://127.0.0.1")
    server = start_background(wsgi, "127.0.0.1", 0, threads=threads)
    print(f"LISTENING {server.port}", flush=True)
    try:
        sys.stdin.read()  # the parent closes our stdin to stop us
    finally:
        server.close()
        app.close()


@contextlib.contextmanager
def self_contained_server(threads: int) -> Iterator[str]:
    """A feed server in a child process on a temporary folder; yields the feed URL."""
    with tempfile.TemporaryDirectory(prefix="feedd-http-load-") as tmp:
        folder = Path(tmp)
        (folder / "public").mkdir()
        (folder / "public" / "feed.rss").write_bytes(generate_feed())
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve-folder", str(folder), "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            port = _read_port(child)
            yield f"http://127.0.0.1:{port}/feed.rss"
        finally:
            assert child.stdin is not None
            child.stdin.close()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _read_port(child: subprocess.Popen[str]) -> int:
    stdout = child.stdout
    assert stdout is not None
    result: list[str] = []
    # readline() has no timeout; a thread bounds the wait for a child that hangs.
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(SERVER_START_TIMEOUT)
    line = result[0] if result else ""
    if not line.startswith("LISTENING "):
        raise SystemExit(f"http_load: the server did not start (said {line!r})")
    return int(line.split()[1])


# --- command line ---------------------------------------------------------------


def _bounded(kind: type, low: float, high: float) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def format_report(r: LoadReport) -> str:
    split = "matches" if r.split_ok else "DOES NOT MATCH"
    lines = [
        f"target       {r.url}",
        f"requests     {r.total} of {r.requests} over {r.connections} connections"
        + (" (time limit reached)" if r.timed_out else ""),
        f"errors       {r.errors}" + (f" {r.other_status}" if r.other_status else ""),
        f"200 / 304    {r.status_200} / {r.status_304} "
        f"(sent {r.sent_plain} plain / {r.sent_conditional} conditional: {split})",
        f"connects     {r.connects}",
        f"latency      p50 {r.p50_ms:.2f} ms  p95 {r.p95_ms:.2f} ms  "
        f"p99 {r.p99_ms:.2f} ms  max {r.max_ms:.2f} ms",
        f"throughput   {r.requests_per_second:.0f} req/s in {r.seconds:.2f} s",
    ]
    lines += [f"error        {sample}" for sample in r.error_samples]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--self-contained",
        action="store_true",
        help="start a server on a generated feed in a child process (the default)",
    )
    target.add_argument(
        "--url", help="a running feedd on loopback, e.g. http://127.0.0.1:8080/feed.rss"
    )
    target.add_argument("--serve-folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=_bounded(int, 1, MAX_REQUESTS), default=2000)
    parser.add_argument("--connections", type=_bounded(int, 1, MAX_CONNECTIONS), default=50)
    parser.add_argument(
        "--conditional",
        type=_bounded(float, 0.0, 1.0),
        default=0.5,
        help="share of requests sent with the current ETag in If-None-Match",
    )
    parser.add_argument(
        "--time-limit",
        type=_bounded(float, 1.0, MAX_TIME_LIMIT),
        default=120.0,
        help="seconds after which no new request starts",
    )
    parser.add_argument("--threads", type=_bounded(int, 1, 64), default=8, help="server threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    if args.serve_folder is not None:
        serve_folder(args.serve_folder, args.threads)
        return 0

    options = {
        "requests": args.requests,
        "connections": args.connections,
        "conditional": args.conditional,
        "seed": args.seed,
        "time_limit": args.time_limit,
    }
    if args.url:
        report = run_load(args.url, **options)
    else:
        with self_contained_server(args.threads) as url:
            report = run_load(url, **options)
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.split_ok else 1


if __name__ == "__main__":
    sys.exit(main())
