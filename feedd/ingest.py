"""Ingest dumps: parse, fingerprint and decide each item, store it all.

This is the one place where the pure core meets the store. One dump is one
transaction: either every line of it is recorded, or none is.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedd.config import Config
from feedd.core.decide import Decision, ExactMatch, Kind, decide
from feedd.core.fingerprint import Fingerprint, TextKey, fingerprint, text_key
from feedd.core.parse import ParsedDump, ParseLimits, parse_dump
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
        for dump in sorted(stats, key=order_key):
            try:
                yield self.ingest_file(dump)
            except DumpVanished:
                # Gone between listing and reading: nothing to record or set aside.
                log.info("%s vanished before it was read; skipped", dump.name)

    def ingest_file(self, dump: DumpFile) -> IngestResult:
        observed = dump.mtime_utc if self.config.ingest.observed_time == "mtime" else self.now()
        try:
            data, digest = read_dump(
                dump.path,
                max_bytes=self.config.ingest.max_dump_bytes,
                max_line_bytes=self.config.ingest.max_line_bytes,
            )
        except DumpVanished:
            raise
        except InvalidDump as exc:
            return self.reject(dump.path, exc.reason, dump.size, observed)
        result = self.ingest_bytes(dump.name, data, observed, content_hash=digest)
        result.path = str(dump.path)
        return result

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
    ) -> IngestResult:
        started = time.perf_counter()
        digest = content_hash or hashlib.sha256(data).hexdigest()
        try:
            parsed = parse_dump(data, self.limits)
        except InvalidDump as exc:
            return self._record_rejection(name, digest, len(data), observed_at, exc.reason)
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
            result = self._ingest_parsed(tx, name, digest, len(data), observed_at, parsed)
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
        parsed: ParsedDump,
    ) -> IngestResult:
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
        keys = [text_key(item.text) for item in parsed.items]
        tx.preload_exact([key.norm_hash for key in keys])
        counts = {Kind.NEW: 0, Kind.REPEAT: 0, Kind.UPDATE: 0}
        rows: list[tuple[Any, ...]] = []
        decisions: list[Decision] = []
        seen_at = tx.timestamp(observed_at)
        for item, key in zip(parsed.items, keys, strict=True):
            decision, fp, exact = self.classify(tx, item.text, key)
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
        self, tx: IngestTx, text: str, key: TextKey | None = None
    ) -> tuple[Decision, Fingerprint | None, ExactMatch | None]:
        """Exact match first; only a text never seen before pays for a simhash."""
        key = key or text_key(text)
        exact = tx.exact(key, text)
        if exact is not None:
            return decide(None, exact, [], self.config.match), None, exact
        fp = fingerprint(text, self.config.fingerprint, key)
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
