"""The new / repeat / update decision for a whole dump, over plain data.

A dump is decided as a whole, because a listing shows each article at most
once:

1. **Exact texts claim first.** A line whose normalised text is a stored
   revision's claims that article (a ``repeat`` of its current revision, or an
   ``update`` back to an older one).
2. **Everything else is scored**, each line against its candidate articles
   (``feedd.core.verify``), with the rarity of shared text measured over the
   stored articles *and* the other lines of this dump.
3. **Greedy assignment, surest first.** Accepted (line, article) pairs are
   taken by strength (a re-cut first, then weighted containment, which is
   also where an inserted section ranks, by its own weighted containment); a line takes
   at most one article and an article at most one line. An article already
   claimed is excluded for every other line of the dump: two articles shown in
   one dump are different, whatever their texts share.
4. Lines left over are **new** articles.

Each ``Decision`` carries its action, so the writer never works it out again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from feedd.core.fingerprint import Fingerprint, hamming
from feedd.core.rarity import Background, item_others, stored_others
from feedd.core.verify import MatchSettings, PairScore, Shown, Text, recut, score_pair

__all__ = [
    "Action",
    "Candidate",
    "Decision",
    "ExactMatch",
    "Item",
    "Kind",
    "MatchSettings",
    "Score",
    "claim_exact",
    "claim_recuts",
    "decide_dump",
]


class Kind(StrEnum):
    NEW = "new"
    REPEAT = "repeat"
    UPDATE = "update"


class Action(StrEnum):
    CREATE = "create"  # a new article with its first revision
    SIGHT = "sight"  # the current revision, shown exactly or at another cut
    EXTEND = "extend"  # the current revision, shown longer: it keeps the longer text
    RESTORE = "restore"  # an older revision's exact text: it becomes current again
    REVISE = "revise"  # a new revision of a known article


@dataclass(frozen=True)
class Candidate:
    """A stored article proposed for an item, with its current revision."""

    article_id: int
    revision_id: int
    revision_number: int
    text: Text
    simhash: int
    evidence: float = 0.0  # rarity of the segments it shares with the item
    shared_segments: int = 0
    # (segment hash, other articles and lines holding it) of each shared segment
    rarity: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class ExactMatch:
    article_id: int
    revision_id: int
    revision_number: int
    is_current: bool


@dataclass(frozen=True)
class Item:
    """One item line of the dump, with what the store found for it."""

    line: int
    text: Text | None = None  # None when an exact match is certain to claim it
    fingerprint: Fingerprint | None = None
    exact: tuple[ExactMatch, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    # Claimed by ``claim_recuts``, with how ("shorter" | "longer"): no fingerprint needed.
    recut_of: tuple[Candidate, str] | None = None


@dataclass(frozen=True)
class Score:
    """Why a candidate was or was not taken (shown by ``feedd explain``)."""

    article_id: int
    revision_number: int
    distance: int
    shared_segments: int
    evidence: float
    containment: float
    weighted: float
    recut: str | None
    veto: str | None
    accepted: bool
    excluded: bool = False  # another line of this dump showed the article
    inserted: bool = False  # accepted as a section inserted after the article's opening
    screened: bool = False  # rejected on plain containment before any weight was computed


@dataclass(frozen=True)
class Decision:
    kind: Kind
    action: Action
    article_id: int | None  # None: create a new article
    revision_id: int | None  # the revision sighted; None: the one this decision creates
    reason: str
    scores: tuple[Score, ...] = field(default=())
    recut: str | None = None


def claim_exact(exact: Sequence[Sequence[ExactMatch]]) -> list[ExactMatch | None]:
    """Which exact match each line claims. Current revisions claim first, over
    the whole dump, then older ones: a new post that starts as a copy of an
    old post's earlier text must not take that post from its own line."""
    claimed: set[int] = set()
    out: list[ExactMatch | None] = [None] * len(exact)
    for current in (True, False):
        for index, options in enumerate(exact):
            if out[index] is not None:
                continue
            for match in options:
                if match.is_current is current and match.article_id not in claimed:
                    out[index] = match
                    claimed.add(match.article_id)
                    break
    return out


def claim_recuts(
    lines: Sequence[tuple[Shown, Sequence[Candidate]] | None], claimed: set[int]
) -> list[tuple[Candidate, str] | None]:
    """Which article each line shows at another cut, among the articles not in
    ``claimed`` whose current text opens like it; adds the claims to ``claimed``.
    Lines in order, the newest article first: a re-cut is the surest match
    after an exact one, so these claims come before any scoring."""
    out: list[tuple[Candidate, str] | None] = []
    for line in lines:
        pick = None
        if line is not None:
            shown, candidates = line
            for cand in sorted(candidates, key=lambda c: -c.article_id):
                how = recut(shown, cand.text) if cand.article_id not in claimed else None
                if how is not None:
                    pick = (cand, how)
                    claimed.add(cand.article_id)
                    break
        out.append(pick)
    return out


def _exact_decision(match: ExactMatch) -> Decision:
    if match.is_current:
        return Decision(
            Kind.REPEAT, Action.SIGHT, match.article_id, match.revision_id, "same normalised text"
        )
    return Decision(
        Kind.UPDATE,
        Action.RESTORE,
        match.article_id,
        match.revision_id,
        f"text changed back to revision {match.revision_number}",
    )


def decide_dump(
    items: Sequence[Item],
    stored_df: Mapping[int, int],
    in_dump: Mapping[int, int],
    settings: MatchSettings,
    background: Background | None = None,
) -> list[Decision]:
    """Decide every item line of one dump (see the module docstring).

    ``stored_df``: segment hash -> stored articles containing it (for the
    hashes looked up); ``in_dump``: segment hash -> lines of this dump, among
    those not claimed exactly, that contain it."""
    claims = claim_exact([item.exact for item in items])
    claimed = {c.article_id for c in claims if c is not None}
    decisions: list[Decision | None] = [
        _exact_decision(c) if c is not None else None for c in claims
    ]
    for index, item in enumerate(items):
        if decisions[index] is None and item.recut_of is not None:
            cand, how = item.recut_of
            claimed.add(cand.article_id)
            decisions[index] = _recut_decision(cand, how)
    pairs: list[tuple[tuple[float, float, int, int, int], int, Candidate, PairScore]] = []
    scored: dict[int, list[tuple[Candidate, PairScore]]] = {}
    stored_base: dict[int, np.ndarray] = {}
    for index, item in enumerate(items):
        if decisions[index] is not None:
            continue
        if item.text is None or item.fingerprint is None:
            raise ValueError(f"line {item.line} has no exact claim and no fingerprint")
        rows = scored.setdefault(index, [])
        mine = item_others(item.text.hashes, stored_df, in_dump)
        for cand in item.candidates[: settings.max_candidates]:
            theirs = stored_base.get(cand.article_id)
            if theirs is None:
                theirs = stored_others(cand.text.hashes, stored_df, in_dump)
                stored_base[cand.article_id] = theirs
            result = score_pair(item.text, cand.text, mine, theirs, settings, background)
            rows.append((cand, result))
            if result.accepted and cand.article_id not in claimed:
                distance = hamming(cand.simhash, item.fingerprint.simhash)
                # Surest first; then the earlier line, the nearer fingerprint,
                # the newer article: fixed order, so the outcome is deterministic.
                key = (-result.strength, -result.containment, index, distance, -cand.article_id)
                pairs.append((key, index, cand, result))
    taken: dict[int, tuple[Candidate, PairScore]] = {}
    for _, index, cand, result in sorted(pairs, key=lambda p: p[0]):
        if index in taken or cand.article_id in claimed:
            continue
        taken[index] = (cand, result)
        claimed.add(cand.article_id)
    out: list[Decision] = []
    for index, item in enumerate(items):
        decision = decisions[index]
        if decision is not None:
            out.append(decision)
            continue
        assert item.fingerprint is not None
        chosen = taken.get(index)
        own = chosen[0].article_id if chosen else None
        scores = tuple(
            _score(cand, result, item.fingerprint, excluded=cand.article_id in claimed - {own})
            for cand, result in scored.get(index, [])
        )
        out.append(_near_decision(chosen, scores, settings))
    return out


def _recut_decision(cand: Candidate, how: str, scores: tuple[Score, ...] = ()) -> Decision:
    if how == "longer":
        return Decision(
            Kind.REPEAT,
            Action.EXTEND,
            cand.article_id,
            cand.revision_id,
            f"revision {cand.revision_number} shown longer (it keeps the longer text)",
            scores,
            recut="longer",
        )
    return Decision(
        Kind.REPEAT,
        Action.SIGHT,
        cand.article_id,
        cand.revision_id,
        f"revision {cand.revision_number} cut shorter",
        scores,
        recut="shorter",
    )


def _score(cand: Candidate, result: PairScore, fp: Fingerprint, *, excluded: bool) -> Score:
    return Score(
        cand.article_id,
        cand.revision_number,
        hamming(cand.simhash, fp.simhash),
        cand.shared_segments,
        round(cand.evidence, 3),
        result.containment,
        result.weighted,
        result.recut,
        result.veto,
        result.accepted,
        excluded,
        result.inserted,
        result.screened,
    )


def _near_decision(
    chosen: tuple[Candidate, PairScore] | None,
    scores: tuple[Score, ...],
    settings: MatchSettings,
) -> Decision:
    if chosen is None:
        if not scores:
            why = "no candidate"
        elif any(s.accepted for s in scores):
            why = "every matching article is shown by another line of this dump"
        else:
            why = "no candidate passed verification"
        return Decision(Kind.NEW, Action.CREATE, None, None, why, scores)
    cand, result = chosen
    if result.recut is not None:
        return _recut_decision(cand, result.recut, scores)
    why = (
        "a section inserted after its opening, the rest pushed past the cut"
        if result.inserted
        else f"weighted containment {result.weighted:.3f} >= {settings.verify_threshold}"
    )
    return Decision(
        Kind.UPDATE,
        Action.REVISE,
        cand.article_id,
        None,
        f"edit of article {cand.article_id} revision {cand.revision_number} ({why})",
        scores,
    )
