"""The per-dump service: parse, fingerprint and decide each item, store it all.

This is the one place where the pure core meets the store. One dump is one
transaction: either every line of it is recorded, or none is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
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
from feedd.dumpfiles import DUMP_NAME, DumpFile
from feedd.errors import DumpVanished, Interrupted, InvalidDump
from feedd.ingest import source
from feedd.ingest.ahead import Prepared, with_fingerprints
from feedd.ingest.source import DumpBytes
from feedd.store.sql import DumpRecord, IngestTx, SqlStore

log = logging.getLogger("feedd.ingest")

# Article ids are UUIDv5 in this namespace, so the same dumps give the same ids
# in any database, on any machine, forever.
ARTICLE_NAMESPACE = uuid.UUID("5f0c3f4e-2f7a-5b7e-9d51-6a0e0d8f3c11")

# A stop asked for in the middle of a dump is noticed within this many lines.
CHECK_EVERY = 512


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class IngestResult:
    """What became of one dump. The per-line decisions are not kept here (a
    1M-line backfill held 260 MB of them); ``Ingester.observer`` sees them."""

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

    @property
    def changed(self) -> bool:
        return self.status == "ingested" and (self.new > 0 or self.update > 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Sees each ingested dump's decisions, in line order, before its commit.
Observer = Callable[[str, Sequence[tuple[int, Decision]]], None]


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
        # `feedd backfill` logs a summary every few seconds instead of a line per dump.
        self.log_each_dump = True
        # Asked between chunks of a dump's lines: true stops it (Interrupted,
        # rolled back) so that SIGTERM is not held up by a 400k-line dump.
        self.should_stop: Callable[[], bool] = lambda: False
        self.observer: Observer | None = None

    # files --------------------------------------------------------------------
    def ingest_paths(self, paths: Iterable[Path], root: Path | None = None) -> list[IngestResult]:
        """Ingest files and folders of files in dump order. Unreadable ones are
        recorded as rejected; files that vanish on the way are skipped."""
        return list(self.iter_paths(paths, root))

    def iter_paths(self, paths: Iterable[Path], root: Path | None = None) -> Iterator[IngestResult]:
        config = self.config.ingest
        if root is None:
            listed = source.list_paths(paths, config)
        else:
            listed = []
            for path in paths:
                try:
                    listed.append(
                        source.examine(path, follow_symlinks=config.follow_symlinks, root=root)
                    )
                except DumpVanished:
                    continue  # gone already: nothing to record
        yield from self.ingest_listed(listed)

    def ingest_listed(self, listed: Iterable[DumpFile]) -> Iterator[IngestResult]:
        """Ingest what feedd.ingest.source listed, in dump order."""
        yield from self.ingest(
            source.read_all(source.in_order(listed), self.config.ingest, self.now)
        )

    def ingest(self, dumps: Iterable[DumpBytes]) -> Iterator[IngestResult]:
        """Ingest dumps in order, yielding each result (a helper process
        fingerprints ahead in long runs: feedd.ingest.ahead)."""
        # One core would only be shared between the two processes.
        if self.config.ingest.prepare_ahead and (os.cpu_count() or 1) > 1:
            pairs = with_fingerprints(dumps, self.limits, self.config.fingerprint)
        else:
            pairs = ((dump, None) for dump in dumps)
        for dump, fingerprints in pairs:
            yield self.ingest_dump(dump, fingerprints)

    def ingest_dump(self, dump: DumpBytes, fingerprints: Prepared | None = None) -> IngestResult:
        if dump.error is not None:
            return self.reject(dump.name, dump.error, dump.size, dump.observed_at)
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

    def ingest_file(self, dump: DumpFile) -> IngestResult | None:
        """One listed file; None when it vanished before it could be read."""
        got = source.read(dump, self.config.ingest, self.now())
        return None if got is None else self.ingest_dump(got)

    def reject(
        self, name: str, reason: str, size: int = 0, observed: datetime | None = None
    ) -> IngestResult:
        # A file we could not read has no content hash; record it under the
        # hash of its reason so that the same failure is not recorded twice.
        digest = "unread:" + hashlib.sha256(reason.encode()).hexdigest()[:57]
        return self._record_rejection(name, digest, size, observed or self.now(), reason)

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
        log.log(
            logging.INFO if self.log_each_dump else logging.DEBUG,
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
        if self.observer is not None:
            self.observer(
                name, [(item.line, d) for item, d in zip(parsed.items, decisions, strict=True)]
            )
        counts = {Kind.NEW: 0, Kind.REPEAT: 0, Kind.UPDATE: 0}
        rows: list[tuple[Any, ...]] = []
        seen_at = tx.timestamp(observed_at)
        for n, (item, key, matched, decision) in enumerate(
            zip(parsed.items, keys, items, decisions, strict=True)
        ):
            if n % CHECK_EVERY == 0:
                self._check_stop()
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
        )

    def _check_stop(self) -> None:
        if self.should_stop():
            raise Interrupted()

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
        self._check_stop()  # between phases: each is bounded by the dump's size
        claims = claim_exact(exact)
        recuts = self._recuts(tx, lines, claims)
        fps: dict[int, Fingerprint] = {}
        for index, (_, raw, key) in enumerate(lines):
            if index % CHECK_EVERY == 0:
                self._check_stop()
            if claims[index] is None and recuts[index] is None:
                fps[index] = self._fingerprint(raw, key, prepared)
        self._check_stop()
        in_dump = dump_counts(fps.values())
        stored_df = tx.segment_df(h for fp in fps.values() for h in fp.segments)
        asked = {
            index: lookup_segments(
                fp, stored_df, in_dump, match.boilerplate_df, match.lookup_segments
            )
            for index, fp in fps.items()
        }
        self._check_stop()
        postings = tx.postings(h for hashes in asked.values() for h in hashes)
        proposed: dict[int, list[tuple[int, float, tuple[tuple[int, int], ...]]]] = {}
        for n, (index, fp) in enumerate(fps.items()):
            if n % CHECK_EVERY == 0:
                self._check_stop()
            proposed[index] = self._propose(tx, fp, asked[index], postings, stored_df, in_dump)
        self._check_stop()
        texts = tx.current_texts(aid for rows in proposed.values() for aid, *_ in rows)
        items: list[Item] = []
        for index, (line, raw, _) in enumerate(lines):
            if index % CHECK_EVERY == 0:
                self._check_stop()
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
        self._check_stop()
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
        self._check_stop()
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
