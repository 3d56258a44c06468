"""Fingerprints: identical to the simhash package, robust, and crash-free."""

from __future__ import annotations

import simhash
from hypothesis import given, settings
from hypothesis import strategies as st

from feedd.core.fingerprint import (
    FingerprintSettings,
    bands,
    features,
    fingerprint,
    hamming,
    simhash64,
)
from feedd.core.parse import parse_dump
from feedd.core.text import hex64, normalize, to_signed64, to_unsigned64
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
