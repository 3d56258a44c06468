"""Fingerprint cost per item: feedd's vectorised simhash against the simhash package.

    python bench/fingerprint.py                  # 2,000 distinct stream texts
    python bench/fingerprint.py --items 200 --json

On distinct item texts of the benchmark stream, microseconds per item for:

* ``text_key``: what an exact repeat costs (normalise + 64-bit hash), on its
  first sighting and, cached, on a line the listing shows again;
* ``fingerprint``: all of a new text's fingerprints (simhash, segments, ...);
* ``simhash64(features(...))``: feedd's simhash alone, features included;
* ``simhash64`` and ``simhash.Simhash`` over the same precomputed features
  (the package is the reference: both must give identical values);
* ``simhash.Simhash(text)`` with the package's defaults (its own features).

Each figure is the best of ``--repeat`` passes over all items, each pass
with feedd's caches emptied first (md5 digests of features, text keys), so the
figures are a first sighting's cost. The values of
feedd's simhash and the reference are compared on every item; a mismatch is
reported as a figure and makes the script exit 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stream  # noqa: E402
from common import Report  # noqa: E402


def distinct_texts(count: int, seed: int) -> list[str]:
    texts: dict[str, None] = {}
    for dump in stream.dumps(stream.StreamSettings(lines=10**9, seed=seed)):
        for line in dump.data.decode("utf-8").split("\n")[3:]:
            if line and not stream.is_noise(line):
                texts.setdefault(line, None)
        if len(texts) >= count:
            break
    return list(texts)[:count]


def cold() -> None:
    """Empty feedd's caches, so that every pass pays what a first sighting pays."""
    from feedd.core import fingerprint

    fingerprint.text_key.cache_clear()
    fingerprint.shingle_codes.cache_clear()
    fingerprint._DIGESTS.clear()


def best_us(fn: Callable[[Any], Any], items: Sequence[Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        cold()
        t0 = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best / len(items)


def _warm_us(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    for item in items:
        fn(item)
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return 1e6 * (time.perf_counter() - t0) / len(items)


def run(count: int, seed: int, repeat: int) -> Report:
    import simhash

    from feedd.core.fingerprint import (
        FingerprintSettings,
        features,
        fingerprint,
        simhash64,
        text_key,
    )
    from feedd.core.text import normalize

    settings = FingerprintSettings()
    texts = distinct_texts(count, seed)
    normalized = [normalize(t) for t in texts]
    feats = [list(features(n, settings).items()) for n in normalized]
    report = Report("fingerprint", params={"items": len(texts), "seed": seed, "repeat": repeat})
    report.figure("mean characters per item", sum(map(len, texts)) / len(texts))
    report.figure("mean features per item", sum(map(len, feats)) / len(feats))

    mismatches = overflows = 0
    for f in feats:
        try:
            reference = simhash.Simhash(f).value
        except OverflowError:  # simhash 2.1.2 under numpy 2, a weight above 255
            overflows += 1
            continue
        mismatches += simhash64(f) != reference

    def textbook(text: str) -> Any:
        try:
            return simhash.Simhash(text)
        except OverflowError:
            return None

    report.figure("text_key, first sighting", best_us(text_key, texts, repeat), "us/item")
    # A listing shows the same line in dump after dump: text_key is cached.
    text_key(texts[0])
    report.figure(
        "text_key, repeated line (cached)",
        min(_warm_us(text_key, texts) for _ in range(repeat)),
        "us/item",
    )
    report.figure(
        "fingerprint (new-text path)",
        best_us(lambda t: fingerprint(t, settings), texts, repeat),
        "us/item",
    )
    report.figure(
        "simhash64(features(normalized))",
        best_us(lambda n: simhash64(features(n, settings)), normalized, repeat),
        "us/item",
    )
    feedd_same = best_us(simhash64, feats, repeat)
    reference_same = best_us(lambda f: simhash.Simhash(f), feats, repeat)
    report.figure("simhash64 on precomputed features", feedd_same, "us/item")
    report.figure("simhash.Simhash on the same features", reference_same, "us/item")
    report.figure(
        "simhash.Simhash(text), package defaults", best_us(textbook, texts, repeat), "us/item"
    )
    report.figure("speed-up on the same features", reference_same / feedd_same, "x")
    report.figure("values identical to the reference", len(feats) - mismatches - overflows)
    report.figure("values different from the reference", mismatches)
    report.figure("reference overflowed (weight > 255)", overflows)
    report.target("identical simhash values", mismatches, "0 different", mismatches == 0)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000, help="distinct texts to fingerprint")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best one counts")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run(args.items, args.seed, args.repeat)
    report.emit(args.json)
    return 0 if all(t["met"] for t in report.targets) else 1


if __name__ == "__main__":
    sys.exit(main())
