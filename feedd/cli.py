"""The command line: a thin layer over the composition root (feedd.app).

Data goes to stdout (``--json`` for machines), progress and logs to stderr.
Domain errors become one line and a non-zero exit; a configuration mistake
exits with 2.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from feedd.errors import ArticleNotFound, ConfigError, DatabaseLocked, FeeddError, InvalidDump

if TYPE_CHECKING:
    from feedd.app import App
    from feedd.config import Config
    from feedd.model import Article

# Everything else is imported by the command that needs it: `feedd --help`
# must not pay for SQLAlchemy, numpy or feedgen, nor `feedd status` for
# Alembic, feedgen, APScheduler or the web stack (bench/startup.py measures
# it; tests/test_cli_startup.py keeps it so).

log = logging.getLogger("feedd.cli")


@dataclass
class State:
    config_path: str | None
    verbosity: int
    log_format: str | None
    overrides: dict[str, Any] = field(default_factory=dict)
    _app: App | None = None

    def config(self) -> Config:
        from feedd.config import load_config

        return load_config(self.config_path, overrides=self.overrides)

    def app(self, *, write: bool = False, create: bool = False) -> App:
        """The app for this command. Read-only commands (the default) never
        write: not the schema, not an empty database file. ``write`` may
        upgrade the schema; ``create`` may also create the SQLite file."""
        if self._app is None:
            from feedd.app import build
            from feedd.logs import setup_logging

            config = self.config()
            setup_logging(config.log.level, self.log_format_of(config), self.verbosity)
            self._app = build(config, upgrade=write or create, create=create)
        return self._app

    def log_format_of(self, config: Config) -> str:
        return self.log_format or config.log.format

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def _default_config() -> str | None:
    return "config.toml" if Path("config.toml").is_file() else None


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatabaseLocked as exc:
            from feedd.app import locked_message

            # Said here, where the config is known: which database, which lock file.
            state = ctx.find_object(State)
            try:
                message = locked_message(state.config()) if state else str(exc)
            except FeeddError:
                message = str(exc)
            raise DatabaseLocked(message) from exc


@click.group(
    cls=_Group,
    # No auto_envvar_prefix: FEEDD_* variables are config keys, and an unknown
    # one is refused (feedd.config); only --config has one of its own.
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="FEEDD_CONFIG",
    show_envvar=True,
    default=_default_config,
    help="config.toml to use (default: ./config.toml if present, else built-in defaults).",
)
@click.option("-v", "--verbose", count=True, help="More log output; repeat for debug.")
@click.option("-q", "--quiet", count=True, help="Less log output.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log line format on stderr (default: log.format from the config).",
)
@click.version_option(package_name="feedd")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, verbose: int, quiet: int, log_format: str | None
) -> None:
    """feedd: turn scraped "latest updates" dumps into a feed of what is really new."""
    state = State(config_path, verbose - quiet, log_format)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _state() -> State:
    return click.get_current_context().find_object(State)  # type: ignore[return-value]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


# backfill -------------------------------------------------------------------
PROGRESS_SECONDS = 5.0  # between the summary log lines of a running backfill


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--dry-run", is_flag=True, help="Classify everything, then roll it all back.")
@click.option("--no-feeds", is_flag=True, help="Do not re-render the feed files afterwards.")
def backfill(paths: tuple[Path, ...], as_json: bool, dry_run: bool, no_feeds: bool) -> None:
    """Ingest dump files and/or folders of dumps, in dump order.

    Running it twice is a no-op: a dump already ingested (same name, same
    content) is skipped. Files that are not dumps are recorded as rejected,
    with the reason; backfill never moves or deletes files. It creates the
    database if there is none.

    Progress: a bar on a terminal (not with -q or --log-format json), and a
    summary log line every few seconds. Exits 1 when every file was rejected,
    or when another writer holds the database past database.busy_timeout_ms.
    """
    from feedd.ingest import source

    state = _state()
    app = state.app(create=True)
    # One log line per dump would bury the bar and the summaries.
    app.ingester.log_each_dump = False
    files = source.list_paths(paths, app.config.ingest)
    results = []
    progress = _Progress(len(files))
    show_bar = (
        sys.stderr.isatty() and state.verbosity >= 0 and state.log_format_of(app.config) == "text"
    )
    with _maybe_dry(app, dry_run), app.store.batch(app.config.ingest.backfill_batch):
        with click.progressbar(
            length=len(files),
            label="ingesting",
            file=sys.stderr,
            show_pos=True,
            hidden=not show_bar,
        ) as bar:
            for result in app.ingester.ingest_listed(files):
                results.append(result)
                progress.add(result)
                bar.update(1)
    progress.log(final=True)
    feeds: dict[str, bool] = {}
    if not dry_run and not no_feeds:
        # Always: a killed earlier run may have left the feeds behind the
        # database, and publish rewrites only files whose bytes change.
        feeds = app.publish()
    summary: dict[str, Any] = {
        "dry_run": dry_run,
        "dumps": len(results),
        "ingested": sum(r.status == "ingested" for r in results),
        "unchanged": sum(r.status == "unchanged" for r in results),
        "item_lines": sum(r.items for r in results),
        "new": sum(r.new for r in results),
        "repeat": sum(r.repeat for r in results),
        "update": sum(r.update for r in results),
        "rejected": [
            {"name": r.name, "reason": r.reason} for r in results if r.status == "rejected"
        ],
        "feeds_written": sorted(k for k, v in feeds.items() if v),
    }
    all_rejected = bool(results) and len(summary["rejected"]) == len(results)
    if as_json:
        _echo_json(summary)
    else:
        click.echo(
            f"{'dry run: ' if dry_run else ''}{summary['dumps']} dumps "
            f"({summary['ingested']} ingested, {summary['unchanged']} unchanged, "
            f"{len(summary['rejected'])} rejected), {summary['item_lines']} item lines: "
            f"{summary['new']} new, {summary['repeat']} repeat, {summary['update']} update"
        )
        for rej in summary["rejected"]:
            click.echo(f"rejected {rej['name']}: {rej['reason']}")
        if summary["feeds_written"]:
            click.echo(f"feeds written: {', '.join(summary['feeds_written'])}")
    if all_rejected:
        click.echo(
            f"feedd: every file was rejected ({len(results)}): nothing was ingested; "
            "`feedd rejected` lists the reasons",
            err=True,
        )
        click.get_current_context().exit(1)


class _Progress:
    """Counts of a running backfill, logged every PROGRESS_SECONDS."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = self.lines = self.new = self.repeat = self.update = self.rejected = 0
        self.started = self.last = time.monotonic()

    def add(self, result: Any) -> None:
        self.done += 1
        self.lines += result.items
        self.new += result.new
        self.repeat += result.repeat
        self.update += result.update
        self.rejected += result.status == "rejected"
        if time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.log()

    def log(self, *, final: bool = False) -> None:
        self.last = time.monotonic()
        elapsed = max(self.last - self.started, 1e-6)
        rate = self.done / elapsed
        log.info(
            "%s %d/%d dumps, %d item lines: %d new, %d repeat, %d update, %d rejected; "
            "%.1f dumps/s",
            "backfilled" if final else "backfill:",
            self.done,
            self.total,
            self.lines,
            self.new,
            self.repeat,
            self.update,
            self.rejected,
            rate,
            extra={
                "event": "backfilled" if final else "backfill_progress",
                "dumps": self.done,
                "total": self.total,
                "items": self.lines,
                "new": self.new,
                "repeat": self.repeat,
                "update": self.update,
                "rejected": self.rejected,
                "dumps_per_s": round(rate, 1),
            },
        )


@contextmanager
def _maybe_dry(app: App, dry_run: bool) -> Iterator[None]:
    if dry_run:
        with app.store.dry_run():
            yield
    else:
        yield


# status / articles / history -------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(as_json: bool) -> None:
    """Totals, the daemon's health, the last ingest, pending and rejected dumps.

    Lists only the rejections still open: a dump rejected and then, under the
    same name, ingested fine is left out (`feedd rejected` lists them all).
    The daemon counts as running only while its heartbeat is fresh and, on
    this host, its pid is alive.
    """
    app = _state().app()
    report = app.status_report()
    if as_json:
        _echo_json(report)
        return
    daemon = report["daemon"]
    if daemon["alive"]:
        click.echo(
            f"daemon: running (pid {daemon['pid']} on {daemon['host']}, "
            f"last scan {daemon['last_scan_at']}, next {daemon['next_scan_at']})"
        )
    else:
        why = daemon.get("stale_reason") or "stale heartbeat"
        click.echo("daemon: not running" + (f" ({why})" if daemon.get("stale") else ""))
    t = report["totals"]
    click.echo(
        f"articles: {t['articles']}, revisions: {t['revisions']}, sightings: {t['sightings']} "
        f"({t['kinds']['new']} new, {t['kinds']['repeat']} repeat, {t['kinds']['update']} update)"
    )
    click.echo(
        f"dumps: {t['dumps']} ingested, {report['rejected_open']} rejected"
        + (
            f" (+{t['rejected'] - report['rejected_open']} since fixed)"
            if t["rejected"] > report["rejected_open"]
            else ""
        )
    )
    click.echo(f"pending: {report['pending']}, lag: {report['lag_seconds']} s")
    last = report["last_ingest"]
    if last:
        click.echo(
            f"last ingest: {last['name']} at {last['ingested_at']} "
            f"({last['new']} new, {last['repeat']} repeat, {last['update']} update)"
        )
    for rej in report["rejected"]:
        click.echo(f"rejected: {rej['name']}: {rej['error']}")
    if report["rejected_open"] > len(report["rejected"]):
        click.echo(
            f"… and {report['rejected_open'] - len(report['rejected'])} more: `feedd rejected`"
        )
    for name, info in report["feeds"].items():
        click.echo(f"feed {name}: {info['entries']} entries, modified {info['modified']}")


@cli.command()
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def articles(limit: int, as_json: bool) -> None:
    """The newest articles, by first sighting."""
    from feedd import shapes
    from feedd.feeds.title import make_title

    app = _state().app()
    # browse, not articles(): one LIMITed page through the first-seen index.
    arts = app.store.browse(limit=limit)
    if as_json:
        width = app.config.feed.title_max_chars
        _echo_json([shapes.article_summary(a, title_max_chars=width) for a in arts])
        return
    for a in arts:
        click.echo(
            f"{a.uid[:8]}  {a.first_seen:%Y-%m-%d %H:%M}  r{a.revision_count}  {make_title(a.text)}"
        )


@cli.command()
@click.argument("article")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def history(article: str, as_json: bool) -> None:
    """Every revision of ARTICLE with character diffs.

    ARTICLE is always an article's uid or the start of it, at least 4
    characters (`feedd articles` shows the first 8); digits are uid
    characters too, never an article number.

    Example: feedd history 2b7f09c1
    """
    from feedd import shapes
    from feedd.core.diff import inline_diff

    app = _state().app()
    art = _find_article(app, article)
    if as_json:
        _echo_json(shapes.history(art, title_max_chars=app.config.feed.title_max_chars))
        return
    click.echo(f"article {art.uid}: {len(art.revisions)} revisions, {len(art.sightings)} sightings")
    previous: str | None = None
    for rev in art.revisions:
        click.echo(
            f"\nrevision {rev.number}  first seen {_iso(rev.first_seen)}  simhash {rev.simhash}"
        )
        click.echo(rev.text if previous is None else inline_diff(previous, rev.text))
        previous = rev.text
    click.echo("\nsightings:")
    for s in art.sightings:
        click.echo(f"  {s.dump}:{s.line}  r{s.revision}  {s.kind:6}  {_iso(s.seen_at)}")


_UID_REF = re.compile(r"[0-9a-f-]+")
MIN_PREFIX = 4
_SHOWN_MATCHES = 5


def _find_article(app: App, ref: str) -> Article:
    """The one article whose uid starts with ``ref``, or ArticleNotFound saying why."""
    key = ref.strip().lower()
    if not _UID_REF.fullmatch(key):
        raise ArticleNotFound(
            f"{ref!r} is not an article uid: give the uid or its first {MIN_PREFIX}+ "
            "characters (0-9, a-f), as `feedd articles` shows them"
        )
    if len(key) < MIN_PREFIX:
        raise ArticleNotFound(
            f"{ref!r} is too short: give at least {MIN_PREFIX} characters of the uid "
            "(`feedd articles` shows 8)"
        )
    count, found = app.store.articles_by_prefix(key, limit=_SHOWN_MATCHES)
    if count == 0:
        raise ArticleNotFound(f"no article {ref!r}; list them with `feedd articles`")
    if count > 1:
        from feedd.feeds.title import make_title

        shown = "; ".join(f"{a.uid} {make_title(a.text)[:30]}" for a in found)
        more = f"; and {count - len(found)} more" if count > len(found) else ""
        raise ArticleNotFound(
            f"ambiguous: {count} articles start with {key}: {shown}{more}; give more characters"
        )
    art = app.store.article(found[0].uid)
    if art is None:  # deleted between the two reads
        raise ArticleNotFound(f"no article {ref!r}; list them with `feedd articles`")
    return art


# explain --------------------------------------------------------------------
@cli.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--text", "text", metavar="TEXT", help="Explain this item text instead of a file.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def explain(path: Path | None, text: str | None, as_json: bool) -> None:
    """Which article an item would match, and why: each item of dump file
    PATH, or the item text given with --text.

    Text that is a noise line (a category, a date, a pager) is refused, as
    ingest would skip it. Nothing is written: the lookups run in a read-only
    transaction.

    Example: feedd explain dumps/007_0123456789abcdef.txt
    """
    from feedd import shapes
    from feedd.core.fingerprint import text_key

    if (path is None) == (text is None):
        raise click.UsageError("give a dump file PATH or --text TEXT (one of them)")
    texts = _explain_texts(path, text)
    app = _state().app()
    settings = app.config.match
    with app.store.lookup() as tx:
        # A dump is decided as a whole, as ingest does: lines claim articles.
        items, decisions = app.ingester.decide(
            tx, [(line, text, text_key(text)) for line, text in texts]
        )
        reports = [
            shapes.explain(
                item,
                d,
                match=settings,
                segment_chars=app.config.fingerprint.segment_chars,
                uid_of=lambda article_id: _uid(app, article_id),
            )
            for item, d in zip(items, decisions, strict=True)
        ]
    if as_json:
        _echo_json(reports)
        return
    for r in reports:
        where = f"line {r['line']}: " if r["line"] else ""
        recut = f", re-cut {r['recut']}" if r["recut"] else ""
        click.echo(
            f"{where}{r['decision']} {r['article'] or ''} — {r['reason']}{recut} "
            f"(simhash {r['simhash'] or '-'}, {r['segments']} segments, k={settings.simhash_k}, "
            f"threshold {settings.verify_threshold})"
        )
        for c in r["candidates"]:
            mark = "excluded" if c["excluded"] else ("accept" if c["accepted"] else "reject")
            extra = f", re-cut {c['recut']}" if c["recut"] else ""
            extra += f", veto: {c['veto']}" if c["veto"] else ""
            if c["inserted"]:
                extra += (
                    ", a section inserted after its opening (as an edit it missed"
                    f" min_plain {settings.min_plain} or the threshold)"
                )
            weighted = f"{c['weighted']:.3f}"
            if c["screened"]:
                weighted = "not computed"
                extra += (
                    f", screened out: plain containment under min_plain {settings.min_plain}"
                    " both ways, and too little shared for an inserted section"
                )
            click.echo(
                f"    {mark} {c['article']} r{c['revision']}: rarity evidence {c['evidence']:.2f}"
                f" from {c['shared_segments']} shared segments, distance {c['distance']}, "
                f"containment {c['containment']:.3f}, weighted {weighted}{extra}"
            )
            if c["shared"]:
                shared = ", ".join(f"{s['text']}×{s['weight']:.2f}" for s in c["shared"][:6])
                click.echo(f"        rarest shared: {shared}")


def _explain_texts(path: Path | None, text: str | None) -> list[tuple[int, str]]:
    from feedd.core.parse import ParseLimits, classify_noise, parse_dump

    limits = ParseLimits(max_category_chars=_state().config().ingest.max_category_chars)
    if text is not None:
        stripped = text.strip()
        if not stripped:
            raise click.BadParameter("the text is empty; give an item's text", param_hint="--text")
        kind = classify_noise(stripped, limits)
        if kind is not None:
            raise click.BadParameter(
                f"{stripped!r} is a {kind} line, not an article: ingest skips it; "
                "give a whole item line",
                param_hint="--text",
            )
        return [(0, text)]
    assert path is not None
    try:
        is_dir, exists = path.is_dir(), path.exists()
    except OSError:  # a name too long to be a file
        is_dir = exists = False
    if is_dir:
        raise click.BadParameter(f"{path} is a folder; give one dump file", param_hint="PATH")
    if not exists:
        raise click.BadParameter(
            f"no file {path}; to explain an item's text use --text TEXT", param_hint="PATH"
        )
    try:
        parsed = parse_dump(path.read_bytes(), limits)
    except InvalidDump as exc:
        raise FeeddError(f"{path}: {exc.reason}") from None
    except OSError as exc:
        raise FeeddError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not parsed.items:
        raise FeeddError(f"{path} holds no item lines, only noise")
    return [(i.line, i.text) for i in parsed.items]


def _uid(app: App, article_id: int | None) -> str | None:
    if article_id is None:
        return None
    art = app.store.article(article_id, full=False)
    return art.uid if art else None


# export / feed --------------------------------------------------------------
@cli.command()
def export() -> None:
    """Every article as JSON Lines on stdout (the stable format in the README)."""
    from feedd import shapes

    app = _state().app()
    width = app.config.feed.title_max_chars
    for art in app.store.export():
        click.echo(json.dumps(shapes.export(art, title_max_chars=width), ensure_ascii=False))


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["rss", "atom"]), default="atom", show_default=True
)
@click.option("--updates", is_flag=True, help="The feed of new revisions instead of new articles.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (atomically).",
)
def feed(fmt: str, updates: bool, output: Path | None) -> None:
    """Render a feed on demand, to stdout or to a file."""
    from feedd.feeds.write import render_feed, write_if_changed

    app = _state().app()
    data = render_feed(app.store, app.config.feed, fmt, updates=updates)
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
    else:
        changed = write_if_changed(output, data)
        click.echo(f"{output}: {'written' if changed else 'unchanged'}", err=True)


# daemon and server -----------------------------------------------------------
@cli.command()
@click.option("--watch-dir", type=click.Path(file_okay=False), help="Override ingest.watch_dir.")
@click.option("--output-dir", type=click.Path(file_okay=False), help="Override feed.output_dir.")
@click.option(
    "--scan-interval", type=click.FloatRange(min=0.05), help="Override daemon.scan_interval."
)
@click.option(
    "--listen", help="Also serve HTTP here (overrides server.listen), e.g. 127.0.0.1:8080."
)
def run(
    watch_dir: str | None, output_dir: str | None, scan_interval: float | None, listen: str | None
) -> None:
    """Watch the folder, ingest dumps as they land, keep the feeds current.

    SIGTERM/SIGINT finish the current dump, write the feeds and exit 0;
    SIGHUP reloads the config file (a bad one is logged and the old kept).
    """
    from feedd.daemon import Daemon
    from feedd.logs import setup_logging

    state = _state()
    for key, value in (
        ("ingest.watch_dir", watch_dir and str(Path(watch_dir).resolve())),
        ("feed.output_dir", output_dir and str(Path(output_dir).resolve())),
        ("daemon.scan_interval", scan_interval),
        ("server.listen", listen),
    ):
        if value is not None:
            state.overrides[key] = value
    config = state.config()
    setup_logging(config.log.level, state.log_format or config.log.format, state.verbosity)
    sys.exit(Daemon(config, reload=state.config).start())


@cli.command()
@click.option("--listen", help="host:port (default: server.listen, else 127.0.0.1:8080).")
def serve(listen: str | None) -> None:
    """Serve the feeds, the history pages and their JSON, /healthz and /metrics over HTTP.

    Read-only: without a database it refuses to start (it never creates one).
    SIGTERM and SIGINT stop it cleanly with exit code 0.
    """
    from feedd.web.serve import serve as serve_http

    state = _state()
    app = state.app()
    address = listen or app.config.server.listen or "127.0.0.1:8080"
    wsgi = app.wsgi()
    # waitress's run loop ends cleanly on KeyboardInterrupt; SIGTERM's default
    # would kill the process with 143 instead.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve_http(
            wsgi,
            address,
            threads=app.config.server.threads,
            channel_timeout=app.config.server.channel_timeout,
            read_deadline=app.config.server.read_deadline,
            connection_limit=app.config.server.connection_limit,
            max_connections_per_client=app.config.server.max_connections_per_client,
        )
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.info("HTTP server stopped", extra={"event": "http_stopped"})


def _interrupt(signum: int, _frame: Any) -> None:
    log.info("received %s: stopping", signal.Signals(signum).name)
    raise KeyboardInterrupt


# db -------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the schema to the newest migration, creating the database if
    there is none (`feedd run` and `feedd backfill` also do this on start)."""
    app = _state().app(create=True)
    from feedd.store import migrate

    click.echo(f"schema at {migrate.current_revision(app.store.engine)}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from feedd.app import require_database
    from feedd.store import migrate
    from feedd.store.engine import make_engine

    config = _state().config()
    require_database(config)
    engine = make_engine(config.database_url)
    try:
        click.echo(f"{migrate.current_revision(engine)} (head {migrate.head_revision()})")
    finally:
        engine.dispose()


# rejected -------------------------------------------------------------------
@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def rejected(ctx: click.Context, as_json: bool) -> None:
    """List the rejected dumps, newest first: why, and where each was set aside.

    A rejection marked "fixed" was followed by a successful ingest of a dump
    with the same name; `feedd status` leaves those out.

    Example: feedd rejected clear --all
    """
    if ctx.invoked_subcommand is not None:
        return
    from feedd import shapes

    _count, rows = _state().app().store.rejected_dumps()
    records = [shapes.rejected(d, fixed) for d, fixed in rows]
    if as_json:
        _echo_json(records)
        return
    if not records:
        click.echo("no rejected dumps")
    for r in records:
        where = f"set aside at {r['location']}" if r["location"] else "not moved"
        mark = "  [fixed: ingested since]" if r["fixed"] else ""
        click.echo(f"{r['name']}  {r['rejected_at']}  {r['reason']}  ({where}){mark}")


@rejected.command("clear")
@click.argument("name", required=False)
@click.option("--all", "clear_all", is_flag=True, help="Clear every rejection record.")
def rejected_clear(name: str | None, clear_all: bool) -> None:
    """Delete the rejection records of dump NAME, or of all dumps (--all).

    Only the database records go: files are never touched. A file still in
    the watch folder is tried again by the daemon.
    """
    if (name is None) == (not clear_all):
        raise click.UsageError("give a dump NAME or --all (one of them)")
    cleared = _state().app(write=True).store.clear_rejected(None if clear_all else name)
    if name is not None and cleared == 0:
        raise FeeddError(f"no rejected dump named {name!r}; `feedd rejected` lists them")
    click.echo(f"cleared {cleared} rejection record{'s' if cleared != 1 else ''}")


def _one_line(exc: Exception) -> str:
    # Driver messages span lines; a log line or a terminal wants one.
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and exit 2 for config mistakes, 1 for other errors."""
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"feedd: {_one_line(exc)}", err=True)
        sys.exit(2)
    except FeeddError as exc:
        click.echo(f"feedd: {_one_line(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
