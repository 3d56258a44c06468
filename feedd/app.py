"""The composition root: one function builds everything from a Config.

The CLI, the daemon and the tests all call ``build``; nothing else creates an
engine, a store or a feed writer.

Each service is imported when it is first used, not here: `feedd status`
builds an App to read the store, and this module loads none of the matcher
(numpy), the feed writer (feedgen), the migrations (Alembic) or the web stack
for it (tests/test_cli_startup.py).
"""

from __future__ import annotations

import ast
import functools
import importlib.resources
import math
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from feedd import liveness, shapes
from feedd.config import Config
from feedd.errors import ConfigError, DatabaseBusy, DatabaseLocked, FeeddError, StorageError
from feedd.model import WorkerInfo
from feedd.store.engine import make_engine
from feedd.store.sql import SqlStore

if TYPE_CHECKING:
    from feedd.feeds.write import EntryCache
    from feedd.ingest import Ingester

FEED_FILES = ("feed.rss", "feed.atom", "updates.rss", "updates.atom")
_ENTRY = re.compile(rb"<entry[\s>]|<item[\s>]")
# `revision = "0004"` and `down_revision = "0003"` in a migration script, as
# migrations/script.py.mako writes them (a type annotation allowed).
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.M)


@functools.cache
def schema_head() -> str | None:
    """The revision of the newest migration: the schema this feedd needs.

    Read from the scripts' text, so that a command that only reads (`feedd
    status`) checks the schema without Alembic, whose import takes longer
    than the rest of the command. Alembic answers whenever the text leaves
    any doubt (see ``head_of``). Raises FeeddError when the scripts are
    missing (a broken installation).
    """
    try:
        location = importlib.resources.files("feedd.migrations")
    except ModuleNotFoundError:
        location = Path(__file__).resolve().parents[1] / "migrations"  # a bare checkout
    head = head_of(Path(str(location)) / "versions")
    if head is None:
        from feedd.store import migrate

        head = migrate.head_revision()
    return head


def head_of(versions: Path) -> str | None:
    """The one revision of the scripts in ``versions`` that no other revises;
    None unless that is certain: no scripts, a script without both
    assignments or with a value that is not a literal, several heads (a
    branch), or a cycle."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in versions.glob("*.py"):
        if script.name == "__init__.py":
            continue
        try:
            found = dict(_ASSIGNMENT.findall(script.read_text(encoding="utf-8")))
            revision = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found["down_revision"])
        except (OSError, UnicodeError, KeyError, ValueError, SyntaxError):
            return None
        downs = down if isinstance(down, tuple) else (down,)
        if not isinstance(revision, str) or not all(isinstance(d, str | None) for d in downs):
            return None
        revisions.add(revision)
        revised.update(d for d in downs if d is not None)
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    config: Config
    store: SqlStore
    now: Callable[[], datetime]
    # Told what each publish changed (the web app's feed-write metrics).
    on_publish: list[Callable[[dict[str, bool]], None]] = field(default_factory=list)

    @functools.cached_property
    def ingester(self) -> Ingester:
        """The ingest service, made on first use: it brings in the whole matcher."""
        from feedd.ingest import Ingester

        return Ingester(self.store, self.config, self.now)

    @functools.cached_property
    def feed_cache(self) -> EntryCache:
        """Rendered feed entries kept between publishes (one per App: its config)."""
        from feedd.feeds.write import EntryCache

        return EntryCache()

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
            self.store,
            self.config.feed,
            self.output_dir,
            base_url=self.config.feed.base_url,
            cache=self.feed_cache,
        )
        for listener in self.on_publish:
            listener(changed)
        return changed

    def wsgi(self) -> Any:
        """The HTTP application: feeds, history pages, JSON API and health.

        Raises ConfigError for a malformed server.trusted_proxies.
        """
        from feedd.web import make_app

        config = self.config
        web = make_app(
            self.store,
            self.output_dir,
            base_url=config.feed.base_url,
            pending=lambda: len(self.pending()),
            status=self.status_report,
            title=config.feed.title,
            language=config.feed.language,
            title_max_chars=config.feed.title_max_chars,
            # Feeds change at most once per scan.
            feed_max_age=max(1, math.ceil(config.daemon.scan_interval)),
            trusted_proxies=config.server.trusted_proxies,
            access_log=config.server.access_log,
            now=self.now,
        )
        metrics = web.metrics
        self.on_publish.append(lambda changed: metrics.observe_feed_write(any(changed.values())))
        return web

    def pending(self) -> list[Path]:
        """Files in the watch folder that the database has not seen at their size
        (odd entries too: the daemon has yet to set them aside)."""
        from feedd.ingest import source

        folder = self.watch_dir
        if not folder.is_dir():
            return []
        listed = source.scan_folder(folder, self.config.ingest, folder)
        known = self.store.known_sizes([d.name for d in listed if d.problem is None])
        return [
            d.path for d in listed if d.problem is not None or d.size not in known.get(d.name, ())
        ]

    def status_report(self) -> dict[str, Any]:
        now = self.now()
        totals = self.store.totals()
        workers = self.store.workers()
        # While a dump holds SQLite's write lock the daemon's heartbeat goes to
        # its lock file only; a held lock file is the freshest word on it.
        held = _lock_file_heartbeat(self.config)
        if held is not None:
            workers = [held, *(w for w in workers if w.id != held.id)]
        stale_after = self.config.daemon.heartbeat_stale_seconds
        this_host = socket.gethostname()
        fresh = [
            w
            for w in workers
            if w.status == "running" and (now - w.heartbeat_at).total_seconds() <= stale_after
        ]
        # A fresh heartbeat of a process that is gone (kill -9) is no sign of
        # life when the process was on this host: ask the kernel.
        dead = [w for w in fresh if w.host == this_host and not pid_alive(w.pid)]
        live = [w for w in fresh if w not in dead]
        pending = self.pending()
        oldest = min(filter(None, map(_mtime, pending)), default=None)
        ingested = self.store.dumps(status="ingested", limit=1)
        # Only the rejections still open: a dump of the same name ingested
        # since means the file was fixed (`feedd rejected` lists them all).
        open_count, rejected = self.store.rejected_dumps(outstanding_only=True, limit=20)
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
        return shapes.status(
            live=live,
            workers=workers,
            dead=dead,
            this_host=this_host,
            totals=totals,
            pending=len(pending),
            lag_seconds=round(now.timestamp() - oldest, 1) if oldest else 0,
            last_ingest=ingested[0] if ingested else None,
            rejected_open=open_count,
            rejections=[d for d, _ in rejected],
            feeds=feeds,
        )


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except OSError:  # vanished since the listing
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sqlite_path(config: Config) -> Path | None:
    """The SQLite database file, or None for PostgreSQL and in-memory SQLite."""
    try:
        url = make_url(config.database_url)
    except ArgumentError:
        return None  # make_engine says what is wrong with it
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def require_database(config: Config) -> None:
    """Raise FeeddError when the SQLite file is missing: reading must not create it."""
    path = sqlite_path(config)
    if path is not None and not path.exists():
        raise FeeddError(f"no database at {path}; run `feedd backfill` or `feedd run` first")


def locked_message(config: Config) -> str:
    """What to tell a writer that waited busy_timeout_ms for the write lock."""
    waited = f"waited {config.database.busy_timeout_ms} ms (database.busy_timeout_ms)"
    holder = ""
    daemon = _lock_file_heartbeat(config)
    if daemon is not None:
        holder = (
            f" pid {daemon.pid} on {daemon.host} holds {liveness.lock_path(config.database_url)}"
        )
    return (
        f"the database is locked by another writer (is `feedd run` running?{holder}); "
        f"{waited}; try again when it stops"
    )


def _lock_file_heartbeat(config: Config) -> WorkerInfo | None:
    """The SQLite daemon's heartbeat from its lock file, while it holds the lock."""
    try:
        return liveness.read(config.database_url)
    except (OSError, ArgumentError):
        return None


def build(
    config: Config,
    *,
    now: Callable[[], datetime] = utcnow,
    upgrade: bool = True,
    create: bool = True,
) -> App:
    """Connect, bring the schema to head, and wire the services together.

    The schema revision is read first; only a schema behind head is upgraded
    (a write, which waits for the write lock). ``upgrade=False`` never
    writes: a schema not at head is refused. ``create=False`` refuses a
    missing SQLite file instead of creating an empty one.
    Raises ConfigError for an unusable database.url, DatabaseLocked when the
    upgrade could not get the write lock, DatabaseBusy when a PostgreSQL
    server kept turning connections away for database.busy_timeout_ms (each
    attempt may add the driver's own connect timeout), FeeddError otherwise.
    """
    if not create:
        require_database(config)
    engine = make_engine(
        config.database_url,
        busy_timeout_ms=config.database.busy_timeout_ms,
        sqlite_cache_mb=config.database.sqlite_cache_mb,
    )
    store = SqlStore(engine)
    shown = make_url(config.database_url).render_as_string(hide_password=True)
    try:
        current = _first_contact(store, config.database.busy_timeout_ms / 1000)
        head = schema_head()
        if current != head:
            if not upgrade:
                raise FeeddError(_schema_message(shown, current, head))
            store.upgrade()
    except (DatabaseLocked, DatabaseBusy):
        # Not the URL's fault: a one-line error and exit 1, not a config mistake.
        store.close()
        raise
    except StorageError as exc:
        store.close()
        raise ConfigError(
            f"config: database.url: cannot use {shown}: {exc}; "
            "check the URL, the file's folder, and that the server runs"
        ) from exc
    except BaseException:
        store.close()
        raise
    return App(config=config, store=store, now=now)


def _first_contact(store: SqlStore, patience: float) -> str | None:
    """The schema revision, asked again while the server turns connections
    away for now (DatabaseBusy), for up to ``patience`` seconds: a command run
    while the server is at its connection limit, or while a burst of clients
    holds every local port, waits for it instead of calling the URL wrong."""
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        try:
            return store.schema_revision()
        except DatabaseBusy:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _schema_message(shown: str, current: str | None, head: str | None) -> str:
    if current is None:
        return (
            f"{shown} holds no feedd database yet; "
            "run `feedd backfill`, `feedd run` or `feedd db upgrade` first"
        )
    return (
        f"the database schema is at revision {current}, this feedd needs {head}; "
        "run `feedd db upgrade` (or start `feedd run`), or install the feedd that made it"
    )
