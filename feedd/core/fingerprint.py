"""Fingerprints of an item's text: simhash, winnowed segment hashes, shingles.

The simhash is the one of the `simhash` package (md5 features, 64 bits,
bit set when more than half the feature weight has it), computed here with a
vectorised path that gives identical values (tests/test_fingerprint.py proves it
against ``simhash.Simhash``) and that cannot overflow: ``simhash`` 2.1.2 under
numpy 2 raises OverflowError once a feature's weight passes 255.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from feedd.core.text import compact, hash64, normalize, to_signed64

# Latin words stay whole (a word is the unit of meaning there); every other
# letter, i.e. CJK, is a token of its own, since Chinese has no spaces.
_TOKEN = re.compile(r"[0-9a-z\u00c0-\u024f]+|[^\W_]", re.UNICODE)


@dataclass(frozen=True)
class FingerprintSettings:
    """How texts are fingerprinted. Changing these needs a re-backfill."""

    feature_ngram: int = 2  # token n-gram size for simhash features
    max_feature_weight: int = 0  # 0 = no cap; weights are counts otherwise
    segment_chars: int = 10  # k: each segment hash covers this many compact chars
    segment_window: int = 10  # w: winnowing keeps one hash per w consecutive k-grams
    max_segments: int = 24  # only the leading ones: a listing cuts the end


@dataclass(frozen=True)
class TextKey:
    """What decides "same text": cheap, so exact repeats never pay for a simhash."""

    normalized: str
    norm_hash: int  # signed 64-bit hash of the normalised text


def text_key(text: str) -> TextKey:
    norm = normalize(text)
    return TextKey(norm, hash64(norm))


@dataclass(frozen=True)
class Fingerprint:
    """Everything the matcher needs to know about one text."""

    normalized: str
    compact: str
    norm_hash: int  # signed 64-bit hash of the normalised text
    simhash: int  # signed 64-bit simhash (store-friendly)
    segments: tuple[int, ...]  # signed 64-bit hashes of leading segments


def tokens(normalized: str) -> list[str]:
    return _TOKEN.findall(normalized.lower())


def features(normalized: str, settings: FingerprintSettings) -> Counter[str]:
    toks = tokens(normalized)
    n = settings.feature_ngram
    if len(toks) < n:
        grams = [" ".join(toks)] if toks else [""]
    else:
        grams = [" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    counts = Counter(grams)
    if settings.max_feature_weight:
        cap = settings.max_feature_weight
        counts = Counter({k: min(v, cap) for k, v in counts.items()})
    return counts


def simhash64(weighted: Mapping[str, int] | Iterable[tuple[str, int]]) -> int:
    """Unsigned 64-bit simhash, bit-identical to ``simhash.Simhash(features).value``."""
    pairs = list(weighted.items()) if isinstance(weighted, Mapping) else list(weighted)
    if not pairs:
        pairs = [("", 1)]
    digests = b"".join(
        hashlib.md5(f.encode("utf-8", "surrogatepass")).digest()[-8:] for f, _ in pairs
    )
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8)).reshape(-1, 64)
    weights = np.fromiter((w for _, w in pairs), dtype=np.int64, count=len(pairs))
    sums = weights @ bits.astype(np.int64)
    total = int(weights.sum())
    packed = np.packbits(sums > total / 2).tobytes()
    return int.from_bytes(packed, "big")


def segments(normalized: str, settings: FingerprintSettings) -> tuple[int, ...]:
    """Winnowed k-gram hashes of the text's start (Schleimer et al. 2003).

    Hash every k-character window of the compact text and keep the smallest
    hash of each run of w consecutive windows. Any unchanged stretch of
    k + w - 1 characters then keeps at least one hash in common with the old
    text wherever an edit happened, which clause- or position-based chunks do
    not guarantee (one changed length moves every later boundary). Texts too
    short for a k-gram get the hash of the whole compact text.
    """
    text = compact(normalized)
    k, w = settings.segment_chars, settings.segment_window
    if len(text) < k + w - 1:
        return (hash64(text),) if text else ()
    # crc32 is stable across processes and fast; a collision only proposes
    # one more candidate, which verification then rejects.
    grams = [
        zlib.crc32(text[i : i + k].encode("utf-8", "surrogatepass"))
        for i in range(len(text) - k + 1)
    ]
    out: dict[int, None] = {}
    last = -1
    for start in range(len(grams) - w + 1):
        window = grams[start : start + w]
        low = min(window)
        # The rightmost minimum: a run of equal hashes yields one fingerprint.
        at = start + w - 1 - window[::-1].index(low)
        if at != last:
            last = at
            out.setdefault(low, None)
            if len(out) >= settings.max_segments:
                break
    return tuple(out)


def fingerprint(
    text: str, settings: FingerprintSettings | None = None, key: TextKey | None = None
) -> Fingerprint:
    settings = settings or FingerprintSettings()
    key = key or text_key(text)
    norm = key.normalized
    return Fingerprint(
        normalized=norm,
        compact=compact(norm),
        norm_hash=key.norm_hash,
        simhash=to_signed64(simhash64(features(norm, settings))),
        segments=segments(norm, settings),
    )


@functools.lru_cache(maxsize=4096)
def shingles(compact_text: str, size: int) -> frozenset[str]:
    """Character shingles; cached because a stored revision is verified again
    every time a new text shares its segments."""
    if len(compact_text) <= size:
        return frozenset([compact_text]) if compact_text else frozenset()
    return frozenset({compact_text[i : i + size] for i in range(len(compact_text) - size + 1)})


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & 0xFFFFFFFFFFFFFFFF).bit_count()


BAND_BITS = 16
BANDS = 4  # 4 bands of 16 bits: any two fingerprints within 3 bits share a band


def bands(simhash_value: int) -> tuple[int, ...]:
    unsigned = simhash_value & 0xFFFFFFFFFFFFFFFF
    mask = (1 << BAND_BITS) - 1
    return tuple((unsigned >> (BAND_BITS * i)) & mask for i in range(BANDS))
