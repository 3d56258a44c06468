"""What the real-browser tests share: Debian's chromium, a feedd site, PNG pixels.

Nothing here downloads anything. Selenium is given Debian's
``/usr/bin/chromedriver`` and ``/usr/bin/chromium`` (apt packages chromium,
chromium-driver), so it never starts Selenium Manager, the part of it that
fetches browsers; should it ever start, ``SE_OFFLINE=true`` forbids fetching
and its cache folder, one of the test's own, must still be empty at the end.
The browser sends everything that is not loopback to a closed proxy port and
resolves no host name, so a page that tried to load something from outside
could not; its performance log says whether one tried.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from tests.support import IN_CI, ROOT, dump_bytes, seed_files

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 900)
FEEDD = [sys.executable, "-m", "feedd"]

# An article of our own, with markup in its scraped text: the page must show
# it as text, so the browser never asks example.invalid for anything.
HOSTILE_V1 = (
    '研究团队公布了低温量子显微镜的最新成果 <img src="http://example.invalid/x.png"> '
    "他们在零下二百七十度的条件下观察到了此前无法看到的晶格结构，"
    "并公开了全部原始数据与分析代码，供其他实验室复现这一结果。"
)
HOSTILE_V2 = (
    '研究团队公布了低温量子显微镜的最新成果 <img src="http://example.invalid/x.png"> '
    "他们在零下二百七十度的条件下首次观察到了此前无法看到的晶格结构，"
    "并公开了全部原始数据、分析代码与实验记录，供其他实验室复现这一结果。"
)
# A word only the hostile article holds (HOSTILE_V1 and V2 both).
HOSTILE_WORD = "量子显微镜"
# What write_dumps inserts into the newest seed article: its diff must show it.
INSERTED = "并且在公开的基准测试中取得了更好的结果"
EXTERNAL_URL = "http://example.invalid/x.png"


def require_chromium() -> None:
    """Skip (locally) or fail (CI=true) when Debian's chromium or its driver is missing."""
    import pytest

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (make install)")
    if missing:
        message = (
            f"the browser tests need {', '.join(missing)}: "
            "apt-get install chromium chromium-driver fonts-noto-cjk (.ci/run does it)"
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


# --- the site: dumps, a database, a `feedd serve` --------------------------------


@dataclass
class Site:
    url: str  # http://127.0.0.1:PORT/, with the slash
    db: Path
    folder: Path
    dumps: Path
    process: subprocess.Popen[bytes] | None = None
    log: list[str] = field(default_factory=list)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Ask the SQLite file directly (read-only), not through feedd."""
        import sqlite3

        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()


def write_dumps(folder: Path, now: datetime, lines: int = 4000) -> list[Path]:
    """A generated listing, the hostile article, the seeds, an edited seed dump.

    The listing is bench/stream.py's (``lines`` item lines, about one new
    article per 11 lines, some edited later): tests/support.generate_stream
    reuses the few seed texts, so that feedd rightly takes most of its
    "articles" for updates of each other. Its dumps come first, one every
    three hours for five weeks up to two days ago, so that many days of the
    last ninety hold new articles and updates. The other nine follow four
    hours apart over the last day and a half (the 48-hour chart has something
    in it): two with the hostile article in two revisions, the five seeds, and
    two that change the newest seed article (an update with a diff), so that
    the newest rows of ``/`` are the seeds' real texts.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stream = bench_stream()
    files: list[tuple[str, bytes]] = [
        (f"{d.seq:04d}_{d.seq:016x}.txt", d.data)
        for d in stream.dumps(stream.StreamSettings(lines=lines, seed=11))
    ]
    stream_count = len(files)
    files.append((f"{8990:04d}_{1:016x}.txt", dump_bytes(HOSTILE_V1)))
    files.append((f"{8991:04d}_{2:016x}.txt", dump_bytes(HOSTILE_V2)))
    seeds = seed_files()
    for k, seed in enumerate(seeds):
        files.append((f"{9000 + k:04d}_{seed.stem.split('_')[-1]}.txt", seed.read_bytes()))
    last = seeds[-1].read_bytes().decode("utf-8").split("\n")
    items = [line for line in last[3:] if len(line) > 100]
    edited = items[0]
    cut = len(edited) // 2
    edited = edited[:cut] + INSERTED + "，" + edited[cut:]
    files.append((f"{9100:04d}_{3:016x}.txt", dump_bytes(edited, *items[1:])))
    files.append((f"{9101:04d}_{4:016x}.txt", dump_bytes(edited, *items[1:])))
    out: list[Path] = []
    for index, (name, data) in enumerate(files):
        if index < stream_count:
            when = now - timedelta(days=2) - timedelta(hours=3) * (stream_count - 1 - index)
        else:
            when = now - timedelta(hours=36) + timedelta(hours=4) * (index - stream_count)
        path = folder / name
        path.write_bytes(data)
        os.utime(path, (when.timestamp(), when.timestamp()))
        out.append(path)
    return out


def bench_stream() -> ModuleType:
    """bench/stream.py, the deterministic listing the benchmarks ingest."""
    name = "bench_stream_for_browser"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "stream.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def write_config(folder: Path, db: Path) -> Path:
    config = folder / "config.toml"
    config.write_text(
        "[database]\n"
        f'url = "sqlite:///{db}"\n'
        "[ingest]\n"
        f'watch_dir = "{folder / "watch"}"\n'
        f'quarantine_dir = "{folder / "quarantine"}"\n'
        "[feed]\n"
        f'output_dir = "{folder / "public"}"\n'
        'language = "zh"\n'
        "include_updates = true\n",
        encoding="utf-8",
    )
    (folder / "watch").mkdir(exist_ok=True)
    return config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def feedd(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}
    done = subprocess.run(
        [*FEEDD, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=config.parent,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"feedd {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


@contextmanager
def serve(config: Path, port: int | None = None, *, wait: float = 60) -> Iterator[str]:
    """Run `feedd serve` on a free loopback port until the block ends; yields its URL."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}
    log = config.parent / f"serve-{port}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*FEEDD, "--config", str(config), "serve", "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=config.parent,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + wait
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"feedd serve exited {process.returncode}: {log.read_text(errors='replace')}"
                )
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"feedd serve did not answer /healthz within {wait} s")
            time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


# --- the browser -----------------------------------------------------------------


@contextmanager
def chromium(cache: Path, window: tuple[int, int] = WINDOW) -> Iterator[Any]:
    """A headless Debian chromium under chromedriver; Selenium may download nothing.

    ``cache`` becomes Selenium Manager's cache folder; it must still be empty
    when the browser has quit (AssertionError otherwise).
    """
    cache.mkdir(parents=True, exist_ok=True)
    # Selenium skips its Manager when given the driver's path; should it ever
    # run, it must fetch nothing, and keep what it caches where we look.
    saved = {name: os.environ.get(name) for name in ("SE_OFFLINE", "SE_CACHE_PATH")}
    os.environ.update(SE_OFFLINE="true", SE_CACHE_PATH=str(cache))
    try:
        with _chromium(window) as driver:
            yield driver
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    fetched = [str(p) for p in cache.rglob("*")]
    assert not fetched, f"Selenium Manager wrote to its cache (a download?): {fetched[:5]}"


@contextmanager
def _chromium(window: tuple[int, int]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        f"--window-size={window[0]},{window[1]}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--lang=zh-CN",
        # Nothing leaves the machine: every non-loopback request goes to a
        # closed port (Chromium never proxies loopback), no name resolves.
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    ):
        options.add_argument(argument)
    # No remembered entries popping up under the search box.
    options.add_experimental_option(
        "prefs", {"autofill.enabled": False, "autofill.profile_enabled": False}
    )
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


@dataclass(frozen=True)
class NetworkEvent:
    url: str
    method: str
    status: int | None  # of the response, when one came
    resource: str  # Document, Stylesheet, Image, ...


def network(driver: Any) -> list[NetworkEvent]:
    """Every request the page asked for since the last call (the log is drained)."""
    sent: dict[str, tuple[str, str, str]] = {}
    status: dict[str, int] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            request = params["request"]
            # A redirect reuses the request id: keep each hop.
            key = params["requestId"] + "#" + str(len(sent))
            sent[key] = (request["url"], request["method"], params.get("type", ""))
        elif message["method"] == "Network.responseReceived":
            status[params["requestId"]] = int(params["response"]["status"])
    return [
        NetworkEvent(url, method, status.get(key.split("#")[0]), kind)
        for key, (url, method, kind) in sent.items()
    ]


def console(driver: Any) -> list[dict[str, Any]]:
    """The pages' console messages since the last call (CSP violations among them)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return entries


def is_local(url: str, site: str) -> bool:
    """A request to the site itself, or a data: URL (bytes already in the page:
    Chromium draws the date picker's calendar icon from one)."""
    return url.startswith(site) or url.startswith("data:")


# --- PNG pixels, without Pillow --------------------------------------------------


@dataclass(frozen=True)
class Pixels:
    width: int
    height: int
    channels: int
    data: bytes  # rows of width * channels bytes, unfiltered

    def colours(self) -> Counter[bytes]:
        c = self.channels
        step = 3  # RGB: the alpha of a screenshot is opaque
        return Counter(self.data[i : i + step] for i in range(0, len(self.data), c))

    def ink(self) -> float:
        """Share of pixels that are not the background (the commonest colour)."""
        counts = self.colours()
        background = counts.most_common(1)[0][1]
        return 1 - background / (self.width * self.height)


def decode_png(png: bytes) -> Pixels:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium's screenshots are)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos = 8
    idat = bytearray()
    width = height = channels = 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        chunk = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if chunk == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG: depth {depth}, colour {colour}")
            channels = 3 if colour == 2 else 4
        elif chunk == b"IDAT":
            idat += body
        elif chunk == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    c = channels
    out = bytearray(stride * height)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1)
        if kind == 0:  # None
            row = line.copy()
        elif kind == 1:  # Sub: a running sum per channel, modulo 256
            row = np.cumsum(line.reshape(width, c), axis=0, dtype=np.uint8).reshape(stride)
        elif kind == 2:  # Up
            row = line + previous
        elif kind in (3, 4):  # Average, Paeth: each byte needs the one just decoded
            row = _unfilter_slow(kind, bytearray(line.tobytes()), previous.tobytes(), c)
        else:
            raise ValueError(f"bad PNG filter {kind} in row {y}")
        out[y * stride : (y + 1) * stride] = row.tobytes()
        previous = row
    return Pixels(width, height, channels, bytes(out))


def _unfilter_slow(kind: int, row: bytearray, previous: bytes, c: int) -> Any:
    if kind == 3:  # Average
        for i in range(len(row)):
            left = row[i - c] if i >= c else 0
            row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
    else:  # Paeth
        for i in range(len(row)):
            a = row[i - c] if i >= c else 0
            b = previous[i]
            d = previous[i - c] if i >= c else 0
            p = a + b - d
            pa, pb, pd = abs(p - a), abs(p - b), abs(p - d)
            pred = a if pa <= pb and pa <= pd else (b if pb <= pd else d)
            row[i] = (row[i] + pred) & 0xFF
    return np.frombuffer(bytes(row), dtype=np.uint8)


def save_screenshot(driver: Any, folder: Path, name: str) -> Pixels:
    """Save a screenshot of the window as folder/name.png; return its pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    png = driver.get_screenshot_as_png()
    (folder / f"{name}.png").write_bytes(png)
    return decode_png(png)


def copy_if_asked(source: Path, variable: str = "FEEDD_WRITE_SCREENSHOT") -> None:
    """Copy a screenshot to the path in $FEEDD_WRITE_SCREENSHOT (for docs/)."""
    target = os.environ.get(variable)
    if target:
        shutil.copyfile(source, target)


def glyph_png(driver: Any, text: str) -> bytes:
    """A screenshot of ``text`` drawn large in the page's own font and language."""
    from selenium.webdriver.common.by import By

    driver.execute_script(
        "const s = document.createElement('span');"
        "s.id = 'glyph-probe'; s.textContent = arguments[0];"
        "s.style.cssText = 'font-size:64px;line-height:1;position:fixed;top:0;left:0;"
        "background:#fff;color:#000;padding:4px;z-index:99999';"
        "document.body.appendChild(s);",
        text,
    )
    try:
        return bytes(driver.find_element(By.ID, "glyph-probe").screenshot_as_png)
    finally:
        driver.execute_script("document.getElementById('glyph-probe').remove();")


def now_utc() -> datetime:
    return datetime.now(UTC)
