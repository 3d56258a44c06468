"""Is this stored article the item's article? Decided on the two texts.

Four tests, in order:

1. **Re-cut.** One compact text is a prefix of the other and the shorter one
   was cut by the listing (it ended with ``...``/``…``): the same text shown at
   another length. Not an edit.
2. **Identity numbers.** Template siblings (release notes) differ in little
   but their version: when each text repeats a multi-part number (``20.3.1``,
   ``node-v20-3-1``) that the other never shows, they are different posts. A
   typo fixed in one occurrence leaves the old number elsewhere in the text,
   so it does not veto.
3. **Rarity-weighted containment**, in both directions: how much of one text's
   aligned opening, each shingle weighed by the rarity of the segment that
   covers it (``feedd.core.rarity``), is found in the other's. Shared
   boilerplate weighs next to nothing, so two posts of one series that share
   only their preamble score low, and an article whose only change is inside
   that preamble scores high. The direction item-in-stored finds re-cut and
   edited texts; stored-in-item finds a stored text that grew (a draft filled
   in between its headings).
4. **Inserted section.** A listing with a fixed cut shows a section inserted
   after an unchanged opening by pushing as much of the old text off its end:
   the item is the stored text's opening, the new section, then the stored
   text's next part, up to the cut. Both containments fall with the inserted
   share, and the stored text's lost tail often weighs more than its shared
   boilerplate. When the item was cut and its text is laid out exactly so
   (``inserted``), the pair is accepted on that structure.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from rapidfuzz.distance import LCSseq

from feedd.core.fingerprint import Fingerprint, FingerprintSettings, shingle_codes
from feedd.core.rarity import Background, char_weights, text_segments, weights
from feedd.core.settings import MatchSettings as MatchSettings
from feedd.core.text import CACHED_TEXTS, compact, normalize, was_cut


class Shown(Protocol):
    """What the re-cut test needs of a text."""

    @property
    def compact(self) -> str: ...
    @property
    def cut(self) -> bool: ...


@dataclass(frozen=True)
class Opening:
    """A line's text as the re-cut test sees it: cheap, no fingerprint."""

    compact: str
    cut: bool

    @classmethod
    def of(cls, raw: str, normalized: str) -> Opening:
        return cls(compact(normalized), was_cut(raw))


@dataclass(frozen=True)
class Text:
    """One side of a comparison: a text in the forms verification needs."""

    raw: str
    normalized: str
    compact: str
    cut: bool
    codes: np.ndarray
    hashes: tuple[int, ...]
    positions: tuple[int, ...]
    hash_array: np.ndarray  # ``hashes`` as int64
    sorted_codes: np.ndarray  # ``codes`` sorted, for membership tests

    @classmethod
    def of(
        cls,
        raw: str,
        fingerprint: FingerprintSettings,
        shingle_size: int,
        normalized: str | None = None,
    ) -> Text:
        return _text(raw, fingerprint, shingle_size, normalized)

    @classmethod
    def of_item(cls, raw: str, fp: Fingerprint, shingle_size: int) -> Text:
        """A dump line's text, from the fingerprint already computed for it."""
        codes = shingle_codes(fp.compact, shingle_size)
        return cls(
            raw,
            fp.normalized,
            fp.compact,
            was_cut(raw),
            codes,
            fp.segments,
            fp.segment_pos,
            np.asarray(fp.segments, dtype=np.int64),
            np.sort(codes),
        )


@functools.lru_cache(maxsize=CACHED_TEXTS)
def _text(
    raw: str, fingerprint: FingerprintSettings, shingle_size: int, normalized: str | None
) -> Text:
    # Cached: the same stored texts are candidates in dump after dump.
    norm = normalize(raw) if normalized is None else normalized
    comp = compact(norm)
    hashes, positions = text_segments(comp, fingerprint)
    codes = shingle_codes(comp, shingle_size)
    return Text(
        raw,
        norm,
        comp,
        was_cut(raw),
        codes,
        hashes,
        positions,
        np.asarray(hashes, dtype=np.int64),
        np.sort(codes),
    )


def member(values: np.ndarray, sorted_pool: np.ndarray) -> np.ndarray:
    """values[i] in sorted_pool, for each i (a binary search each, in C)."""
    if not len(sorted_pool) or not len(values):
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_pool, values)
    at[at >= len(sorted_pool)] = len(sorted_pool) - 1
    found: np.ndarray = sorted_pool[at] == values
    return found


@dataclass(frozen=True)
class PairScore:
    recut: str | None  # "shorter" | "longer": the item is the stored text at another length
    veto: str | None  # why the pair can never be one article
    containment: float  # plain share of the item's aligned shingles found in the stored text
    weighted: float  # the better rarity-weighted containment of the two directions
    evidence: float  # weighted shingles shared in that direction
    accepted: bool
    inserted: bool = False  # accepted as a section inserted into the stored text
    # Rejected on the plain containment alone, before any weight was computed
    # (``weighted`` and ``evidence`` are then 0): see ``score_pair``.
    screened: bool = False

    @property
    def strength(self) -> float:
        """How sure: a re-cut beats any containment."""
        return 2.0 if self.recut else self.weighted


def recut(item: Shown, stored: Shown) -> str | None:
    if item.compact == stored.compact:
        return None
    if item.cut and stored.compact.startswith(item.compact):
        return "shorter"
    if stored.cut and item.compact.startswith(stored.compact):
        return "longer"
    return None


_NUMBER = re.compile(r"\d+(?:[.\-]\d+)+")


def _identity_numbers(text: str) -> Counter[str]:
    return Counter(m.replace("-", ".") for m in _NUMBER.findall(text))


def number_veto(item: Text, stored: Text, slack: float) -> str | None:
    """Each text repeats a multi-part number the other never shows."""
    span = int(min(len(item.normalized), len(stored.normalized)) * (1 + slack)) + 1
    a = _identity_numbers(item.normalized[:span])
    b = _identity_numbers(stored.normalized[:span])
    only_a = sorted(t for t, n in a.items() if n >= 2 and t not in b)
    only_b = sorted(t for t, n in b.items() if n >= 2 and t not in a)
    if only_a and only_b:
        return f"different identity numbers: {only_a[0]} vs {only_b[0]}"
    return None


def presence(
    a: np.ndarray,
    b: np.ndarray,
    slack: float,
    *,
    anywhere: bool = False,
    sorted_b: np.ndarray | None = None,
) -> np.ndarray:
    """Which shingles of a's aligned opening are in b's: a listing cuts texts
    at different lengths, so only as much of ``a`` as ``b`` could show counts,
    and only ``b``'s same-length opening (plus slack for inserted text) is
    looked in; ``anywhere``: all of b (``sorted_b``, when given, is b sorted)."""
    n = min(len(a), int(len(b) * (1 + slack)) + 1)
    if n <= 0:
        return np.zeros(0, dtype=bool)
    if anywhere:
        return member(a[:n], np.sort(b) if sorted_b is None else sorted_b)
    return member(a[:n], np.sort(b[: int(n * (1 + slack)) + 1]))


def contained(
    a: np.ndarray,
    a_weights: np.ndarray,
    b: np.ndarray,
    slack: float,
    *,
    anywhere: bool = False,
    present: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """(weighted containment, weighted mass shared, plain containment) of a's
    aligned opening in b's (``presence``; pass ``present`` when it is known)."""
    if present is None:
        present = presence(a, b, slack, anywhere=anywhere)
    n = len(present)
    if n == 0:
        return 0.0, 0.0, 0.0
    w = a_weights[:n]
    total = float(w.sum())
    mass = float(w[present].sum())
    return (mass / total if total else 0.0), mass, float(present.mean())


# The inserted-section test (docs/detection.md, Verification, step 4).
_MIN_BLOCK = 6  # compact characters: shorter common runs are chance
_INSERT_PREFILTER = 0.45  # item shingles found anywhere in the stored text
_INSERT_ITEM_SHARE = 0.5  # item characters that are the stored text's, in order
_INSERT_STORED_SHARE = 0.85  # stored characters, up to where the item ends, found in order
_INSERT_AFTER = 0.1  # of the item, and at least _INSERT_AFTER_MIN, after the new section
_INSERT_AFTER_MIN = 30
_INSERT_TAIL_SLACK = 0.3  # stored tail lost beyond the new section's length, of the item
_INSERT_END = 0.1  # the item ends on stored text, this close to its end


def inserted(item: Text, stored: Text) -> int | None:
    """The item is ``A + new + B``, cut, where ``A + B`` is the stored text's
    opening: a section inserted after an unchanged opening, pushing the
    stored text's tail off the end of the listing's cut.

    Each condition guards against a different article that merely shares text:
    most of the item must be the stored text, in order (not a new post that
    quotes an old one's opening); almost all of the stored text up to where the
    item ends must be there (not two posts of one series that share a
    preamble: their bodies differ); stored text must follow the new section (a
    post that only shares an opening ends on its own text); and the lost tail
    can be no longer than what the new section pushed out.

    Returns where the new section starts in the item's compact text (the
    caller weighs the opening before it), or None."""
    if not item.cut:
        return None
    a, b = stored.compact, item.compact
    # A longest-common-subsequence alignment (bit-parallel, in C: tens of
    # microseconds for two 1,000-character texts; difflib took 10-20 ms and
    # gave the same verdict on every pair measured).
    blocks = [
        (op.src_start, op.dest_start, op.src_end - op.src_start)
        for op in LCSseq.opcodes(a, b)
        if op.tag == "equal" and op.src_end - op.src_start >= _MIN_BLOCK
    ]
    if not blocks:
        return None
    matched = sum(size for _, _, size in blocks)
    gap, at, prev = 0, 0, 0
    for _, start, size in blocks:
        if start - prev > gap:
            gap, at = start - prev, prev
        prev = start + size
    after = sum(size for _, start, size in blocks if start >= at + gap)
    stored_end = max(start + size for start, _, size in blocks)
    item_end = max(start + size for _, start, size in blocks)
    n = len(b)
    laid_out = (
        matched >= _INSERT_ITEM_SHARE * n
        and matched >= _INSERT_STORED_SHARE * stored_end
        and after >= max(_INSERT_AFTER_MIN, _INSERT_AFTER * n)
        and len(a) - stored_end <= gap + _INSERT_TAIL_SLACK * n
        and n - item_end <= max(15, _INSERT_END * n)
    )
    return at if laid_out else None


def score_pair(
    item: Text,
    stored: Text,
    item_others: np.ndarray,
    stored_others: np.ndarray,
    settings: MatchSettings,
    background: Background | None = None,
) -> PairScore:
    """Score the pair. ``item_others[i]``: stored articles and other dump lines
    holding the item's i-th segment, counting the stored article of the pair;
    ``stored_others[j]``: the same for the stored text's j-th segment, counting
    the item's line (``feedd.core.rarity.base_others``). The pair is taken out
    here, so text only these two share weighs 1."""
    cut = recut(item, stored)
    if cut is not None:
        return PairScore(cut, None, 1.0, 1.0, float(len(item.codes)), True)
    veto = number_veto(item, stored, settings.prefix_slack)
    slack = settings.prefix_slack
    # Screen first, on plain shingle membership alone: acceptance needs the
    # plain containment of the chosen direction to reach min_plain, and these
    # are exactly the two directions' plain containments (with grown_window
    # set, the backward one looks in a shorter reach whose mean can be
    # higher, so no screen then); an insertion needs _INSERT_PREFILTER of the
    # item shared.
    # Most candidates (75-92% of pairs on the corpora and generator streams)
    # stop here, before the weights, which cost most of a pair's time.
    # The same presence arrays then serve the weighted containments below.
    found = member(item.codes, stored.sorted_codes)
    shared = float(found.mean()) if len(found) else 0.0
    fwd_present = presence(item.codes, stored.codes, slack)
    plain = float(fwd_present.mean()) if len(fwd_present) else 0.0
    grown = settings.grown_window
    back_present = (
        None
        if grown > 0
        else presence(stored.codes, item.codes, slack, anywhere=True, sorted_b=item.sorted_codes)
    )
    if (
        back_present is not None
        and plain < settings.min_plain
        and (float(back_present.mean()) if len(back_present) else 0.0) < settings.min_plain
        and shared < _INSERT_PREFILTER
    ):
        return PairScore(None, veto, round(plain, 4), 0.0, 0.0, False, screened=True)
    in_c = member(item.hash_array, np.sort(stored.hash_array))
    in_i = member(stored.hash_array, np.sort(item.hash_array))
    w_i = weights(item_others - in_c)
    w_c = weights(stored_others - in_i)
    cw_i = char_weights(len(item.compact), item.hashes, item.positions, w_i)[: len(item.codes)]
    cw_c = char_weights(len(stored.compact), stored.hashes, stored.positions, w_c)
    cw_c = cw_c[: len(stored.codes)]
    if background is not None:
        cw_i = cw_i * background.idf(item.codes)
        cw_c = cw_c * background.idf(stored.codes)
    fwd, fwd_mass, plain = contained(item.codes, cw_i, stored.codes, slack, present=fwd_present)
    # A stored text that grew may have grown in the middle (a draft filled in
    # between its headings), pushing its own tail far into the item.
    if back_present is None:
        reach = item.codes[: int(len(stored.codes) * grown) + 1]
        back, back_mass, back_plain = contained(stored.codes, cw_c, reach, slack, anywhere=True)
    else:
        back, back_mass, back_plain = contained(
            stored.codes, cw_c, item.codes, slack, present=back_present
        )
    weighted, mass, chosen_plain = (
        (fwd, fwd_mass, plain) if fwd >= back else (back, back_mass, back_plain)
    )
    long_enough = min(len(item.compact), len(stored.compact)) >= settings.min_shingles
    accepted = (
        veto is None
        and long_enough
        and mass >= settings.min_evidence
        and weighted >= settings.verify_threshold
        and chosen_plain >= settings.min_plain
    )
    insert = False
    if not accepted and veto is None and long_enough and item.cut and shared >= _INSERT_PREFILTER:
        at = inserted(item, stored)
        # The unchanged opening must itself say which article this is: text
        # there that only these two hold (a title, an issue number and date).
        # In two posts of a series the opening before the new text is the
        # preamble, which other posts (or other lines of the dump) hold too.
        # Not at a cold start with one earlier issue stored and the new one
        # alone in its dump: the preamble is then theirs alone, and the line
        # joins the earlier issue (docs/detection.md, "What still fails").
        if at is not None and at > 0:
            own = (in_c & (item_others - in_c <= 0)).astype(np.float64)
            opening = char_weights(len(item.compact), item.hashes, item.positions, own)[:at]
            insert = float(opening.sum()) >= settings.min_evidence
    return PairScore(
        None,
        veto,
        round(plain, 4),
        round(weighted, 4),
        round(mass, 2),
        accepted or insert,
        inserted=insert,
    )
