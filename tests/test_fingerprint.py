"""Fingerprints: identical to the simhash package, robust, and crash-free."""

from __future__ import annotations

import pytest
import simhash
from hypothesis import given, settings
from hypothesis import strategies as st

from feedd.core.decide import MatchSettings, similarity
from feedd.core.fingerprint import (
    FingerprintSettings,
    bands,
    features,
    fingerprint,
    hamming,
    segments,
    simhash64,
)
from feedd.core.parse import parse_dump
from feedd.core.text import compact, hash64, hex64, normalize, to_signed64, to_unsigned64
from tests.support import seed_files

SETTINGS = FingerprintSettings()


def seed_texts() -> list[str]:
    return [i.text for f in seed_files() for i in parse_dump(f.read_bytes()).items]


def test_fast_path_equals_the_simhash_package_on_every_seed() -> None:
    for text in seed_texts():
        weighted = features(normalize(text), SETTINGS)
        assert simhash64(weighted) == simhash.Simhash(dict(weighted)).value


def test_fast_path_equals_the_package_for_heavy_weights() -> None:
    # Weights above the package's large_weight_cutoff (50) take its other code
    # path; up to 255 it still works under numpy 2, so compare there.
    weighted = {"甲乙": 60, "丙丁": 255, "abc": 1, "的 是": 51}
    assert simhash64(weighted) == simhash.Simhash(weighted).value


def test_a_feature_repeated_300_times_does_not_crash() -> None:
    for text in ("哈" * 300, "_" * 300, "abc " * 300, "哈哈" * 5000):
        fp = fingerprint(text)
        assert 0 <= to_unsigned64(fp.simhash) < 2**64


def test_values_fit_a_signed_bigint_and_print_as_16_hex() -> None:
    values = [fingerprint(t).simhash for t in seed_texts()]
    assert all(-(2**63) <= v < 2**63 for v in values)
    assert any(v < 0 for v in values), "some fingerprints are >= 2**63 unsigned"
    for v in values:
        assert len(hex64(v)) == 16 and to_signed64(to_unsigned64(v)) == v


def test_bands_cover_all_bits() -> None:
    v = fingerprint(seed_texts()[0]).simhash
    b = bands(v)
    assert sum(part << (16 * i) for i, part in enumerate(b)) == to_unsigned64(v)


def test_unrelated_seeds_are_far_apart() -> None:
    texts = list(dict.fromkeys(seed_texts()))
    fps = [fingerprint(t).simhash for t in texts]
    closest = min(hamming(a, b) for i, a in enumerate(fps) for b in fps[i + 1 :])
    assert closest > 3


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_deterministic(text: str) -> None:
    assert fingerprint(text) == fingerprint(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.sampled_from([" ", "  ", "\t", "\u3000", " \n "]))
def test_stable_under_whitespace_changes(text: str, space: str) -> None:
    spaced = space.join(text.split(" "))
    assert fingerprint(spaced).norm_hash == fingerprint(text.replace(" ", " ")).norm_hash or (
        normalize(spaced) != normalize(text)
    )
    assert fingerprint(" " + text + "  ").simhash == fingerprint(text).simhash
    assert fingerprint(text.replace(" ", space)).simhash == fingerprint(text).simhash


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab. …\t\u3000\x1c\n.。ＡＢ")), max_size=30))
def test_normalize_matches_its_regex_definition(text: str) -> None:
    import re
    import unicodedata

    reference = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()
    reference = re.sub(r"(?:\s*\.{2,})+\s*$", "", reference)
    assert normalize(text) == reference


# --- the vectorised paths against their plain definitions ---------------------------

_TEXTS = st.text(
    alphabet=st.sampled_from(list("简介背景模型注意力的是在了一训练数据abcxyz019 ，。")),
    max_size=80,
)


def _reference_similarity(a: str, b: str, s: MatchSettings) -> tuple[float, float]:
    """Aligned containment and jaccard over sets of shingle strings, as defined."""

    def grams(text: str) -> set[str]:
        if len(text) <= s.shingle_size:
            return {text} if text else set()
        return {text[i : i + s.shingle_size] for i in range(len(text) - s.shingle_size + 1)}

    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    window = long_[: int(len(short) * (1 + s.prefix_slack)) + s.shingle_size]
    g_short, g_window, g_long = grams(short), grams(window), grams(long_)
    if not g_short:
        return 0.0, 0.0
    union = len(g_short | g_long)
    return len(g_short & g_window) / len(g_short), len(g_short & g_long) / union


@settings(max_examples=300, deadline=None)
@given(_TEXTS, _TEXTS, st.integers(min_value=1, max_value=5))
def test_similarity_equals_its_definition_over_shingle_strings(a: str, b: str, size: int) -> None:
    s = MatchSettings(shingle_size=size)
    ca, cb = compact(a), compact(b)
    assert similarity(ca, cb, s) == pytest.approx(_reference_similarity(ca, cb, s), abs=1e-12)


def test_similarity_equals_its_definition_on_the_seeds() -> None:
    s = MatchSettings()
    texts = [compact(normalize(t)) for t in seed_texts()]
    for a in texts[:25]:
        for b in texts:
            assert similarity(a, b, s) == pytest.approx(_reference_similarity(a, b, s), abs=1e-12)


def _reference_segments(text: str, fs: FingerprintSettings) -> tuple[int, ...]:
    """Winnowing as Schleimer et al. define it, one window at a time, in Python ints."""
    k, w = fs.segment_chars, fs.segment_window
    mask = (1 << 64) - 1
    if len(text) < k + w - 1:
        return (hash64(text),) if text else ()

    def fmix(x: int) -> int:
        x ^= x >> 33
        x = (x * 0xFF51AFD7ED558CCD) & mask
        x ^= x >> 33
        x = (x * 0xC4CEB9FE1A85EC53) & mask
        return x ^ (x >> 33)

    base = 0x9E3779B97F4A7C15
    grams = [
        fmix(sum(ord(c) * pow(base, j, 1 << 64) for j, c in enumerate(text[i : i + k])) & mask)
        for i in range(len(text) - k + 1)
    ]
    out: list[int] = []
    last = -1
    for start in range(len(grams) - w + 1):
        window = grams[start : start + w]
        at = start + w - 1 - window[::-1].index(min(window))
        if at != last:
            last = at
            if to_signed64(grams[at]) not in out:
                out.append(to_signed64(grams[at]))
            if len(out) >= fs.max_segments:
                break
    return tuple(out)


@settings(max_examples=200, deadline=None)
@given(_TEXTS)
def test_segments_equal_their_definition(text: str) -> None:
    assert segments(normalize(text), SETTINGS) == _reference_segments(
        compact(normalize(text)), SETTINGS
    )


def test_segments_equal_their_definition_on_the_seeds() -> None:
    for text in seed_texts():
        norm = normalize(text)
        assert segments(norm, SETTINGS) == _reference_segments(compact(norm), SETTINGS)


def test_the_digest_cache_starting_over_changes_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    import feedd.core.fingerprint as fp

    monkeypatch.setattr(fp, "_DIGESTS_LIMIT", 50)
    fp._DIGESTS.clear()
    for text in seed_texts()[:10]:
        weighted = features(normalize(text), SETTINGS)
        assert simhash64(weighted) == simhash.Simhash(dict(weighted)).value
        assert len(fp._DIGESTS) <= max(50, len(weighted))
