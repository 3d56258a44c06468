"""The JSON shapes: what `--json` prints and what the HTTP API answers.

One function per shape, used by the CLI and the web alike, so that a program
reading `feedd history --json` can read `/api/articles/<uid>` too. The export
line is a stable contract (README, "Export format"): fields may be added,
never renamed or dropped.

Pure: records in, plain dicts out; no database, clock or configuration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feedd.core.diff import inline_diff
from feedd.core.text import hex64
from feedd.feeds.title import make_title
from feedd.model import Article, DumpInfo, Totals, WorkerInfo

if TYPE_CHECKING:
    # The matcher's types, for `explain` only: importing them loads numpy,
    # which `feedd status` has no use for.
    from feedd.core.decide import Decision, Item, MatchSettings

TITLE_MAX_CHARS = 80  # feed.title_max_chars's default


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@functools.lru_cache(maxsize=4096)
def title(text: str, max_chars: int = TITLE_MAX_CHARS) -> str:
    """The article's title as the feeds give it (feedd.feeds.title.make_title).
    Kept: a long text takes up to 1 ms, and the newest articles are listed
    again and again."""
    return make_title(text, max_chars)


# articles ----------------------------------------------------------------------


def article_summary(a: Article, *, title_max_chars: int = TITLE_MAX_CHARS) -> dict[str, Any]:
    """One row of `feedd articles --json` and of `/api/articles`."""
    return {
        "id": a.uid,
        "title": title(a.text, title_max_chars),
        "first_seen": iso(a.first_seen),
        "last_seen": iso(a.last_seen),
        "updated_at": iso(a.updated_at),
        "revisions": a.revision_count,
        "updated": a.revision_count > 1,
    }


def articles_page(
    arts: Sequence[Article],
    *,
    next_cursor: str | None,
    prev_cursor: str | None = None,
    title_max_chars: int = TITLE_MAX_CHARS,
) -> dict[str, Any]:
    """`/api/articles`: a page of summaries and the cursors around it."""
    return {
        "articles": [article_summary(a, title_max_chars=title_max_chars) for a in arts],
        "next_cursor": next_cursor,
        "prev_cursor": prev_cursor,
    }


def export(a: Article, *, title_max_chars: int = TITLE_MAX_CHARS) -> dict[str, Any]:
    """One line of `feedd export`: the article with every revision and sighting."""
    return {
        "id": a.uid,
        "title": title(a.text, title_max_chars),
        "first_seen": iso(a.first_seen),
        "last_seen": iso(a.last_seen),
        "revisions": [
            {
                "number": r.number,
                "text": r.text,
                "simhash": r.simhash,
                "first_seen": iso(r.first_seen),
            }
            for r in a.revisions
        ],
        "sightings": [
            {
                "dump": s.dump,
                "line": s.line,
                "revision": s.revision,
                "kind": s.kind,
                "seen_at": iso(s.seen_at),
                "shown": s.shown,
            }
            for s in a.sightings
        ],
    }


def history(a: Article, *, title_max_chars: int = TITLE_MAX_CHARS) -> dict[str, Any]:
    """`feedd history --json` and `/api/articles/<uid>`: the export line, each
    revision after the first with its wdiff-style ``diff`` from the one before."""
    data = export(a, title_max_chars=title_max_chars)
    for prev, rev in zip(a.revisions, data["revisions"][1:], strict=False):
        rev["diff"] = inline_diff(prev.text, rev["text"])
    return data


def ambiguous(ref: str, count: int, found: Sequence[Article]) -> dict[str, Any]:
    """An article reference that several uids start with."""
    return {
        "error": f"ambiguous: {count} articles start with {ref}; give more characters",
        "count": count,
        "matches": [{"id": a.uid, "title": title(a.text)} for a in found],
    }


# dumps -------------------------------------------------------------------------


def dump(d: DumpInfo) -> dict[str, Any]:
    """An ingested dump (or any dump record) with its counts."""
    return {
        "name": d.name,
        "version": d.version,
        "status": d.status,
        "observed_at": iso(d.observed_at),
        "ingested_at": iso(d.ingested_at),
        "items": d.items,
        "new": d.new,
        "repeat": d.repeat,
        "update": d.update,
        "duration_ms": d.duration_ms,
        "error": d.error,
        "location": d.location,
    }


def rejected(d: DumpInfo, fixed: bool) -> dict[str, Any]:
    """One record of `feedd rejected --json`: why, where it was set aside."""
    return {
        "name": d.name,
        "reason": d.error,
        "location": d.location,
        "rejected_at": iso(d.ingested_at),
        "fixed": fixed,
    }


def dumps(
    ingested: Sequence[DumpInfo],
    rejections: Sequence[tuple[DumpInfo, bool]],
    ingested_total: int,
    rejected_total: int,
) -> dict[str, Any]:
    """`/api/dumps`: the newest ingested dumps and the rejections, and how
    many of each there are in all."""
    return {
        "ingested_total": ingested_total,
        "rejected_total": rejected_total,
        "ingested": [dump(d) for d in ingested],
        "rejected": [rejected(d, fixed) for d, fixed in rejections],
    }


# status and health ------------------------------------------------------------


def status(
    *,
    live: Sequence[WorkerInfo],
    workers: Sequence[WorkerInfo],
    dead: Sequence[WorkerInfo],
    this_host: str,
    totals: Totals,
    pending: int,
    lag_seconds: float,
    last_ingest: DumpInfo | None,
    rejected_open: int,
    rejections: Sequence[DumpInfo],
    feeds: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """`feedd status --json` and `/api/status`.

    ``live``: the workers with a fresh heartbeat whose process is alive;
    ``dead``: fresh heartbeats of processes gone from this host.
    """
    latest = live[0] if live else (workers[0] if workers else None)
    return {
        "daemon": {
            "alive": bool(live),
            "stale": bool(workers) and not live and workers[0].status == "running",
            "stale_reason": (
                f"pid {dead[0].pid} is no longer running on this host"
                if dead and not live
                else None
            ),
            "workers": len(live),
            "pid": latest.pid if latest else None,
            "host": latest.host if latest else None,
            "started_at": iso(latest.started_at) if latest else None,
            "heartbeat_at": iso(latest.heartbeat_at) if latest else None,
            "last_scan_at": iso(latest.last_scan_at) if latest else None,
            "next_scan_at": iso(latest.next_scan_at) if latest else None,
            "this_host": this_host,
        },
        "totals": totals.as_dict(),
        "pending": pending,
        "lag_seconds": lag_seconds,
        "last_ingest": (
            {
                "name": last_ingest.name,
                "ingested_at": iso(last_ingest.ingested_at),
                "items": last_ingest.items,
                "new": last_ingest.new,
                "repeat": last_ingest.repeat,
                "update": last_ingest.update,
            }
            if last_ingest
            else None
        ),
        "quarantined": totals.rejected,
        "rejected_open": rejected_open,
        "rejected": [
            {"name": d.name, "error": d.error, "location": d.location} for d in rejections
        ],
        "feeds": feeds,
    }


def health(
    *,
    database: str,
    last_ingest: datetime | None,
    pending_dumps: int | None,
    articles: int | None,
) -> dict[str, Any]:
    """`/healthz`: ``database`` is "ok" or why it is not."""
    return {
        "ok": database == "ok",
        "database": database,
        "last_ingest": iso(last_ingest),
        "pending_dumps": pending_dumps,
        "articles": articles,
    }


# activity ----------------------------------------------------------------------


def activity(buckets: Sequence[tuple[datetime, int, int]], unit: str) -> dict[str, Any]:
    """`/api/activity`: new articles and updates per UTC ``unit`` ("day", "hour")."""
    fmt = "%Y-%m-%dT%H" if unit == "hour" else "%Y-%m-%d"
    return {
        "unit": unit,
        "buckets": [
            {"bucket": start.strftime(fmt), "new": new, "updates": updates}
            for start, new, updates in buckets
        ],
    }


# explain -----------------------------------------------------------------------


def explain(
    item: Item,
    decision: Decision,
    *,
    match: MatchSettings,
    segment_chars: int,
    uid_of: Callable[[int | None], str | None],
) -> dict[str, Any]:
    """One item of `feedd explain --json`: the decision, the thresholds, and
    every candidate with its scores and the rarest segments it shares."""
    fp = item.fingerprint
    return {
        "line": item.line or None,
        "simhash": hex64(fp.simhash) if fp else None,
        "normalized_chars": len(item.text.normalized) if item.text else None,
        "segments": len(fp.segments) if fp else 0,
        "decision": decision.kind.value,
        "action": decision.action.value,
        "article": uid_of(decision.article_id),
        "reason": decision.reason,
        "recut": decision.recut,
        "thresholds": {
            "simhash_k": match.simhash_k,
            "verify_threshold": match.verify_threshold,
            "shingle_size": match.shingle_size,
            "boilerplate_df": match.boilerplate_df,
            "min_evidence": match.min_evidence,
        },
        "candidates": [
            {
                "article": uid_of(s.article_id),
                "revision": s.revision_number,
                "distance": s.distance,
                "shared_segments": s.shared_segments,
                "evidence": s.evidence,
                "containment": s.containment,
                "weighted": s.weighted,
                "recut": s.recut,
                "veto": s.veto,
                "inserted": s.inserted,
                "screened": s.screened,
                "accepted": s.accepted,
                "excluded": s.excluded,
                "shared": [
                    {"text": text, "articles": df, "weight": round(w, 4)}
                    for text, df, w in shared_rarity(item, s.article_id, segment_chars)
                ],
            }
            for s in decision.scores
        ],
    }


def shared_rarity(item: Item, article_id: int, segment_chars: int) -> list[tuple[str, int, float]]:
    """The rare segments an item shares with a candidate, rarest first: their
    text, how many other articles and lines hold them, and their weight."""
    from feedd.core.rarity import weight  # loads numpy: only `explain` needs it

    cand = next((c for c in item.candidates if c.article_id == article_id), None)
    if cand is None or item.text is None:
        return []
    where = dict(zip(item.text.hashes, item.text.positions, strict=True))
    out = []
    for h, others in cand.rarity:
        pos = where.get(h, 0)
        out.append((item.text.compact[pos : pos + segment_chars], others, weight(others)))
    return sorted(out, key=lambda t: (-t[2], t[0]))
