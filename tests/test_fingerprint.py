"""Fingerprints: identical to the simhash package, robust, and crash-free."""

from __future__ import annotations

import numpy as np
import pytest
import simhash
from hypothesis import given, settings
from hypothesis import strategies as st

from feedd.core.fingerprint import (
    FingerprintSettings,
    bands,
    features,
    fingerprint,
    hamming,
    segments,
    shingle_codes,
    simhash64,
)
from feedd.core.parse import parse_dump
from feedd.core.text import compact, hash64, hex64, normalize, to_signed64, to_unsigned64
from feedd.core.verify import MatchSettings, contained
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


def _reference_contained(
    a: str, weights: list[float], b: str, s: MatchSettings, anywhere: bool
) -> tuple[float, float, float]:
    """Weighted aligned containment over lists of shingle strings, as defined:
    the share (by weight) of a's first n shingles found among b's opening."""

    def grams(text: str) -> list[str]:
        if len(text) < s.shingle_size:
            return [text] if text else []
        return [text[i : i + s.shingle_size] for i in range(len(text) - s.shingle_size + 1)]

    ga, gb = grams(a), grams(b)
    n = min(len(ga), int(len(gb) * (1 + s.prefix_slack)) + 1)
    if n <= 0:
        return 0.0, 0.0, 0.0
    window = set(gb if anywhere else gb[: int(n * (1 + s.prefix_slack)) + 1])
    present = [g in window for g in ga[:n]]
    total = sum(weights[:n])
    mass = sum(w for w, p in zip(weights[:n], present, strict=True) if p)
    return (mass / total if total else 0.0), mass, sum(present) / n


@settings(max_examples=300, deadline=None)
@given(
    _TEXTS,
    _TEXTS,
    st.integers(min_value=1, max_value=5),
    st.booleans(),
    st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=80, max_size=80),
)
def test_contained_equals_its_definition_over_shingle_strings(
    a: str, b: str, size: int, anywhere: bool, weights: list[float]
) -> None:
    s = MatchSettings(shingle_size=size)
    ca, cb = compact(a), compact(b)
    codes_a, codes_b = shingle_codes(ca, size), shingle_codes(cb, size)
    w = np.asarray(weights[: len(codes_a)], dtype=np.float64)
    got = contained(codes_a, w, codes_b, s.prefix_slack, anywhere=anywhere)
    want = _reference_contained(ca, weights[: len(codes_a)], cb, s, anywhere)
    assert got == pytest.approx(want, abs=1e-9)


def test_contained_equals_its_definition_on_the_seeds() -> None:
    s = MatchSettings()
    texts = [compact(normalize(t)) for t in seed_texts()]
    for a in texts[:12]:
        codes_a = shingle_codes(a, s.shingle_size)
        w = np.ones(len(codes_a))
        for b in texts:
            got = contained(codes_a, w, shingle_codes(b, s.shingle_size), s.prefix_slack)
            want = _reference_contained(a, [1.0] * len(codes_a), b, s, False)
            assert got == pytest.approx(want, abs=1e-9)


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
