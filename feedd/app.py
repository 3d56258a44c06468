"""The composition root: one function builds everything from a Config.

The CLI, the daemon and the tests all call ``build``; nothing else creates an
engine, a store or a feed writer.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from feedd.config import Config
from feedd.dumpfiles import is_candidate_name
from feedd.errors import ConfigError, StorageError
from feedd.ingest import Ingester, utcnow
from feedd.store.engine import make_engine
from feedd.store.sql import SqlStore

FEED_FILES = ("feed.rss", "feed.atom", "updates.rss", "updates.atom")
_ENTRY = re.compile(rb"<entry[\s>]|<item[\s>]")


@dataclass
class App:
    config: Config
    store: SqlStore
    ingester: Ingester
    now: Callable[[], datetime]

    @property
    def watch_dir(self) -> Path:
        return self.config.path(self.config.ingest.watch_dir)

    @property
    def output_dir(self) -> Path:
        return self.config.path(self.config.feed.output_dir)

    def close(self) -> None:
        self.store.close()

    def publish(self) -> dict[str, bool]:
        """Render the feeds from the store; write only the files whose bytes changed."""
        from feedd.feeds.write import publish

        changed: dict[str, bool] = publish(
            self.store, self.config.feed, self.output_dir, base_url=self.config.feed.base_url
        )
        return changed

    def wsgi(self) -> Any:
        """The HTTP application serving this app's feeds, articles and health."""
        from feedd.server import make_app

        return make_app(
            self.store,
            self.output_dir,
            base_url=self.config.feed.base_url,
            pending=lambda: len(self.pending()),
            title=self.config.feed.title,
        )

    def pending(self) -> list[Path]:
        """Files in the watch folder that the database has not seen at their size."""
        folder = self.watch_dir
        if not folder.is_dir():
            return []
        files = [
            p
            for p in folder.iterdir()
            if is_candidate_name(p.name, self.config.ingest.pattern) and p.is_file()
        ]
        known = self.store.known_sizes([p.name for p in files])
        out = []
        for p in files:
            try:
                size = p.stat().st_size
            except OSError:
                continue
            if size not in known.get(p.name, set()):
                out.append(p)
        return out

    def status_report(self) -> dict[str, Any]:
        now = self.now()
        totals = self.store.totals()
        workers = self.store.workers()
        stale_after = self.config.daemon.heartbeat_stale_seconds
        live = [
            w
            for w in workers
            if w.status == "running" and (now - w.heartbeat_at).total_seconds() <= stale_after
        ]
        latest = live[0] if live else (workers[0] if workers else None)
        pending = self.pending()
        oldest = min((p.stat().st_mtime for p in pending if p.exists()), default=None)
        ingested = self.store.dumps(status="ingested", limit=1)
        rejected = self.store.dumps(status="rejected", limit=20)
        feeds = {}
        for name in FEED_FILES:
            path = self.output_dir / name
            if path.is_file():
                data = path.read_bytes()
                feeds[name] = {
                    "path": str(path),
                    "entries": len(_ENTRY.findall(data)),
                    "bytes": len(data),
                    "modified": datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(),
                }
        return {
            "daemon": {
                "alive": bool(live),
                "stale": bool(workers) and not live and workers[0].status == "running",
                "workers": len(live),
                "pid": latest.pid if latest else None,
                "host": latest.host if latest else None,
                "started_at": _iso(latest.started_at) if latest else None,
                "heartbeat_at": _iso(latest.heartbeat_at) if latest else None,
                "last_scan_at": _iso(latest.last_scan_at) if latest else None,
                "next_scan_at": _iso(latest.next_scan_at) if latest else None,
                "this_host": socket.gethostname(),
            },
            "totals": totals.as_dict(),
            "pending": len(pending),
            "lag_seconds": round(now.timestamp() - oldest, 1) if oldest else 0,
            "last_ingest": (
                {
                    "name": ingested[0].name,
                    "ingested_at": _iso(ingested[0].ingested_at),
                    "items": ingested[0].items,
                    "new": ingested[0].new,
                    "repeat": ingested[0].repeat,
                    "update": ingested[0].update,
                }
                if ingested
                else None
            ),
            "quarantined": totals.rejected,
            "rejected": [
                {"name": d.name, "error": d.error, "location": d.location} for d in rejected
            ],
            "feeds": feeds,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build(config: Config, *, now: Callable[[], datetime] = utcnow, upgrade: bool = True) -> App:
    """Connect, upgrade the schema to head, and wire the services together."""
    engine = make_engine(
        config.database_url,
        busy_timeout_ms=config.database.busy_timeout_ms,
        sqlite_cache_mb=config.database.sqlite_cache_mb,
    )
    store = SqlStore(engine)
    try:
        if upgrade:
            store.upgrade()
        else:
            store.check()
    except StorageError as exc:
        store.close()
        shown = make_url(config.database_url).render_as_string(hide_password=True)
        raise ConfigError(
            f"config: database.url: cannot use {shown}: {exc}; "
            "check the URL, the file's folder, and that the server runs"
        ) from exc
    return App(config=config, store=store, ingester=Ingester(store, config, now), now=now)
