"""Is this stored article the item's article? Decided on the two texts.

Three tests, in order:

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
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from feedd.core.fingerprint import FingerprintSettings, shingle_codes
from feedd.core.rarity import char_weights, others_count, text_segments, weight
from feedd.core.text import compact, normalize, was_cut


@dataclass(frozen=True)
class MatchSettings:
    """Thresholds of the matcher; defaults chosen by bench/detection (docs/detection.md)."""

    simhash_k: int = 3  # candidate radius in bits (the band index supports <= 3)
    verify_threshold: float = 0.6  # weighted containment needed to merge
    shingle_size: int = 3
    min_shingles: int = 12  # shorter texts merge only on exact normalised text
    prefix_slack: float = 0.15  # how far past the shorter text's length to look
    max_candidates: int = 16  # verify at most this many articles per item, best first
    min_shared_segments: int = 2  # a candidate by segments alone must share this many
    boilerplate_df: int = 32  # a segment in more articles than this never proposes one
    lookup_segments: int = 48  # rarest segments of an item asked of the index
    min_evidence: float = 8.0  # weighted shingles a match must share, at least


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

    @classmethod
    def of(
        cls,
        raw: str,
        fingerprint: FingerprintSettings,
        shingle_size: int,
        normalized: str | None = None,
    ) -> Text:
        norm = normalize(raw) if normalized is None else normalized
        comp = compact(norm)
        hashes, positions = text_segments(comp, fingerprint)
        return cls(
            raw, norm, comp, was_cut(raw), shingle_codes(comp, shingle_size), hashes, positions
        )


@dataclass(frozen=True)
class PairScore:
    recut: str | None  # "shorter" | "longer": the item is the stored text at another length
    veto: str | None  # why the pair can never be one article
    containment: float  # plain share of the item's aligned shingles found in the stored text
    weighted: float  # the better rarity-weighted containment of the two directions
    evidence: float  # weighted shingles shared in that direction
    accepted: bool

    @property
    def strength(self) -> float:
        """How sure: a re-cut beats any containment."""
        return 2.0 if self.recut else self.weighted


def recut(item: Text, stored: Text) -> str | None:
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


def _contained(
    a: np.ndarray, a_weights: np.ndarray, b: np.ndarray, slack: float
) -> tuple[float, float, float]:
    """(weighted containment, weighted mass shared, plain containment) of a's
    aligned opening in b's: a listing cuts texts at different lengths, so only
    as much of ``a`` as ``b`` could show counts, and only ``b``'s same-length
    opening (plus slack for inserted text) is looked in."""
    n = min(len(a), int(len(b) * (1 + slack)) + 1)
    if n <= 0:
        return 0.0, 0.0, 0.0
    window = b[: int(n * (1 + slack)) + 1]
    present = np.isin(a[:n], window)
    w = a_weights[:n]
    total = float(w.sum())
    mass = float(w[present].sum())
    return (mass / total if total else 0.0), mass, float(present.mean())


def score_pair(
    item: Text,
    stored: Text,
    stored_df: Mapping[int, int],
    in_dump: Mapping[int, int],
    settings: MatchSettings,
) -> PairScore:
    cut = recut(item, stored)
    if cut is not None:
        return PairScore(cut, None, 1.0, 1.0, float(len(item.codes)), True)
    veto = number_veto(item, stored, settings.prefix_slack)
    in_i, in_c = set(item.hashes), set(stored.hashes)
    w_i = [weight(others_count(h, stored_df, in_dump, h in in_c, True)) for h in item.hashes]
    w_c = [weight(others_count(h, stored_df, in_dump, True, h in in_i)) for h in stored.hashes]
    cw_i = char_weights(len(item.compact), item.hashes, item.positions, w_i)[: len(item.codes)]
    cw_c = char_weights(len(stored.compact), stored.hashes, stored.positions, w_c)
    cw_c = cw_c[: len(stored.codes)]
    slack = settings.prefix_slack
    fwd, fwd_mass, plain = _contained(item.codes, cw_i, stored.codes, slack)
    back, back_mass, _ = _contained(stored.codes, cw_c, item.codes, slack)
    weighted, mass = (fwd, fwd_mass) if fwd >= back else (back, back_mass)
    long_enough = min(len(item.compact), len(stored.compact)) >= settings.min_shingles
    accepted = (
        veto is None
        and long_enough
        and mass >= settings.min_evidence
        and weighted >= settings.verify_threshold
    )
    return PairScore(None, veto, round(plain, 4), round(weighted, 4), round(mass, 2), accepted)
