"""The matcher's settings: plain data, importable without numpy (the config needs them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FingerprintSettings:
    """How texts are fingerprinted. Changing these needs a re-backfill."""

    feature_ngram: int = 2  # token n-gram size for simhash features
    max_feature_weight: int = 0  # 0 = no cap; weights are counts otherwise
    segment_chars: int = 10  # k: each segment hash covers this many compact chars
    segment_window: int = 10  # w: winnowing keeps one hash per w consecutive k-grams
    # Segment hashes over the whole text, the first max_segments of them: they
    # are both the candidate index (per article) and the unit whose document
    # frequency weighs shared text by its rarity.
    max_segments: int = 256


@dataclass(frozen=True)
class MatchSettings:
    """Thresholds of the matcher; defaults chosen by bench/detection (docs/detection.md)."""

    simhash_k: int = 3  # candidate radius in bits (the band index supports <= 3)
    verify_threshold: float = 0.5  # weighted containment needed to merge
    shingle_size: int = 3
    min_shingles: int = 12  # shorter texts merge only on exact normalised text
    prefix_slack: float = 0.15  # how far past the shorter text's length to look
    max_candidates: int = 16  # verify at most this many articles per item, best first
    min_shared_segments: int = 2  # a candidate by segments alone must share this many
    boilerplate_df: int = 32  # a segment in more articles than this never proposes one
    lookup_segments: int = 48  # rarest segments of an item asked of the index
    min_evidence: float = 8.0  # weighted shingles a match must share, at least
    shingle_idf: bool = True  # also weigh shingles by how common they are in the dump
    # How far into the item a stored text that grew is looked for, as a
    # multiple of its own length (0: anywhere in the item).
    grown_window: float = 0.0
    # Weights may discount boilerplate, never invent agreement: the plain
    # (unweighted) containment must reach this too.
    min_plain: float = 0.65
