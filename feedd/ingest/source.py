"""Where dumps come from: list, order, settle and read dump files.

The daemon and `feedd backfill` both find and read files here, so a file is
judged the same way whichever of them meets it: every directory entry ends as
a dump to read, a problem to set aside with its reason, or nothing (it
vanished). No entry, however odd its name or target, raises past this module.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feedd.config import IngestConfig
from feedd.dumpfiles import DumpFile, is_candidate_name, order_key, read_dump
from feedd.errors import DumpVanished, InvalidDump

log = logging.getLogger("feedd.ingest")

# A dump dated further ahead than this is dated when it was read instead: a
# clock that is a little ahead is normal, a year 2400 is not.
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class DumpBytes:
    """One dump to ingest: its bytes, or why they could not be read."""

    name: str
    data: bytes
    observed_at: datetime
    content_hash: str | None = None
    path: Path | None = None
    error: str | None = None  # unreadable: recorded as rejected, with this reason
    size: int = 0  # of an unreadable file


def printable_name(name: str) -> str:
    """The name as text: bytes that are not UTF-8 shown as ``\\xNN``.

    os.scandir hands such bytes over as lone surrogates, which no database
    driver, log line or JSON encoder accepts.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _odd(path: Path, name: str, reason: str) -> DumpFile:
    return DumpFile(path, name, 0, 0.0, problem=reason)


def examine(path: Path, *, follow_symlinks: bool = False, root: Path | None = None) -> DumpFile:
    """Stat one entry. Raises only DumpVanished; any other trouble becomes
    ``DumpFile.problem``, the reason it is set aside."""
    name = printable_name(path.name)
    if name != path.name:
        return _odd(path, name, "the file name is not valid UTF-8; rename the file")
    try:
        is_link = path.is_symlink()
        if is_link:
            try:
                target = os.readlink(path)
            except FileNotFoundError:
                raise DumpVanished() from None
            if not follow_symlinks:
                return _odd(
                    path,
                    name,
                    f"symlink to {printable_name(target)} not followed "
                    "(set ingest.follow_symlinks = true to allow)",
                )
            resolved = path.resolve()
            if root is not None and not resolved.is_relative_to(root.resolve()):
                return _odd(path, name, f"symlink points outside the watch folder: {resolved}")
        st = path.stat()
    except (FileNotFoundError, DumpVanished):
        if path.is_symlink():
            return _odd(path, name, "symlink to a file that does not exist")
        raise DumpVanished() from None
    except PermissionError:
        return _odd(path, name, "no permission to read the file")
    except RuntimeError:  # pathlib's resolve() on a symlink loop
        return _odd(path, name, "symlink loop")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _odd(path, name, "symlink loop")
        return _odd(path, name, f"cannot stat the file: {exc.strerror or exc}")
    if not path.is_file():
        return _odd(path, name, "not a regular file (a directory or a device)")
    return DumpFile(path, name, st.st_size, st.st_mtime)


def scan_folder(folder: Path, config: IngestConfig, root: Path | None = None) -> list[DumpFile]:
    """Every candidate entry of one folder (not recursive), examined."""
    out: list[DumpFile] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not is_candidate_name(entry.name, config.pattern):
                continue
            try:
                out.append(
                    examine(Path(entry.path), follow_symlinks=config.follow_symlinks, root=root)
                )
            except DumpVanished:
                continue
    return out


def list_paths(paths: Iterable[Path], config: IngestConfig) -> list[DumpFile]:
    """`feedd backfill`: files named directly, plus candidates inside folders."""
    out: list[DumpFile] = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            out.extend(scan_folder(path, config, root=path))
            continue
        try:
            out.append(examine(path, follow_symlinks=config.follow_symlinks, root=path.parent))
        except DumpVanished:
            log.info("%s vanished before it was read; skipped", printable_name(str(path)))
    return out


def in_order(dumps: Iterable[DumpFile]) -> list[DumpFile]:
    """Dump order (see dumpfiles.order_key); set-aside entries first, by name."""
    return sorted(dumps, key=lambda d: (d.problem is None, order_key(d)))


def read(dump: DumpFile, config: IngestConfig, now: datetime) -> DumpBytes | None:
    """The dump's bytes, or its problem; None when it vanished before it was read."""
    observed = observed_at(dump, config, now)
    if dump.problem is not None:
        return DumpBytes(
            dump.name, b"", observed, path=dump.path, error=dump.problem, size=dump.size
        )
    try:
        data, digest = read_dump(
            dump.path, max_bytes=config.max_dump_bytes, max_line_bytes=config.max_line_bytes
        )
    except DumpVanished:
        log.info("%s vanished before it was read; skipped", dump.name)
        return None
    except InvalidDump as exc:
        return DumpBytes(dump.name, b"", observed, path=dump.path, error=exc.reason, size=dump.size)
    return DumpBytes(dump.name, data, observed, content_hash=digest, path=dump.path)


def read_all(
    dumps: Iterable[DumpFile], config: IngestConfig, now: Callable[[], datetime]
) -> Iterable[DumpBytes]:
    for dump in dumps:
        got = read(dump, config, now())
        if got is not None:
            yield got


def observed_at(dump: DumpFile, config: IngestConfig, now: datetime) -> datetime:
    """What the dump's sightings are dated: its mtime (or the ingest time), never
    the future."""
    if config.observed_time != "mtime" or dump.problem is not None:
        return now
    try:
        mtime = dump.mtime_utc
    except (OverflowError, OSError, ValueError):  # beyond what datetime holds
        mtime = datetime.max.replace(tzinfo=UTC)
    if mtime > now + FUTURE_TOLERANCE:
        log.warning(
            "%s has a modification time in the future (%s); dated at ingest time instead",
            dump.name,
            mtime.isoformat() if mtime.year < 9999 else "beyond year 9999",
            extra={"event": "future_mtime", "dump": dump.name},
        )
        return now
    return min(mtime, now)


# settling --------------------------------------------------------------------
@dataclass
class _Watched:
    size: int
    mtime: float
    since: float  # monotonic time this size and mtime were first seen
    done: bool = False  # ingested, unchanged or set aside at this size and mtime


@dataclass
class Settler:
    """Which of the listed dumps the daemon may take now.

    A burst (``mv`` of 10,000 dumps) must be taken whole and in dump order, or
    the history depends on how the scans happened to slice it. So, by this
    process's clock (an mtime says when the file was written, not when it
    arrived: ``mv`` keeps it):

    * a file is settled once it has kept its size and mtime for ``settle``
      seconds;
    * nothing is taken until no new entry has appeared for ``settle`` seconds
      (the folder is quiet), unless it has been busy for ``max_busy`` seconds;
    * a dump is never taken while one before it in dump order is still
      settling.
    """

    settle: float
    max_busy: float = 60.0
    _seen: dict[str, _Watched] = field(default_factory=dict)
    _last_new: float = float("-inf")
    _busy_since: float | None = None

    def ready(self, listed: Sequence[DumpFile], now: float) -> tuple[list[DumpFile], float | None]:
        """(dumps to take now, in order; seconds until the next may be ready)."""
        names = set()
        for dump in listed:
            key = dump.path.name
            names.add(key)
            seen = self._seen.get(key)
            if seen is None:
                self._last_new = now
            if seen is None or (seen.size, seen.mtime) != (dump.size, dump.mtime):
                self._seen[key] = _Watched(dump.size, dump.mtime, now)
        for gone in set(self._seen) - names:
            del self._seen[gone]
        waiting = in_order(d for d in listed if not self._seen[d.path.name].done)
        if not waiting:
            self._busy_since = None
            return [], None
        quiet_in = self.settle - (now - self._last_new)
        if quiet_in > 0:
            if self._busy_since is None:
                self._busy_since = now
            if now - self._busy_since < self.max_busy:
                return [], max(quiet_in, 0.05)
        self._busy_since = None
        ready: list[DumpFile] = []
        for dump in waiting:
            left = self.settle - (now - self._seen[dump.path.name].since)
            if dump.problem is None and left > 0:
                return ready, max(left, 0.05)  # nothing after it goes first
            ready.append(dump)
        return ready, None

    def done(self, dump: DumpFile) -> None:
        seen = self._seen.get(dump.path.name)
        if seen is not None:
            seen.done = True

    def forget(self, dump: DumpFile) -> None:
        """Look at it afresh next time (it vanished, or must be tried again)."""
        self._seen.pop(dump.path.name, None)

    def pending(self) -> list[tuple[int, float]]:
        """(size, mtime) of each file seen but not yet taken."""
        return [(s.size, s.mtime) for s in self._seen.values() if not s.done]
