"""The new / repeat / update decision, over plain data.

The ingest service looks up, in the store:

1. a revision whose normalised text is exactly the item's (``exact``), and
2. near-duplicate *candidates*: revisions whose simhash is within ``k`` bits,
   or that share a leading segment hash with the item.

``decide`` then verifies each candidate on the text itself and picks one.
Candidates only propose; the text disposes: two articles that share an opening
heading or a boilerplate sentence share a segment, but their shingles do not
overlap enough to pass verification, so they never merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from feedd.core.fingerprint import Fingerprint, hamming, shingle_codes


class Kind(StrEnum):
    NEW = "new"
    REPEAT = "repeat"
    UPDATE = "update"


@dataclass(frozen=True)
class MatchSettings:
    """Thresholds of the matcher; defaults chosen by bench/detection (docs/detection.md)."""

    simhash_k: int = 3  # candidate radius in bits (the band index supports <= 3)
    verify_threshold: float = 0.8  # aligned containment needed to merge
    shingle_size: int = 3
    min_shingles: int = 12  # shorter texts merge only on exact normalised text
    prefix_slack: float = 0.15  # how far past the shorter text's length to look
    max_candidates: int = 16  # verify at most this many, best first
    min_shared_segments: int = 2  # a candidate by segments alone must share this many


@dataclass(frozen=True)
class Candidate:
    """A stored revision proposed as the item's article."""

    article_id: int
    revision_id: int
    revision_number: int
    is_current: bool
    compact: str
    simhash: int
    shared_segments: int = 0


@dataclass(frozen=True)
class ExactMatch:
    article_id: int
    revision_id: int
    revision_number: int
    is_current: bool


@dataclass(frozen=True)
class Score:
    """Why a candidate was or was not accepted (shown by ``feedd explain``)."""

    article_id: int
    revision_number: int
    distance: int
    shared_segments: int
    containment: float
    jaccard: float
    accepted: bool


@dataclass(frozen=True)
class Decision:
    kind: Kind
    article_id: int | None  # None: create a new article
    revision_id: int | None  # an existing revision to sight; None: create one
    reason: str
    scores: tuple[Score, ...] = field(default=())


def similarity(a: str, b: str, settings: MatchSettings) -> tuple[float, float]:
    """(aligned containment, jaccard) of two compact texts.

    A listing cuts texts at different lengths, so compare the shorter text with
    the same-length prefix of the longer one (plus some slack for inserted
    clauses) and ask how much of the shorter is contained there. Jaccard over
    the whole texts is reported as a second opinion.
    """
    size = settings.shingle_size
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    short_codes = shingle_codes(short, size)
    if not len(short_codes):
        return 0.0, 0.0
    # Python sets of the integer codes: for a few hundred shingles, building
    # them and intersecting in C beats numpy's sort-based set operations.
    s_short = set(short_codes.tolist())
    long_codes = shingle_codes(long_, size)
    # The window's shingles are the long text's first (window - size + 1).
    window = int(len(short) * (1 + settings.prefix_slack)) + 1
    s_window = set(long_codes[:window].tolist())
    s_long = set(long_codes.tolist())
    common = len(s_short & s_long)
    union = len(s_short) + len(s_long) - common
    return len(s_short & s_window) / len(s_short), (common / union if union else 0.0)


def rank(candidates: Sequence[Candidate], item: Fingerprint) -> list[Candidate]:
    """Best first: most shared segments, then nearest simhash, then newest article."""
    return sorted(
        candidates,
        key=lambda c: (-c.shared_segments, hamming(c.simhash, item.simhash), -c.article_id),
    )


def decide(
    item: Fingerprint | None,
    exact: ExactMatch | None,
    candidates: Sequence[Candidate],
    settings: MatchSettings,
) -> Decision:
    """Classify one item. ``item`` may be None only when ``exact`` is given:
    an exact repeat needs no fingerprint, which keeps repeats cheap."""
    if exact is not None:
        if exact.is_current:
            return Decision(
                Kind.REPEAT, exact.article_id, exact.revision_id, "same normalised text"
            )
        return Decision(
            Kind.UPDATE,
            exact.article_id,
            exact.revision_id,
            f"text changed back to revision {exact.revision_number}",
        )
    if item is None:
        raise ValueError("decide() needs the item's fingerprint when there is no exact match")
    scores: list[Score] = []
    best: tuple[tuple[float, float, int], Candidate] | None = None
    for cand in rank(candidates, item)[: settings.max_candidates]:
        distance = hamming(cand.simhash, item.simhash)
        containment, jaccard = similarity(item.compact, cand.compact, settings)
        long_enough = min(len(item.compact), len(cand.compact)) >= settings.min_shingles
        accepted = long_enough and containment >= settings.verify_threshold
        scores.append(
            Score(
                cand.article_id,
                cand.revision_number,
                distance,
                cand.shared_segments,
                round(containment, 4),
                round(jaccard, 4),
                accepted,
            )
        )
        if accepted:
            # Ties: higher containment, then higher jaccard, then the nearer
            # fingerprint; an earlier (better-ranked) candidate wins a full tie.
            key = (containment, jaccard, -distance)
            if best is None or key > best[0]:
                best = (key, cand)
    if best is None:
        why = "no candidate" if not scores else "no candidate passed verification"
        return Decision(Kind.NEW, None, None, why, tuple(scores))
    chosen = best[1]
    return Decision(
        Kind.UPDATE,
        chosen.article_id,
        None,
        f"near-duplicate of article {chosen.article_id} revision {chosen.revision_number} "
        f"(containment {best[0][0]:.3f} >= {settings.verify_threshold})",
        tuple(scores),
    )
