"""`feedd run`: an APScheduler loop that watches a folder and keeps feeds current.

Threads and their jobs:

* the main thread runs ``BlockingScheduler``; SIGTERM/SIGINT stop it after the
  current dump, SIGHUP asks for a config reload at the next scan;
* job ``scan`` (every ``daemon.scan_interval`` s, never two at once) ingests
  the settled dumps in dump order, then re-renders the feeds if anything
  changed;
* job ``heartbeat`` records liveness in the database for ``feedd status``;
* optionally a watchdog observer (inotify) wakes ``scan`` as soon as a file
  lands, and a waitress server thread serves the feeds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from feedd import liveness
from feedd.app import App, build
from feedd.config import Config, check_watch_dir
from feedd.dumpfiles import DUMP_NAME, DumpFile, move_aside
from feedd.errors import (
    AlreadyRunning,
    ConfigError,
    DatabaseLocked,
    FeeddError,
    Interrupted,
    StorageError,
)
from feedd.ingest import IngestResult, source
from feedd.ingest.source import Settler
from feedd.model import WorkerInfo

log = logging.getLogger("feedd.daemon")


class DatabaseReplaced(FeeddError):
    """The SQLite file was deleted or replaced under the running daemon."""


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        reload: Callable[[], Config] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._reload_config = reload
        self.now = now
        self.app: App | None = None
        self.scheduler = BlockingScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                # APScheduler's default of 1 s silently drops runs that start
                # late (a long scan, a suspended VM); run them late instead.
                "misfire_grace_time": None,
            },
        )
        self._settler = Settler(config.daemon.settle_seconds)
        self._last_seq: int | None = None  # the highest dump number ingested
        self._db_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the SQLite file
        self.exit_code = 0
        self._stop = threading.Event()
        self._signals: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._reload_requested = threading.Event()
        self._scanning = threading.Lock()
        self._in_dump = threading.Event()  # a dump's transaction is open
        self._failures = 0
        self._retry_at = 0.0
        # The feeds may lag the database: a crash between an ingest and its
        # publish, or a failed write (disk full). The first scan after a start
        # and every scan after a failure publish; an unchanged file is not touched.
        self._publish_needed = True
        self._lock_file: TextIO | None = None
        self._observer: Any = None
        self._server: Any = None
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"
        self.started_at = self.now()
        self.last_scan_at: datetime | None = None

    # lifecycle ----------------------------------------------------------------
    def start(self) -> int:
        _quiet_apscheduler()
        check_watch_dir(self.config)
        self._acquire_single_instance()
        self.app = build(self.config)
        self._attach(self.app)
        self._install_signals()
        interval = self.config.daemon.scan_interval
        self.scheduler.add_listener(
            self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )
        self.scheduler.add_job(
            self.scan, "interval", seconds=interval, id="scan", next_run_time=self.now()
        )
        beat = max(1.0, min(interval, self.config.daemon.heartbeat_stale_seconds / 4))
        self.scheduler.add_job(
            self.heartbeat, "interval", seconds=beat, id="heartbeat", next_run_time=self.now()
        )
        self._start_watcher()
        self._start_server()
        log.info(
            "feedd running: watching %s every %.1f s, feeds into %s, database %s",
            self.app.watch_dir,
            interval,
            self.app.output_dir,
            make_url(self.config.database_url).render_as_string(hide_password=True),
        )
        try:
            self.scheduler.start()
        finally:
            self._shutdown()
        return self.exit_code

    def _attach(self, app: App) -> None:
        """Wire a freshly built app into the daemon's loop."""
        app.ingester.should_stop = self._stop.is_set
        self._last_seq = app.store.last_seq()
        self._db_identity = _file_identity(self.config.database_url)

    def stop(self) -> None:
        """Finish the current dump, then stop.

        Not for a signal handler: it would run inside whatever the main thread
        was doing, possibly APScheduler holding the lock that shutdown takes.
        Signals reach it through ``_handle_signals``.
        """
        self._stop.set()
        if self.scheduler.running:
            try:
                self.scheduler.shutdown(wait=False)
            except SchedulerNotRunningError:
                pass  # another thread stopped it first

    def _shutdown(self) -> None:
        # Wait for a scan in progress: it stops between dumps once _stop is set.
        with self._scanning:
            pass
        self._signals.put(None)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._server is not None:
            self._server.close()
        if self.app is not None:
            try:
                self.app.publish()
            except (FeeddError, OSError) as exc:
                log.error("could not write the feeds on shutdown: %s", exc)
            try:
                self._beat("stopped")
            except FeeddError:
                pass
            self.app.close()
        if self._lock_file is not None:
            self._lock_file.close()
        log.info("feedd stopped")

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def forward(signum: int, _frame: FrameType | None) -> None:
            # The handler runs in the main thread between two bytecodes, maybe
            # inside ThreadPoolExecutor.submit while it holds the lock that
            # shutdown() needs: calling stop() here deadlocked (seen under
            # load). SimpleQueue.put is reentrant; a thread does the work.
            self._signals.put(signum)

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, forward)
        threading.Thread(target=self._handle_signals, name="feedd-signals", daemon=True).start()

    def _handle_signals(self) -> None:
        while (signum := self._signals.get()) is not None:
            if signum == signal.SIGHUP:
                log.info("received SIGHUP: reloading the config at the next scan")
                self._reload_requested.set()
                self.wake()
            else:
                name = signal.Signals(signum).name
                log.info("received %s: stopping after the current dump", name)
                self.stop()

    def _acquire_single_instance(self) -> None:
        try:
            url = make_url(self.config.database_url)
        except ArgumentError as exc:
            raise ConfigError(f"config: database.url is not a database URL: {exc}") from None
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return  # PostgreSQL: several workers coordinate through the database
        lock_path = Path(f"{url.database}.lock")
        if not lock_path.parent.is_dir():
            # Like every other command: a database folder that is missing is a
            # mistake in database.url, not something to create silently.
            raise ConfigError(
                f"config: database.url: folder {lock_path.parent} does not exist; "
                "create it or fix the path"
            )
        try:
            handle = lock_path.open("a+")
        except OSError as exc:
            raise ConfigError(
                f"config: database.url: cannot create {lock_path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            held = liveness.read(self.config.database_url)
            holder = f"pid {held.pid} on {held.host}" if held else "another process"
            raise AlreadyRunning(
                f"another feedd daemon ({holder}) already runs on {url.database}; stop it "
                "first, or use PostgreSQL for several workers"
            ) from None
        self._lock_file = handle
        liveness.write(handle, self._worker_info("starting"))

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("job %s missed its run time; it runs at the next tick", event.job_id)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            # Normal while a long dump is ingested: the running scan picks up
            # whatever this tick would have found.
            log.debug("job %s still running; this tick folds into it", event.job_id)
        elif event.code == EVENT_JOB_ERROR:
            log.error("job %s failed: %r", event.job_id, getattr(event, "exception", None))

    # waking -------------------------------------------------------------------
    def wake(self, at: datetime | None = None) -> None:
        """Run a scan now (or at ``at``) instead of waiting for the interval."""
        if at is None:
            self._wake.set()
            if self._in_dump.is_set():
                return  # the running scan loops once more when it sees _wake
        if not self.scheduler.running:
            return
        job = self.scheduler.get_job("scan")
        when = at or self.now()
        if job is not None and (job.next_run_time is None or when < job.next_run_time):
            job.modify(next_run_time=when)

    def _start_watcher(self) -> None:
        if not self.config.daemon.watch_events:
            return
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return
        daemon = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("created", "moved", "closed", "modified"):
                    daemon.wake()

        assert self.app is not None
        observer = Observer()
        observer.schedule(Handler(), str(self.app.watch_dir), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def _start_server(self) -> None:
        listen = self.config.server.listen
        if not listen or self.app is None:
            return
        from feedd.web.serve import split_listen, start_background

        host, port = split_listen(listen)
        wsgi = self.app.wsgi()
        self._server = start_background(
            wsgi,
            host,
            port,
            threads=self.config.server.threads,
            channel_timeout=self.config.server.channel_timeout,
            read_deadline=self.config.server.read_deadline,
            connection_limit=self.config.server.connection_limit,
            max_connections_per_client=self.config.server.max_connections_per_client,
        )
        log.info("serving feeds on http://%s:%s/", host, self._server.port)

    # jobs ---------------------------------------------------------------------
    def heartbeat(self) -> None:
        try:
            self._beat("running")
        except FeeddError as exc:
            log.warning("heartbeat not recorded: %s", _one_line(exc))

    def _beat(self, status: str) -> None:
        assert self.app is not None
        info = self._worker_info(status)
        if self._lock_file is not None:
            liveness.write(self._lock_file, info)
            if self._in_dump.is_set():
                # A dump in progress holds SQLite's write lock: the database
                # write would wait busy_timeout and fail; the lock file has it.
                return
        self.app.store.heartbeat(info)

    def _worker_info(self, status: str) -> WorkerInfo:
        job = self.scheduler.get_job("scan") if self.scheduler.running else None
        pending = self._settler.pending()
        return WorkerInfo(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            heartbeat_at=self.now(),
            last_scan_at=self.last_scan_at,
            next_scan_at=job.next_run_time if job else None,
            status=status,
            pending=len(pending),
            oldest_pending_at=(
                datetime.fromtimestamp(min(mtime for _, mtime in pending), UTC) if pending else None
            ),
        )

    def scan(self) -> None:
        if self._stop.is_set():
            self.stop()  # asked before the scheduler ran, so stop() could not end it
            return
        if not self._scanning.acquire(blocking=False):
            return
        try:
            while True:
                self._wake.clear()
                self._scan_once()
                if self._stop.is_set() or not self._wake.is_set():
                    break
        finally:
            self._scanning.release()

    def _scan_once(self) -> None:
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self._reload()
        if time.monotonic() < self._retry_at:
            return
        assert self.app is not None
        try:
            self._check_database()
            self._ingest_ready()
            if self._publish_needed or not (self.app.output_dir / "feed.atom").exists():
                self.app.publish()
                self._publish_needed = False
            self._failures = 0
        except DatabaseReplaced as exc:
            log.critical("%s", exc)
            self.exit_code = 1
            self.stop()
        except Interrupted:
            log.info("stopped in the middle of a dump; it was rolled back and stays pending")
        except DatabaseLocked as exc:
            # Another writer (a backfill) holds SQLite's lock: nothing is
            # wrong, so no backoff; the next tick tries again.
            log.warning(
                "database unavailable (%s); files stay pending, retrying at the next tick",
                _one_line(exc),
            )
        except StorageError as exc:
            self._failures += 1
            delay = min(
                self.config.daemon.max_backoff_seconds,
                self.config.daemon.scan_interval * 2 ** min(self._failures, 16),
            )
            self._retry_at = time.monotonic() + delay
            log.error(
                "database unavailable (%s); files stay pending, retrying in %.0f s",
                _one_line(exc),
                delay,
            )
        except FeeddError as exc:  # FeedWriteError: the previous feed files stay in place
            log.error("%s; retrying at the next tick", exc)
        except OSError as exc:
            log.error("scan failed: %s; retrying at the next tick", exc)
        finally:
            self.last_scan_at = self.now()

    def _ready_files(self) -> tuple[list[DumpFile], float | None]:
        """Settled dump files in dump order, and when to look again
        (feedd.ingest.source.Settler says which are settled)."""
        assert self.app is not None
        listed = source.scan_folder(self.app.watch_dir, self.config.ingest, self.app.watch_dir)
        return self._settler.ready(listed, time.monotonic())

    def _ingest_ready(self) -> None:
        assert self.app is not None
        ready, next_settle = self._ready_files()
        if next_settle is not None:
            self.wake(self.now() + timedelta(seconds=next_settle))
        for dump in ready:
            if self._stop.is_set():
                break
            self._check_database()
            result = self._ingest_one(dump)
            # Flag at once: a later dump of this scan may fail (database gone),
            # and the changes committed so far must still reach the feeds.
            if result is not None and result.changed:
                self._publish_needed = True

    def _ingest_one(self, dump: DumpFile) -> IngestResult | None:
        assert self.app is not None
        self._in_dump.set()
        try:
            result = self.app.ingester.ingest_file(dump)
        finally:
            self._in_dump.clear()
        if result is None:
            self._settler.forget(dump)
            return None
        if result.status == "ingested":
            self._note_order(dump)
        try:
            if result.status == "rejected":
                target = move_aside(
                    dump.path,
                    self.config.path(self.config.ingest.quarantine_dir),
                    f"{dump.name}: {result.reason}",
                    name=dump.name,
                )
                log.info("set %s aside in %s", dump.name, target)
                if result.content_hash:
                    self.app.store.set_dump_location(dump.name, result.content_hash, str(target))
            elif self.config.ingest.archive_dir:
                target = move_aside(
                    dump.path, self.config.path(self.config.ingest.archive_dir), name=dump.name
                )
                if result.content_hash:
                    self.app.store.set_dump_location(dump.name, result.content_hash, str(target))
        except FileNotFoundError:
            pass  # another worker moved it first; the database already has it
        except OSError as exc:
            # Quarantine or archive unusable (read-only, full, a FIFO that cannot
            # be copied to another filesystem): the database has the outcome, so
            # leave the file where it is and go on with the other dumps.
            log.error(
                "could not move %s out of the watch folder: %s; it stays there", dump.name, exc
            )
        self._settler.done(dump)
        return result

    def _note_order(self, dump: DumpFile) -> None:
        """Log a dump that arrives after a later-numbered one was ingested: it is
        ingested in arrival order (the README says so), not slotted back."""
        match = DUMP_NAME.match(dump.name)
        if match is None:
            return
        seq = int(match.group(1))
        if self._last_seq is not None and seq < self._last_seq:
            log.warning(
                "%s arrived late: dump %d was already ingested; ingested in arrival order",
                dump.name,
                self._last_seq,
                extra={"event": "late", "dump": dump.name},
            )
        self._last_seq = seq if self._last_seq is None else max(seq, self._last_seq)

    def _check_database(self) -> None:
        """Stop if the SQLite file was deleted or replaced: every later dump
        would be "ingested" into a file nobody can open again."""
        if self._db_identity is None:
            return
        now = _file_identity(self.config.database_url)
        if now != self._db_identity:
            path = make_url(self.config.database_url).database
            what = "deleted" if now is None else "replaced by another file"
            raise DatabaseReplaced(
                f"the database file {path} was {what} while feedd was running; stopping so "
                "that nothing more is lost. Restore it (or start afresh) and start feedd again"
            )

    def _reload(self) -> None:
        if self._reload_config is None:
            return
        try:
            new = self._reload_config()
            check_watch_dir(new)
            app = build(new)
        except FeeddError as exc:
            log.error("config reload failed, keeping the old config: %s", exc)
            return
        old = self.app
        self.config, self.app = new, app
        self._attach(app)
        self._settler.settle = new.daemon.settle_seconds
        if old is not None:
            old.close()
        job = self.scheduler.get_job("scan")
        if job is not None:
            job.reschedule("interval", seconds=new.daemon.scan_interval)
        # feed.* settings (title, max_items) show at once, not at the next ingest.
        self._publish_needed = True
        log.info("config reloaded")


class _SkippedRuns(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


def _quiet_apscheduler() -> None:
    """APScheduler warns when a tick finds the scan still running, which is
    normal during a long dump; our listener logs it at debug instead."""
    logger = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkippedRuns) for f in logger.filters):
        logger.addFilter(_SkippedRuns())


def _file_identity(database_url: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a SQLite database file; None when there is none."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    try:
        st = os.stat(str(url.database))
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _one_line(exc: BaseException) -> str:
    # Driver messages span lines ("...\n\tIs the server running..."); a log
    # line must stay one line for grep and for journald.
    return " ".join(str(exc).split())
