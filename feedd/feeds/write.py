"""Publish the feeds as static files, atomically and only when they changed.

A reader polling feed.atom must never see half a file, and an unchanged feed
must keep its mtime so that HTTP caches (Last-Modified, ETag from the server)
keep answering 304.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from feedd.config import FeedConfig
from feedd.errors import FeeddError
from feedd.feeds.render import EntryCache, FeedKind, render, render_updates
from feedd.model import Article, DumpInfo, UpdateEntry

log = logging.getLogger("feedd.feeds")

__all__ = ["EntryCache", "FeedWriteError", "publish", "render_feed", "write_if_changed"]

FEED_FILES: tuple[tuple[FeedKind, str], ...] = (("rss", "feed.rss"), ("atom", "feed.atom"))
UPDATES_FILES: tuple[tuple[FeedKind, str], ...] = (("rss", "updates.rss"), ("atom", "updates.atom"))
_DEFAULT_MODE = 0o644  # mkstemp creates 0600; the web server must read the file
# A temporary file this old is left over from a writer that was killed mid-write
# (kill -9, power cut). Younger ones may belong to another worker writing now.
STALE_TEMP_SECONDS = 600.0


class FeedWriteError(FeeddError):
    """A feed file could not be written; the previous file is still in place."""

    default_message = (
        "cannot write the feed files; check free space and permissions of feed.output_dir"
    )


class FeedSource(Protocol):
    """What publish needs from the store (SqlStore satisfies it)."""

    def articles(self, *, limit: int | None = None, newest_first: bool = True) -> list[Article]: ...

    def browse(self, *, limit: int = 50) -> list[Article]: ...

    def updates(self, *, limit: int) -> list[UpdateEntry]: ...

    def last_change(self) -> datetime | None: ...

    def dumps(self, *, status: str | None = None, limit: int | None = None) -> list[DumpInfo]: ...


def write_if_changed(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` atomically; False (file untouched) if equal.

    Raises FeedWriteError when the file cannot be written; the old file then
    stays as it was and no temporary file is left behind.
    """
    if _same_content(path, data):
        return False
    mode = _mode_of(path)
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise FeedWriteError(
            f"cannot write {path}: {reason}; the previous file is unchanged. "
            f"Check free space and permissions of {path.parent} (feed.output_dir)"
        ) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
    _fsync_dir(path.parent)
    return True


def render_feed(
    store: FeedSource,
    feed_config: FeedConfig,
    kind: str,
    *,
    updates: bool = False,
    base_url: str | None = None,
    cache: EntryCache | None = None,
) -> bytes:
    """One feed rendered from the store, exactly as ``publish`` would write it.

    ``kind`` is "rss" or "atom"; ``base_url`` (default feed.base_url) is where
    the file is served; ``cache`` keeps built entries for the next render.
    Raises ValueError for another kind.
    """
    files = dict(UPDATES_FILES if updates else FEED_FILES)
    if kind not in files:
        raise ValueError(f"unknown feed kind {kind!r}; use one of {', '.join(files)}")
    feed_kind: FeedKind = "rss" if kind == "rss" else "atom"
    content = _read(store, feed_config, updates=updates)
    base = (base_url or feed_config.base_url).rstrip("/")
    return _render(feed_kind, content, feed_config, f"{base}/{files[feed_kind]}", cache)


@dataclass(frozen=True)
class _Content:
    """What one feed shows, read once for both of its files (RSS and Atom)."""

    articles: Sequence[Article] = ()
    updates: Sequence[UpdateEntry] | None = None  # None: the article feed
    updated: datetime | None = None


def _read(store: FeedSource, feed_config: FeedConfig, *, updates: bool) -> _Content:
    if updates:
        entries = store.updates(limit=feed_config.max_items)
        return _Content(updates=entries, updated=newest_revision(entries) or first_time(store))
    # browse, not articles(limit=): the same rows in the same order, but one
    # LIMITed walk of the first-seen index; articles() joined every revision
    # first (90 ms at 12k articles, on every publish).
    articles = store.browse(limit=feed_config.max_items)
    return _Content(articles=articles, updated=store.last_change() or first_time(store))


def _render(
    kind: FeedKind,
    content: _Content,
    feed_config: FeedConfig,
    self_url: str,
    cache: EntryCache | None,
) -> bytes:
    if content.updates is not None:
        return render_updates(
            kind,
            content.updates,
            feed_config,
            self_url=self_url,
            updated=content.updated,
            cache=cache,
        )
    return render(
        kind, content.articles, feed_config, self_url=self_url, updated=content.updated, cache=cache
    )


def newest_revision(entries: Sequence[UpdateEntry]) -> datetime | None:
    """The updates feed's own time: it changes when a revision appears, not with
    every new article (which is what ``last_change`` would say)."""
    return max((entry.first_seen for entry in entries), default=None)


def first_time(store: FeedSource) -> datetime | None:
    """The date of a feed with nothing in it yet: when the store first recorded
    something (the oldest article's first sighting; without articles, when the
    first dump, even a rejected one, was recorded). It stays put as dumps come
    in, so the empty feed is rewritten only when its first entry arrives. None
    when the store holds nothing at all (the feed is then dated
    ``render.UNDATED``)."""
    oldest = store.articles(limit=1, newest_first=False)
    if oldest:
        return oldest[0].first_seen
    # Without an article every dump recorded was rejected or held only noise:
    # few rows, so reading them all to find the first is cheap.
    recorded = store.dumps()
    return recorded[-1].ingested_at if recorded else None


def publish(
    store: FeedSource,
    feed_config: FeedConfig,
    output_dir: Path,
    *,
    base_url: str,
    cache: EntryCache | None = None,
) -> dict[str, bool]:
    """Render feed.rss and feed.atom (and updates.* when enabled) from the store.

    Returns {file name: whether it changed}. ``base_url`` is where output_dir
    is served; each file's rel=self link is ``{base_url}/{file name}``.
    ``cache`` (the daemon's, kept between publishes) spares rebuilding the
    entries that did not change. Raises FeedWriteError (and the store's
    StorageError).
    """
    base = base_url.rstrip("/")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FeedWriteError(
            f"cannot create {output_dir}: {exc.strerror or exc}; create it or fix feed.output_dir"
        ) from exc
    changed: dict[str, bool] = {}
    plan = [(False, FEED_FILES)]
    if feed_config.include_updates:
        plan.append((True, UPDATES_FILES))
    _remove_stale_temps(output_dir, [name for _, files in plan for _, name in files])
    for updates, files in plan:
        # One read per feed for both files: half the queries, and the RSS and
        # Atom files show the same moment even while another worker ingests.
        content = _read(store, feed_config, updates=updates)
        for kind, name in files:
            data = _render(kind, content, feed_config, f"{base}/{name}", cache)
            changed[name] = write_if_changed(output_dir / name, data)
    if any(changed.values()):
        log.info(
            "feeds written: %s",
            ", ".join(name for name, did in changed.items() if did),
            extra={"event": "feeds_written", "changed": changed},
        )
    return changed


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_stale_temps(output_dir: Path, names: Sequence[str]) -> None:
    cutoff = time.time() - STALE_TEMP_SECONDS
    for name in names:
        for tmp in output_dir.glob(f"{_temp_prefix(output_dir / name)}*.tmp"):
            try:
                if tmp.lstat().st_mtime < cutoff:
                    tmp.unlink()
                    log.info("removed %s, left over by an interrupted feed write", tmp)
            except OSError:
                pass  # gone already, or not ours to remove: never fail a publish for it


def _same_content(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False  # missing or unreadable: write it


def _mode_of(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return _DEFAULT_MODE


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk. The new
    # file is already in place, so a failure here is reported, not raised.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        log.warning("cannot open %s to fsync it: %s", directory, exc)
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        log.warning("cannot fsync %s: %s", directory, exc)
    finally:
        os.close(fd)
