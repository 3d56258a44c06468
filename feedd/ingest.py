"""Ingest dumps: parse, fingerprint and decide each item, store it all.

This is the one place where the pure core meets the store. One dump is one
transaction: either every line of it is recorded, or none is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import multiprocessing
import os
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedd.config import Config
from feedd.core.decide import Decision, ExactMatch, Kind, decide
from feedd.core.fingerprint import Fingerprint, FingerprintSettings, TextKey, fingerprint, text_key
from feedd.core.parse import ParseLimits
from feedd.core.prepare import PreparedDump, prepare
from feedd.core.text import hex64
from feedd.dumpfiles import DUMP_NAME, DumpFile, order_key, read_dump, stat_dump
from feedd.errors import DumpVanished, InvalidDump
from feedd.store.sql import DumpRecord, IngestTx, SqlStore

log = logging.getLogger("feedd.ingest")

# Article ids are UUIDv5 in this namespace, so the same dumps give the same ids
# in any database, on any machine, forever.
ARTICLE_NAMESPACE = uuid.UUID("5f0c3f4e-2f7a-5b7e-9d51-6a0e0d8f3c11")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class IngestResult:
    name: str
    status: str  # ingested | unchanged | rejected
    items: int = 0
    new: int = 0
    repeat: int = 0
    update: int = 0
    noise: int = 0
    version: int = 0
    duration_ms: int = 0
    reason: str | None = None
    encoding: str | None = None
    path: str | None = None
    dump_id: int | None = None
    content_hash: str | None = None
    decisions: list[Decision] = field(default_factory=list, repr=False)

    @property
    def changed(self) -> bool:
        return self.status == "ingested" and (self.new > 0 or self.update > 0)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("decisions")
        return d


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


# A backfill hands parsing and fingerprinting of the next dumps to a second
# process (ingest.prepare_ahead) once this many dumps have gone by: small
# backfills do not pay for starting it.
PREPARE_AFTER = 64
# Dumps go to the helper in groups: every task wakes the executor's thread in
# this process, whose GIL hand-offs slowed each database call ~3x when tasks
# were single dumps.
GROUP = 16  # dumps per task
GROUP_BYTES = 8 << 20  # and at most this many bytes per task
IN_FLIGHT = 3  # tasks prepared ahead of the group being written

_SEEN: set[int] = set()  # in the preparing process: keys of texts it fingerprinted


def _prepare_ahead(
    group: list[bytes], limits: ParseLimits, settings: FingerprintSettings
) -> list[Mapping[int, Fingerprint]]:
    # Only the fingerprints go back: parsing again in the ingester costs less
    # than pickling the parsed dump across.
    if len(_SEEN) > 1_000_000:
        _SEEN.clear()
    out: list[Mapping[int, Fingerprint]] = []
    for data in group:
        try:
            out.append(prepare(data, limits, settings, _SEEN).fingerprints)
        except InvalidDump:
            out.append({})  # the ingester parses it too, and records why it failed
    return out


def _groups(items: Iterable[DumpBytes]) -> Iterator[list[DumpBytes]]:
    group: list[DumpBytes] = []
    size = 0
    for item in items:
        group.append(item)
        size += len(item.data)
        if len(group) >= GROUP or size >= GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def _helper_signals() -> None:
    # Ctrl-C reaches the whole process group: the ingest process handles it
    # and shuts the helper down, which must not die first with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Preparer:
    """One helper process that prepares dumps while the ingester writes."""

    def __init__(self, limits: ParseLimits, settings: FingerprintSettings) -> None:
        self.limits = limits
        self.settings = settings
        # fork: the child starts with feedd already imported (spawn would
        # import numpy and friends again, ~0.5 s).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        self.pool = ProcessPoolExecutor(1, mp_context=context, initializer=_helper_signals)
        self.broken = False

    def submit(self, group: list[bytes]) -> Future[list[Mapping[int, Fingerprint]]] | None:
        if self.broken:
            return None
        try:
            return self.pool.submit(_prepare_ahead, group, self.limits, self.settings)
        except BrokenProcessPool:
            self._lost()
            return None

    def results(
        self, future: Future[list[Mapping[int, Fingerprint]]] | None, count: int
    ) -> list[Mapping[int, Fingerprint] | None]:
        """The group's fingerprints; None each when the helper is gone (the
        ingester then fingerprints them itself: slower, never different)."""
        if future is not None:
            try:
                return list(future.result())
            except BrokenProcessPool:
                self._lost()
        return [None] * count

    def _lost(self) -> None:
        if not self.broken:
            self.broken = True
            log.warning("the helper process that fingerprints ahead died; continuing without it")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def article_uid(fp: Fingerprint, content_hash: str, line: int) -> str:
    return str(uuid.uuid5(ARTICLE_NAMESPACE, f"{hex64(fp.simhash)}|{content_hash}|{line}"))


class Ingester:
    def __init__(
        self, store: SqlStore, config: Config, now: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.config = config
        self.now = now
        self.limits = ParseLimits(max_category_chars=config.ingest.max_category_chars)

    # files --------------------------------------------------------------------
    def ingest_paths(self, paths: Iterable[Path], root: Path | None = None) -> list[IngestResult]:
        """Ingest files in dump order. Unreadable ones are recorded as rejected."""
        return list(self.iter_paths(paths, root))

    def iter_paths(self, paths: Iterable[Path], root: Path | None = None) -> Iterator[IngestResult]:
        stats: list[DumpFile] = []
        for path in paths:
            try:
                stats.append(
                    stat_dump(path, follow_symlinks=self.config.ingest.follow_symlinks, root=root)
                )
            except InvalidDump as exc:
                yield self.reject(path, exc.reason)
        yield from self.ingest_many(self._read_all(sorted(stats, key=order_key)))

    def _read_all(self, dumps: Iterable[DumpFile]) -> Iterator[DumpBytes]:
        for dump in dumps:
            observed = self._observed(dump)
            try:
                data, digest = self._read(dump)
            except DumpVanished:
                # Gone between listing and reading: nothing to record or set aside.
                log.info("%s vanished before it was read; skipped", dump.name)
                continue
            except InvalidDump as exc:
                yield DumpBytes(
                    dump.name, b"", observed, path=dump.path, error=exc.reason, size=dump.size
                )
                continue
            yield DumpBytes(dump.name, data, observed, content_hash=digest, path=dump.path)

    def ingest_many(self, dumps: Iterable[DumpBytes]) -> Iterator[IngestResult]:
        """Ingest dumps in order, yielding each result.

        Past the first PREPARE_AFTER dumps (with ingest.prepare_ahead), a helper
        process fingerprints the next groups of dumps while this one runs the
        database work: on 2 cores that takes most of a new text's cost off the
        writing path (docs/performance.md).
        """
        items = iter(dumps)
        # One core would only be shared between the two processes.
        ahead = self.config.ingest.prepare_ahead and (os.cpu_count() or 1) > 1
        for dump in itertools.islice(items, PREPARE_AFTER if ahead else None):
            yield self._ingest_one(dump, None)
        first = next(items, None)
        if first is None:
            return
        preparer = _Preparer(self.limits, self.config.fingerprint)
        try:
            pending: deque[tuple[list[DumpBytes], Future[list[Mapping[int, Fingerprint]]] | None]]
            pending = deque()
            for group in _groups(itertools.chain([first], items)):
                readable = [dump.data for dump in group if dump.error is None]
                pending.append((group, preparer.submit(readable)))
                while len(pending) > IN_FLIGHT:
                    yield from self._ingest_group(preparer, *pending.popleft())
            while pending:
                yield from self._ingest_group(preparer, *pending.popleft())
        finally:
            preparer.close()

    def _ingest_group(
        self,
        preparer: _Preparer,
        group: list[DumpBytes],
        future: Future[list[Mapping[int, Fingerprint]]] | None,
    ) -> Iterator[IngestResult]:
        readable = [dump for dump in group if dump.error is None]
        prepared = dict(
            zip(map(id, readable), preparer.results(future, len(readable)), strict=True)
        )
        for dump in group:
            yield self._ingest_one(dump, prepared.get(id(dump)))

    def _ingest_one(
        self, dump: DumpBytes, fingerprints: Mapping[int, Fingerprint] | None
    ) -> IngestResult:
        if dump.error is not None:
            return self.reject(
                dump.path or Path(dump.name), dump.error, dump.size, dump.observed_at
            )
        result = self.ingest_bytes(
            dump.name,
            dump.data,
            dump.observed_at,
            content_hash=dump.content_hash,
            fingerprints=fingerprints,
        )
        if dump.path is not None:
            result.path = str(dump.path)
        return result

    def _observed(self, dump: DumpFile) -> datetime:
        return dump.mtime_utc if self.config.ingest.observed_time == "mtime" else self.now()

    def _read(self, dump: DumpFile) -> tuple[bytes, str]:
        return read_dump(
            dump.path,
            max_bytes=self.config.ingest.max_dump_bytes,
            max_line_bytes=self.config.ingest.max_line_bytes,
        )

    def ingest_file(self, dump: DumpFile) -> IngestResult:
        """One file; raises DumpVanished when it is gone before it could be read."""
        observed = self._observed(dump)
        try:
            data, digest = self._read(dump)
        except DumpVanished:
            raise
        except InvalidDump as exc:
            return self.reject(dump.path, exc.reason, dump.size, observed)
        return self._ingest_one(
            DumpBytes(dump.name, data, observed, content_hash=digest, path=dump.path), None
        )

    def reject(
        self, path: Path, reason: str, size: int = 0, observed: datetime | None = None
    ) -> IngestResult:
        # A file we could not read has no content hash; record it under the
        # hash of its reason so that the same failure is not recorded twice.
        digest = "unread:" + hashlib.sha256(reason.encode()).hexdigest()[:57]
        return self._record_rejection(path.name, digest, size, observed or self.now(), reason)

    # bytes --------------------------------------------------------------------
    def ingest_bytes(
        self,
        name: str,
        data: bytes,
        observed_at: datetime,
        *,
        content_hash: str | None = None,
        fingerprints: Mapping[int, Fingerprint] | None = None,
    ) -> IngestResult:
        """Ingest one dump's bytes in one transaction. ``fingerprints`` are any
        already computed for its texts (by norm_hash), e.g. by the helper process."""
        started = time.perf_counter()
        digest = content_hash or hashlib.sha256(data).hexdigest()
        try:
            prepared = prepare(data, self.limits, self.config.fingerprint)
        except InvalidDump as exc:
            return self._record_rejection(name, digest, len(data), observed_at, exc.reason)
        if fingerprints:
            prepared = dataclasses.replace(prepared, fingerprints=fingerprints)
        with self.store.ingest_transaction() as tx:
            known = tx.find_dump(name, digest)
            if known is not None:
                return IngestResult(
                    name,
                    known.status if known.status == "rejected" else "unchanged",
                    version=known.version,
                    reason=known.error,
                    content_hash=digest,
                )
            result = self._ingest_parsed(tx, name, digest, len(data), observed_at, prepared)
            result.content_hash = digest
            result.duration_ms = int((time.perf_counter() - started) * 1000)
            assert result.dump_id is not None
            tx.finish_dump(
                result.dump_id,
                item_count=result.items,
                new_count=result.new,
                repeat_count=result.repeat,
                update_count=result.update,
                duration_ms=result.duration_ms,
            )
        log.info(
            "ingested %s: %d item lines, %d new, %d repeat, %d update, %d ms",
            name,
            result.items,
            result.new,
            result.repeat,
            result.update,
            result.duration_ms,
            extra={
                "event": "ingested",
                "dump": name,
                "items": result.items,
                "new": result.new,
                "repeat": result.repeat,
                "update": result.update,
                "ms": result.duration_ms,
            },
        )
        return result

    def _ingest_parsed(
        self,
        tx: IngestTx,
        name: str,
        digest: str,
        size: int,
        observed_at: datetime,
        prepared: PreparedDump,
    ) -> IngestResult:
        parsed = prepared.parsed
        match = DUMP_NAME.match(name)
        dump_id, version = tx.add_dump(
            DumpRecord(
                name=name,
                content_hash=digest,
                size=size,
                seq=int(match.group(1)) if match else None,
                observed_at=observed_at,
                ingested_at=self.now(),
                status="ingested",
                encoding=parsed.encoding,
                noise_count=len(parsed.noise),
            )
        )
        keys = prepared.keys
        tx.preload_exact([key.norm_hash for key in keys])
        counts = {Kind.NEW: 0, Kind.REPEAT: 0, Kind.UPDATE: 0}
        rows: list[tuple[Any, ...]] = []
        decisions: list[Decision] = []
        seen_at = tx.timestamp(observed_at)
        for item, key in zip(parsed.items, keys, strict=True):
            decision, fp, exact = self.classify(
                tx, item.text, key, prepared.fingerprints.get(key.norm_hash)
            )
            decisions.append(decision)
            if decision.kind is Kind.NEW:
                assert fp is not None
                article_id, revision_id = tx.create_article(
                    article_uid(fp, digest, item.line),
                    fp,
                    item.text,
                    observed_at,
                    dump_id,
                    item.line,
                )
            else:
                assert decision.article_id is not None
                article_id = decision.article_id
                if decision.revision_id is None:
                    assert fp is not None
                    revision_id, _ = tx.add_revision(
                        article_id, fp, item.text, observed_at, dump_id, item.line
                    )
                else:
                    revision_id = decision.revision_id
                    if decision.kind is Kind.UPDATE:
                        assert exact is not None
                        tx.restore_revision(article_id, exact.revision_number, observed_at)
            counts[decision.kind] += 1
            rows.append(
                (
                    dump_id,
                    item.line,
                    article_id,
                    revision_id,
                    decision.kind.value,
                    seen_at,
                    item.category[:64] if item.category else None,
                    item.date,
                )
            )
        tx.add_sightings(rows)
        return IngestResult(
            name,
            "ingested",
            items=len(parsed.items),
            new=counts[Kind.NEW],
            repeat=counts[Kind.REPEAT],
            update=counts[Kind.UPDATE],
            noise=len(parsed.noise),
            version=version,
            encoding=parsed.encoding,
            dump_id=dump_id,
            decisions=decisions,
        )

    def classify(
        self,
        tx: IngestTx,
        text: str,
        key: TextKey | None = None,
        fp: Fingerprint | None = None,
    ) -> tuple[Decision, Fingerprint | None, ExactMatch | None]:
        """Exact match first; only a text never seen before pays for a simhash
        (unless a preparing process already computed it: ``fp``)."""
        key = key or text_key(text)
        exact = tx.exact(key, text)
        if exact is not None:
            return decide(None, exact, [], self.config.match), None, exact
        fp = fp or fingerprint(text, self.config.fingerprint, key)
        match = self.config.match
        candidates = tx.candidates(
            fp, match.simhash_k, limit=match.max_candidates, min_shared=match.min_shared_segments
        )
        return decide(fp, None, candidates, match), fp, None

    def _record_rejection(
        self, name: str, digest: str, size: int, observed_at: datetime, reason: str
    ) -> IngestResult:
        with self.store.ingest_transaction() as tx:
            known = tx.find_dump(name, digest)
            if known is not None:
                return IngestResult(
                    name, "rejected", version=known.version, reason=reason, content_hash=digest
                )
            _, version = tx.add_dump(
                DumpRecord(
                    name=name,
                    content_hash=digest,
                    size=size,
                    seq=None,
                    observed_at=observed_at,
                    ingested_at=self.now(),
                    status="rejected",
                    error=reason,
                )
            )
        log.warning(
            "rejected %s: %s",
            name,
            reason,
            extra={"event": "rejected", "dump": name, "reason": reason},
        )
        return IngestResult(name, "rejected", version=version, reason=reason, content_hash=digest)
