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
import operator
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from feedd.core.settings import FingerprintSettings as FingerprintSettings
from feedd.core.text import CACHED_TEXTS, compact, hash64, normalize, to_signed64

# Latin words stay whole (a word is the unit of meaning there); every other
# letter, i.e. CJK, is a token of its own, since Chinese has no spaces.
_TOKEN = re.compile(r"[0-9a-z\u00c0-\u024f]+|[^\W_]", re.UNICODE)


@dataclass(frozen=True)
class TextKey:
    """What decides "same text": cheap, so exact repeats never pay for a simhash."""

    normalized: str
    norm_hash: int  # signed 64-bit hash of the normalised text


@functools.lru_cache(maxsize=CACHED_TEXTS)
def text_key(text: str) -> TextKey:
    # Cached: a listing shows the same lines in dump after dump, and this is
    # the whole cost of an exact repeat before the database.
    norm = normalize(text)
    return TextKey(norm, hash64(norm))


@dataclass(frozen=True)
class Fingerprint:
    """Everything the matcher needs to know about one text."""

    normalized: str
    compact: str
    norm_hash: int  # signed 64-bit hash of the normalised text
    simhash: int  # signed 64-bit simhash (store-friendly)
    segments: tuple[int, ...]  # signed 64-bit winnowed segment hashes, distinct, in text order
    segment_pos: tuple[int, ...] = ()  # where each segment starts in ``compact``


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


# md5 digests of features, kept: a language reuses its character pairs, and
# the md5 per feature was the largest part of a new text's cost. Bounded at
# ~45 MB; past the bound the cache starts over.
_DIGESTS: dict[str, bytes] = {}
_DIGESTS_LIMIT = 262144
_UTF8 = operator.methodcaller("encode", "utf-8", "surrogatepass")
_DIGEST = operator.methodcaller("digest")


def simhash64(weighted: Mapping[str, int] | Iterable[tuple[str, int]]) -> int:
    """Unsigned 64-bit simhash, bit-identical to ``simhash.Simhash(features).value``."""
    counts = weighted if isinstance(weighted, Mapping) else dict(weighted)
    if not counts:
        counts = {"": 1}
    cache = _DIGESTS
    missing = [f for f in counts if f not in cache]
    if missing:
        if len(cache) + len(missing) > _DIGESTS_LIMIT:
            cache.clear()
            missing = list(counts)
        # map() over C callables: no Python frame per feature.
        cache.update(zip(missing, map(_DIGEST, map(hashlib.md5, map(_UTF8, missing))), strict=True))
    digests = np.frombuffer(b"".join(map(cache.__getitem__, counts)), dtype=np.uint8)
    # simhash uses the low 64 bits of the 128-bit md5: the last 8 bytes.
    bits = np.unpackbits(digests.reshape(-1, 16)[:, 8:], axis=1)
    weights = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    sums = weights @ bits.astype(np.int64)
    total = int(weights.sum())
    packed = np.packbits(sums > total / 2).tobytes()
    return int.from_bytes(packed, "big")


# The segment hash of a k-character window: a polynomial over its code points
# (mod 2**64), then murmur3's fmix64 so that the minimum a window keeps is not
# biased towards small code points. Computed for all windows at once through
# prefix sums: sum(c[j] * B**j, j in window) * B**-i is window i's polynomial.
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so it has an inverse mod 2**64
_BASE_INV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))
_POWERS: list[np.ndarray] = []  # [B**j, B**-j] for j < len, grown on demand


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    if not _POWERS or len(_POWERS[0]) < n:
        size = max(n, 1024)
        with np.errstate(over="ignore"):
            up = np.cumprod(np.full(size, _BASE, dtype=np.uint64), dtype=np.uint64)
            down = np.cumprod(np.full(size, _BASE_INV, dtype=np.uint64), dtype=np.uint64)
        one = np.ones(1, dtype=np.uint64)
        _POWERS[:] = [np.concatenate([one, up[:-1]]), np.concatenate([one, down[:-1]])]
    return _POWERS[0][:n], _POWERS[1][:n]


def _fmix64(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    mixed: np.ndarray = x ^ (x >> np.uint64(33))
    return mixed


def window_hashes(text: str, k: int) -> np.ndarray:
    """Unsigned 64-bit hashes of every k-character window of ``text``."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n = len(codes)
    up, down = _powers(n + 1)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(codes.astype(np.uint64) * up[:n], dtype=np.uint64, out=prefix[1:])
    return _fmix64((prefix[k:] - prefix[: n - k + 1]) * down[: n - k + 1])


def segments(normalized: str, settings: FingerprintSettings) -> tuple[int, ...]:
    """Winnowed k-gram hashes of the text's start (Schleimer et al. 2003).

    Hash every k-character window of the compact text and keep the smallest
    hash of each run of w consecutive windows. Any unchanged stretch of
    k + w - 1 characters then keeps at least one hash in common with the old
    text wherever an edit happened, which clause- or position-based chunks do
    not guarantee (one changed length moves every later boundary). Texts too
    short for a k-gram get the hash of the whole compact text.
    """
    return _segments(compact(normalized), settings)


def _segments(text: str, settings: FingerprintSettings) -> tuple[int, ...]:
    return _segments_at(text, settings)[0]


def _segments_at(
    text: str, settings: FingerprintSettings
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(distinct kept hashes in text order, where each first starts)."""
    k, w = settings.segment_chars, settings.segment_window
    if len(text) < k + w - 1:
        return ((hash64(text),), (0,)) if text else ((), ())
    grams = window_hashes(text, k)
    windows = np.lib.stride_tricks.sliding_window_view(grams, w)
    # The rightmost minimum of each window: a run of equal hashes yields one
    # fingerprint, and consecutive windows usually agree on it.
    at = np.arange(len(windows)) + (w - 1) - np.argmin(windows[:, ::-1], axis=1)
    picked = at[np.concatenate(([True], at[1:] != at[:-1]))]
    values = grams[picked].view(np.int64)
    # The first occurrence of each distinct hash, in text order.
    _, first = np.unique(values, return_index=True)
    first.sort()
    first = first[: settings.max_segments]
    return tuple(values[first].tolist()), tuple(picked[first].tolist())


def _features_fast(normalized: str, settings: FingerprintSettings) -> Counter[str]:
    # features() without the intermediate lists; identical result.
    toks = tokens(normalized)
    n = settings.feature_ngram
    if len(toks) < n or n < 1:
        return features(normalized, settings)
    counts = Counter(map(" ".join, zip(*(toks[i:] for i in range(n)), strict=False)))
    if settings.max_feature_weight:
        cap = settings.max_feature_weight
        counts = Counter({key: min(v, cap) for key, v in counts.items()})
    return counts


def fingerprint(
    text: str, settings: FingerprintSettings | None = None, key: TextKey | None = None
) -> Fingerprint:
    settings = settings or FingerprintSettings()
    key = key or text_key(text)
    norm = key.normalized
    compacted = compact(norm)
    hashes, positions = _segments_at(compacted, settings)
    return Fingerprint(
        normalized=norm,
        compact=compacted,
        norm_hash=key.norm_hash,
        simhash=to_signed64(simhash64(_features_fast(norm, settings))),
        segments=hashes,
        segment_pos=positions,
    )


@functools.lru_cache(maxsize=CACHED_TEXTS)
def shingle_codes(compact_text: str, size: int) -> np.ndarray:
    """Every ``size``-character shingle of the text as one integer, in text order.

    Up to 3 characters the code is exact (21 bits per code point), so set
    operations on codes are set operations on the shingles themselves;
    longer shingles get their 64-bit window hash. Integers in a numpy array
    take ~3 KB for a summary where a set of strings took ~37 KB, which is
    what lets this cache hold the stored revisions being re-verified.
    """
    codes = np.frombuffer(compact_text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(codes) < size:
        out = np.array([_whole_code(codes)] if len(codes) else [], dtype=np.uint64)
    elif size <= 3:
        wide = codes.astype(np.uint64)
        out = wide[: len(codes) - size + 1].copy()
        for j in range(1, size):
            out = (out << np.uint64(21)) | wide[j : len(codes) - size + 1 + j]
    else:
        out = window_hashes(compact_text, size)
    out.flags.writeable = False
    return out


def _whole_code(codes: np.ndarray) -> int:
    # A text shorter than a shingle is one shingle; it must not equal a
    # full-size shingle's code, so it is hashed into the high bit's half.
    return (hash64("".join(map(chr, codes.tolist()))) & ((1 << 63) - 1)) | (1 << 63)


# Re-cuts of one text share their opening: the hash of the first HEAD_CHARS
# compact characters finds them without a fingerprint (``articles.head_hash``).
HEAD_CHARS = 48


def head_key(compact_text: str) -> int | None:
    """The opening's hash, or None for a text too short to have one."""
    return hash64(compact_text[:HEAD_CHARS]) if len(compact_text) >= HEAD_CHARS else None


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & 0xFFFFFFFFFFFFFFFF).bit_count()


BAND_BITS = 16
BANDS = 4  # 4 bands of 16 bits: any two fingerprints within 3 bits share a band


def bands(simhash_value: int) -> tuple[int, ...]:
    unsigned = simhash_value & 0xFFFFFFFFFFFFFFFF
    mask = (1 << BAND_BITS) - 1
    return tuple((unsigned >> (BAND_BITS * i)) & mask for i in range(BANDS))
