"""How rare is what two texts share: document frequency of segment hashes.

A listing is full of text that many articles share: a series' preamble, a
template's headings, front matter. Shared boilerplate says nothing about
whether two texts are one article; shared *rare* text says a lot. Rarity is
measured on the winnowed segment hashes (``fingerprint.segments``): how many
stored articles contain a segment (``segment_df``, kept by the store), plus how
many other lines of the dump being decided contain it (a listing shows a
series' boilerplate on many lines at once, so even a fresh database sees it).

A segment that ``others`` other articles (or lines) contain weighs
``1 / (1 + others)``: text only this pair shares weighs 1, a preamble that 30
other posts carry weighs 1/31. Every character of a text takes the weight of
the segment that covers it, so verification can weigh each shingle.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from feedd.core.fingerprint import Fingerprint, FingerprintSettings, _segments_at, shingle_codes
from feedd.core.text import CACHED_TEXTS


def weight(others: int) -> float:
    return 1.0 / (1 + max(0, others))


def weights(others: np.ndarray) -> np.ndarray:
    """``weight`` of each count."""
    out: np.ndarray = 1.0 / (1.0 + np.maximum(others, 0))
    return out


def item_others(
    hashes: Sequence[int], stored_df: Mapping[int, int], in_dump: Mapping[int, int]
) -> np.ndarray:
    """For a dump line's segments: stored articles plus the dump's other lines
    that hold each (the stored article it is compared with still counted)."""
    return np.fromiter(
        (stored_df.get(h, 0) + in_dump.get(h, 1) - 1 for h in hashes),
        dtype=np.int64,
        count=len(hashes),
    )


def stored_others(
    hashes: Sequence[int], stored_df: Mapping[int, int], in_dump: Mapping[int, int]
) -> np.ndarray:
    """For a stored article's segments: other stored articles plus the dump's
    lines that hold each (the line it is compared with still counted). A hash
    never looked up counts only the article itself."""
    return np.fromiter(
        (stored_df.get(h, 1) - 1 + in_dump.get(h, 0) for h in hashes),
        dtype=np.int64,
        count=len(hashes),
    )


@functools.lru_cache(maxsize=CACHED_TEXTS)
def text_segments(
    compact_text: str, settings: FingerprintSettings
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(segment hashes, their start positions) of a stored text; cached, since
    the same articles are candidates in dump after dump."""
    return _segments_at(compact_text, settings)


def char_weights(
    length: int, hashes: Sequence[int], positions: Sequence[int], seg_weight: np.ndarray
) -> np.ndarray:
    """The weight of every character position: that of the last segment starting
    at or before it (the first segment's before it). Winnowing keeps a segment
    at least every ``segment_window`` windows, so every position is close to one.
    """
    if not hashes or length <= 0:
        return np.ones(max(0, length))
    pos = np.asarray(positions, dtype=np.int64)
    idx = np.searchsorted(pos, np.arange(length), side="right") - 1
    idx[idx < 0] = 0
    return np.asarray(seg_weight, dtype=np.float64)[idx]


def dump_counts(fingerprints: Iterable[Fingerprint]) -> Counter[int]:
    """In how many of these lines each segment hash occurs."""
    counts: Counter[int] = Counter()
    for fp in fingerprints:
        counts.update(fp.segments)
    return counts


def lookup_segments(
    fp: Fingerprint,
    stored_df: Mapping[int, int],
    in_dump: Mapping[int, int],
    boilerplate_df: int,
    limit: int,
) -> list[int]:
    """The item's segments worth asking the index about: stored somewhere, not
    boilerplate, rarest first, at most ``limit``. A boilerplate segment would
    only return the articles that happen to come first in the index."""
    scored = []
    for h in fp.segments:
        stored = stored_df.get(h, 0)
        others = stored + in_dump.get(h, 1) - 1
        if stored and others <= boilerplate_df:
            scored.append((others, h))
    scored.sort()
    return [h for _, h in scored[:limit]]


def others_count(
    h: int, stored_df: Mapping[int, int], in_dump: Mapping[int, int], in_c: bool, in_i: bool
) -> int:
    """Stored articles and dump lines other than the compared pair that contain ``h``.

    ``in_c``: the stored article of the pair contains it (it is counted in
    ``stored_df``); ``in_i``: the dump line of the pair does (counted in
    ``in_dump``). A hash never looked up counts only the pair itself.
    """
    c, i = int(in_c), int(in_i)
    return max(0, stored_df.get(h, c) - c) + max(0, in_dump.get(h, i) - i)


@dataclass(frozen=True)
class Background:
    """How common each shingle is among the texts at hand: the dump's lines and
    their candidates. Segment rarity finds boilerplate (long shared stretches);
    this finds the common shingles of a language ("the", "ing", "的是"), which
    any two texts share by chance. The IDF is smoothed as scikit-learn's is:
    ``log((1 + n) / (1 + df)) + 1``, so a shingle in every text weighs 1 and
    one in a single text ``1 + log((1 + n) / 2)``."""

    codes: np.ndarray  # distinct shingle codes, sorted
    counts: np.ndarray  # in how many of the texts each occurs
    texts: int

    @classmethod
    def of(cls, code_arrays: Sequence[np.ndarray]) -> Background:
        """From the *distinct* shingle codes of each text (``distinct_codes``)."""
        if not code_arrays:
            return cls(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), 0)
        pooled = np.concatenate(code_arrays)
        codes, counts = np.unique(pooled, return_counts=True)
        return cls(codes, counts, len(code_arrays))

    def idf(self, codes: np.ndarray) -> np.ndarray:
        df = np.zeros(len(codes), dtype=np.int64)
        if len(self.codes) and len(codes):
            at = np.searchsorted(self.codes, codes)
            at[at >= len(self.codes)] = len(self.codes) - 1
            hit = self.codes[at] == codes
            df[hit] = self.counts[at[hit]]
        out: np.ndarray = np.log((1.0 + self.texts) / (1.0 + df)) + 1.0
        return out


@functools.lru_cache(maxsize=CACHED_TEXTS)
def distinct_codes(compact_text: str, size: int) -> np.ndarray:
    """A text's distinct shingle codes, sorted; cached like the codes themselves."""
    out: np.ndarray = np.unique(shingle_codes(compact_text, size))
    out.flags.writeable = False
    return out
