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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedd.config import Config
from feedd.core.decide import (
    Action,
    Candidate,
    Decision,
    ExactMatch,
    Item,
    Kind,
    claim_exact,
    claim_recuts,
    decide_dump,
)
from feedd.core.fingerprint import (
    Fingerprint,
    FingerprintSettings,
    TextKey,
    fingerprint,
    head_key,
)
from feedd.core.parse import ParseLimits
from feedd.core.prepare import PreparedDump, prepare
from feedd.core.rarity import (
    Background,
    distinct_codes,
    dump_counts,
    lookup_segments,
    others_count,
    weight,
)
from feedd.core.text import compact, hex64
from feedd.core.verify import Opening, Text
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
        items, decisions = self.decide(
            tx,
            [(item.line, item.text, key) for item, key in zip(parsed.items, keys, strict=True)],
            prepared.fingerprints,
        )
        counts = {Kind.NEW: 0, Kind.REPEAT: 0, Kind.UPDATE: 0}
        rows: list[tuple[Any, ...]] = []
        seen_at = tx.timestamp(observed_at)
        for item, key, matched, decision in zip(parsed.items, keys, items, decisions, strict=True):
            article_id, revision_id = self._apply(
                tx, decision, matched, item.text, digest, dump_id, observed_at
            )
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
                    len(key.normalized),
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

    def _apply(
        self,
        tx: IngestTx,
        decision: Decision,
        item: Item,
        raw: str,
        digest: str,
        dump_id: int,
        observed_at: datetime,
    ) -> tuple[int, int]:
        """Carry out one decision; returns (article id, revision id) of the sighting."""
        fp = item.fingerprint
        if fp is None and decision.action is Action.EXTEND:
            fp = fingerprint(raw, self.config.fingerprint)
        if decision.action is Action.CREATE:
            assert fp is not None
            return tx.create_article(
                article_uid(fp, digest, item.line), fp, raw, observed_at, dump_id, item.line
            )
        article_id = decision.article_id
        assert article_id is not None
        if decision.action is Action.SIGHT:
            assert decision.revision_id is not None
            return article_id, decision.revision_id
        if decision.action is Action.RESTORE:
            assert decision.revision_id is not None
            restored = tx.exact_text(decision.revision_id) or raw
            current = tx.current_texts([article_id])[article_id][2]
            number = next(
                m.revision_number for m in item.exact if m.revision_id == decision.revision_id
            )
            back = self._text(restored)
            tx.restore_revision(
                article_id,
                number,
                observed_at,
                self._text(current).hashes,
                back.hashes,
                head_key(back.compact),
            )
            return article_id, decision.revision_id
        chosen = item.recut_of[0] if item.recut_of else None
        for cand in item.candidates:
            if cand.article_id == article_id:
                chosen = cand
        assert chosen is not None
        previous = chosen.text.hashes
        assert fp is not None
        if decision.action is Action.EXTEND:
            assert decision.revision_id is not None
            tx.extend_revision(article_id, decision.revision_id, fp, raw, previous)
            return article_id, decision.revision_id
        revision_id, _ = tx.add_revision(
            article_id, fp, raw, observed_at, dump_id, item.line, previous
        )
        return article_id, revision_id

    def _text(self, raw: str, normalized: str | None = None) -> Text:
        return Text.of(raw, self.config.fingerprint, self.config.match.shingle_size, normalized)

    def decide(
        self,
        tx: IngestTx,
        lines: Sequence[tuple[int, str, TextKey]],
        prepared: Mapping[int, Fingerprint] | None = None,
    ) -> tuple[list[Item], list[Decision]]:
        """Decide the item lines of one dump, (line, raw text, key) each, as a whole.

        Exact texts need no fingerprint; only the lines they do not claim are
        fingerprinted (unless ``prepared`` has it, by norm_hash) and looked up.
        """
        match = self.config.match
        tx.preload_exact([key.norm_hash for _, _, key in lines])
        exact = [tx.exact(key, raw) for _, raw, key in lines]
        claims = claim_exact(exact)
        recuts = self._recuts(tx, lines, claims)
        fps: dict[int, Fingerprint] = {}
        for index, (_, raw, key) in enumerate(lines):
            if claims[index] is None and recuts[index] is None:
                fps[index] = self._fingerprint(raw, key, prepared)
        in_dump = dump_counts(fps.values())
        stored_df = tx.segment_df(h for fp in fps.values() for h in fp.segments)
        asked = {
            index: lookup_segments(
                fp, stored_df, in_dump, match.boilerplate_df, match.lookup_segments
            )
            for index, fp in fps.items()
        }
        postings = tx.postings(h for hashes in asked.values() for h in hashes)
        proposed: dict[int, list[tuple[int, float, tuple[tuple[int, int], ...]]]] = {}
        for index, fp in fps.items():
            proposed[index] = self._propose(tx, fp, asked[index], postings, stored_df, in_dump)
        texts = tx.current_texts(aid for rows in proposed.values() for aid, *_ in rows)
        items: list[Item] = []
        for index, (line, raw, _) in enumerate(lines):
            if index not in fps:
                items.append(Item(line, exact=exact[index], recut_of=recuts[index]))
                continue
            fp = fps[index]
            candidates = []
            for aid, evidence, rarity in proposed[index]:
                rid, number, stored, sh = texts[aid]
                candidates.append(
                    Candidate(
                        aid, rid, number, self._text(stored), sh, evidence, len(rarity), rarity
                    )
                )
            items.append(
                Item(
                    line,
                    Text.of_item(raw, fp, match.shingle_size),
                    fp,
                    exact[index],
                    tuple(candidates),
                )
            )
        background = None
        if match.shingle_idf and any(item.candidates for item in items):
            size = match.shingle_size
            sample = [distinct_codes(compact(key.normalized), size) for _, _, key in lines]
            seen: set[int] = set()
            for item in items:
                for cand in item.candidates:
                    if cand.article_id not in seen:
                        seen.add(cand.article_id)
                        sample.append(distinct_codes(cand.text.compact, size))
            background = Background.of(sample)
        return items, decide_dump(items, stored_df, in_dump, match, background)

    def _fingerprint(
        self, raw: str, key: TextKey, prepared: Mapping[int, Fingerprint] | None = None
    ) -> Fingerprint:
        fp = (prepared or {}).get(key.norm_hash)
        return fp or fingerprint(raw, self.config.fingerprint, key)

    def _recuts(
        self,
        tx: IngestTx,
        lines: Sequence[tuple[int, str, TextKey]],
        claims: Sequence[ExactMatch | None],
    ) -> list[tuple[Candidate, str] | None]:
        """Lines that show an article's current text at another cut, found by
        the hash of their opening: they need no fingerprint."""
        openings: dict[int, tuple[Opening, int]] = {}
        for index, (_, raw, key) in enumerate(lines):
            if claims[index] is None:
                shown = Opening.of(raw, key.normalized)
                head = head_key(shown.compact)
                if head is not None:
                    openings[index] = (shown, head)
        if not openings:
            return [None] * len(lines)
        texts = tx.current_texts(tx.by_head(head for _, head in openings.values()))
        by_head: dict[int, list[Candidate]] = {}
        for aid, (rid, number, stored, sh) in texts.items():
            text = self._text(stored)
            head = head_key(text.compact)
            if head is not None:
                by_head.setdefault(head, []).append(Candidate(aid, rid, number, text, sh))
        claimed = {c.article_id for c in claims if c is not None}
        return claim_recuts(
            [
                (openings[i][0], by_head.get(openings[i][1], [])) if i in openings else None
                for i in range(len(lines))
            ],
            claimed,
        )

    def _propose(
        self,
        tx: IngestTx,
        fp: Fingerprint,
        asked: Sequence[int],
        postings: Mapping[int, list[int]],
        stored_df: Mapping[int, int],
        in_dump: Mapping[int, int],
    ) -> list[tuple[int, float, tuple[tuple[int, int], ...]]]:
        """The best articles for one text: (article id, evidence, the shared
        segments with their rarity), best first. Evidence is the rarity of the segments an
        article shares with the text; a near simhash proposes an article too."""
        match = self.config.match
        evidence: dict[int, float] = {}
        shared: dict[int, list[tuple[int, int]]] = {}
        for h in asked:
            others = others_count(h, stored_df, in_dump, True, True)
            for aid in postings.get(h, ()):
                evidence[aid] = evidence.get(aid, 0.0) + weight(others)
                shared.setdefault(aid, []).append((h, others))
        need = max(1, min(match.min_shared_segments, len(fp.segments)))
        near = tx.near(fp, match.simhash_k)
        found = {aid for aid, hs in shared.items() if len(hs) >= need} | set(near)
        ranked = sorted(found, key=lambda aid: (-evidence.get(aid, 0.0), near.get(aid, 64), -aid))[
            : match.max_candidates
        ]
        return [(aid, evidence.get(aid, 0.0), tuple(shared.get(aid, ()))) for aid in ranked]

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
