"""config.toml: typed sections with documented defaults.

Every key has a default, so an empty file is a valid config. Unknown keys and
wrong types are refused with the full key path (``feed.max_items``), because a
typo that is silently ignored is worse than a daemon that refuses to start.
Environment variables ``FEEDD_<SECTION>_<KEY>`` override the file, e.g.
``FEEDD_DATABASE_URL``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from feedd.core.settings import FingerprintSettings, MatchSettings
from feedd.errors import ConfigError


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///feedd.db"  # relative SQLite paths are relative to config.toml
    busy_timeout_ms: int = 5000
    sqlite_cache_mb: int = 64  # SQLite page cache per connection


@dataclass(frozen=True)
class IngestConfig:
    watch_dir: str = "dumps"
    pattern: str = "*.txt"
    archive_dir: str = ""  # "" leaves ingested dumps where they are
    quarantine_dir: str = "quarantine"
    observed_time: str = "mtime"  # "mtime" or "ingest": what a dump's sightings are dated
    max_dump_bytes: int = 64 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024
    max_category_chars: int = 24
    follow_symlinks: bool = False
    backfill_batch: int = 500  # dumps per transaction in `feedd backfill`
    prepare_ahead: bool = True  # backfill: a helper process fingerprints ahead (2+ CPUs)


@dataclass(frozen=True)
class DaemonConfig:
    scan_interval: float = 5.0
    settle_seconds: float = 1.0
    watch_events: bool = True  # instant pickup through inotify; the scan stays as a net
    heartbeat_stale_seconds: float = 60.0
    max_backoff_seconds: float = 300.0


@dataclass(frozen=True)
class FeedConfig:
    output_dir: str = "public"
    max_items: int = 50
    include_updates: bool = False
    title: str = "feedd"
    subtitle: str = "What is really new in the watched listing"
    author: str = "feedd"
    language: str = "zh"
    base_url: str = "http://127.0.0.1:8080"
    id: str = ""  # "" derives a stable urn:uuid from base_url
    title_max_chars: int = 80


@dataclass(frozen=True)
class ServerConfig:
    listen: str = ""  # "127.0.0.1:8080" makes `feedd run` serve HTTP too
    threads: int = 8
    channel_timeout: int = 30  # seconds a client may stall while a response is sent to it
    # Seconds a client has to send a whole request, from connecting or from the
    # previous response; trickling bytes does not extend it (issue 13).
    read_deadline: int = 10
    connection_limit: int = 1000  # open HTTP connections; waitress's own default is 100
    max_connections_per_client: int = 100  # per client IP address
    # Comma-separated addresses (or CIDR networks) of reverse proxies whose
    # X-Forwarded-Proto/-Host/-Prefix headers are believed; "" trusts none.
    trusted_proxies: str = ""
    access_log: bool = True  # a log line per request on the logger feedd.access


@dataclass(frozen=True)
class LogConfig:
    format: str = "text"  # "text" or "json"
    level: str = "info"


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    match: MatchSettings = field(default_factory=MatchSettings)
    fingerprint: FingerprintSettings = field(default_factory=FingerprintSettings)
    feed: FeedConfig = field(default_factory=FeedConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    log: LogConfig = field(default_factory=LogConfig)
    base_dir: Path = field(default_factory=Path.cwd)

    def path(self, value: str) -> Path:
        """A configured path, resolved against the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def database_url(self) -> str:
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:":
                return prefix + str(self.path(rest))
        return url


_CHOICES: dict[str, tuple[str, ...]] = {
    "ingest.observed_time": ("mtime", "ingest"),
    "log.format": ("text", "json"),
    "log.level": ("debug", "info", "warning", "error"),
}
_POSITIVE = {
    "database.sqlite_cache_mb",
    "daemon.scan_interval",
    "daemon.heartbeat_stale_seconds",
    "daemon.max_backoff_seconds",
    "ingest.max_dump_bytes",
    "ingest.max_line_bytes",
    "ingest.backfill_batch",
    "feed.max_items",
    "server.threads",
    "server.read_deadline",
    "server.connection_limit",
    "server.max_connections_per_client",
    "match.shingle_size",
    "match.min_shared_segments",
    "match.boilerplate_df",
    "match.lookup_segments",
    "fingerprint.feature_ngram",
    "fingerprint.max_segments",
    "fingerprint.segment_chars",
    "fingerprint.segment_window",
}

_NON_NEGATIVE = {"daemon.settle_seconds", "database.busy_timeout_ms"}
# Past these the daemon breaks (SQLite's LIMIT, a feed no reader loads) or
# waits forever; a typo of a few zeros is the likely cause.
_AT_MOST: dict[str, float] = {
    "feed.max_items": 10_000,
    "feed.title_max_chars": 10_000,
    "daemon.settle_seconds": 86_400,
    "daemon.scan_interval": 86_400,
    "database.busy_timeout_ms": 3_600_000,
    "database.sqlite_cache_mb": 65_536,
    "ingest.backfill_batch": 1_000_000,
}
# FEEDD_* variables that are not config keys: click's --config, and the test
# suite's PostgreSQL server.
_OTHER_ENV = {"FEEDD_CONFIG", "FEEDD_TEST_PG_URL"}


def _coerce(key: str, value: Any, kind: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif kind is float:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        # nan passes every comparison check below and then breaks the
        # scheduler; inf is no better.
        if number is not None and math.isfinite(number):
            return number
        if number is not None:
            raise ConfigError(f"config: {key} must be a finite number, got {value!r}")
    elif kind is str:
        if isinstance(value, str):
            return value
    name = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
    raise ConfigError(f"config: {key} must be {name}, got {value!r}")


def _section(
    name: str,
    cls: type[Any],
    values: Mapping[str, Any],
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"config: unknown key {name}.{unknown[0]}; "
            f"known keys in [{name}]: {', '.join(sorted(known))}"
        )
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"config: unknown key {name}.{unknown[0]}")
    kwargs: dict[str, Any] = {}
    for key in known:
        full = f"{name}.{key}"
        env_name = f"FEEDD_{name}_{key}".upper()
        raw: Any
        if key in overrides:
            raw = overrides[key]
        elif env_name in env:
            raw = env[env_name]
            full = f"{full} (from ${env_name})"
        elif key in values:
            raw = values[key]
        else:
            continue
        value = _coerce(full, raw, hints[key])
        choices = _CHOICES.get(f"{name}.{key}")
        if choices and value not in choices:
            raise ConfigError(f"config: {full} must be one of {', '.join(choices)}, got {value!r}")
        if f"{name}.{key}" in _POSITIVE and value <= 0:
            raise ConfigError(f"config: {full} must be greater than 0, got {value!r}")
        if f"{name}.{key}" in _NON_NEGATIVE and value < 0:
            raise ConfigError(f"config: {full} must be 0 or more, got {value!r}")
        most = _AT_MOST.get(f"{name}.{key}")
        if most is not None and value > most:
            raise ConfigError(f"config: {full} must be at most {most}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read config.toml (or defaults when path is None), then apply overrides.

    ``overrides`` maps "section.key" to a value (the CLI's --watch-dir and
    friends); they win over both the file and the environment.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config: file {p} does not exist; pass --config PATH") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {p} is not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config: cannot read {p}: {exc}") from None
        base_dir = p.resolve().parent
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        by_section.setdefault(section, {})[name] = value
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name != "base_dir"}
    _check_env(env, sections)
    unknown = sorted((set(data) | set(by_section)) - set(sections))
    if unknown:
        raise ConfigError(
            f"config: unknown section [{unknown[0]}]; known sections: {', '.join(sorted(sections))}"
        )
    hints = get_type_hints(Config)
    built: dict[str, Any] = {}
    for name in sections:
        values = data.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"config: {name} must be a table ([{name}]), got {values!r}")
        built[name] = _section(name, hints[name], values, env, by_section.get(name, {}))
    config = Config(**built, base_dir=base_dir)
    _check_semantics(config)
    return config


def _check_env(env: Mapping[str, str], sections: Mapping[str, Any]) -> None:
    """An unknown FEEDD_* variable is refused like an unknown key in the file:
    FEEDD_FEED_MAX_ITEM=100 silently doing nothing is the worse outcome."""
    hints = get_type_hints(Config)
    known = set(_OTHER_ENV)
    for name in sections:
        known.update(f"FEEDD_{name}_{f.name}".upper() for f in dataclasses.fields(hints[name]))
    unknown = sorted(k for k in env if k.upper().startswith("FEEDD_") and k.upper() not in known)
    if unknown:
        raise ConfigError(
            f"config: unknown environment variable ${unknown[0]}; config keys are "
            "FEEDD_<SECTION>_<KEY>, e.g. FEEDD_DATABASE_URL"
        )


def check_listen(value: str, key: str = "server.listen") -> tuple[str, int]:
    """``host:port`` -> (host, port), or one line naming ``key``."""
    host, sep, port = value.rpartition(":")
    host = host.strip()
    if not sep or not host.strip("[]") or not port.isdigit():
        raise ConfigError(f"config: {key} must look like 127.0.0.1:8080, got {value!r}")
    number = int(port)
    if not 0 < number <= 65535:
        raise ConfigError(f"config: {key}: port must be 1 to 65535, got {value!r}")
    return host.strip("[]"), number


def _check_semantics(config: Config) -> None:
    if not 0 <= config.match.simhash_k <= 3:
        raise ConfigError(
            "config: match.simhash_k must be 0 to 3: the database index splits the 64 bits "
            "into 4 bands of 16, which guarantees recall up to 3 bits"
        )
    if not 0.0 < config.match.verify_threshold <= 1.0:
        raise ConfigError("config: match.verify_threshold must be in (0, 1]")
    if not config.match.min_evidence >= 0.0:  # also refuses nan
        raise ConfigError("config: match.min_evidence must be a number >= 0")
    if config.server.listen:
        check_listen(config.server.listen)
    if not config.ingest.pattern.strip():
        raise ConfigError(
            "config: ingest.pattern must not be empty (it would match no file); e.g. '*.txt'"
        )
    watch = config.path(config.ingest.watch_dir).resolve()
    for key in ("quarantine_dir", "archive_dir"):
        value = getattr(config.ingest, key)
        if value and config.path(value).resolve() == watch:
            raise ConfigError(
                f"config: ingest.{key} must not be the watch folder ({watch}): a file set "
                "aside there would be found again at every scan"
            )


def check_watch_dir(config: Config) -> Path:
    """The watch folder must exist: a daemon watching nothing is a silent failure."""
    watch = config.path(config.ingest.watch_dir)
    if not watch.is_dir():
        raise ConfigError(
            f"config: ingest.watch_dir: folder {watch} does not exist; create it or fix the path"
        )
    return watch
