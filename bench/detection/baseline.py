"""The textbook near-duplicate pipeline, as a baseline for the detection benchmark.

    python bench/detection/baseline.py --dumps DIR --out baseline.jsonl

For every item line, in dump order: ``simhash.Simhash(text)`` with the
package's defaults, looked up in a ``simhash.SimhashIndex`` with k=3. A hit
means the same article: a repeat when the raw text equals that article's latest
text, otherwise an update with a new revision. No hit means a new article.
Every revision's fingerprint is indexed under its article, so an article is
found through any of its texts. No normalisation, no verification, no memory of
older revisions: that is what makes it the textbook version.

Parsing is deliberately simple: the three header lines are skipped, and a line
is noise when it is blank, or is short (<= 24 characters), holds no CJK
character and matches ``^(\\S{1,12}|\\d{4}-\\d{2}-\\d{2}|\\d+( \\d+)*)$`` (a
category word, a date, a pager). Everything else is an item.

The output is feedd's export format, with synthetic times (dump NNN is seen at
2026-01-01T00:00Z plus NNN hours) so the output does not depend on file mtimes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import simhash

HEADER_LINES = 3
K = 3
DUMP_NAME = re.compile(r"(\d+)_[0-9a-f]{16}\.txt")
_NOISE = re.compile(r"^(\S{1,12}|\d{4}-\d{2}-\d{2}|\d+( \d+)*)$")
_CJK = re.compile(r"[\u4e00-\u9fff]")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def is_noise(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return True
    return len(stripped) <= 24 and not _CJK.search(stripped) and bool(_NOISE.match(stripped))


def dump_files(dump_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in dump_dir.iterdir():
        match = DUMP_NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_items(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, text) of each item line."""
    lines = path.read_bytes().decode("utf-8").split("\n")
    items = []
    for index, raw in enumerate(lines[HEADER_LINES:], start=HEADER_LINES + 1):
        text = raw.rstrip("\r")
        if not is_noise(text):
            items.append((index, text))
    return items


def fingerprint(text: str) -> simhash.Simhash:
    try:
        return simhash.Simhash(text)
    except OverflowError:
        # simhash 2.1.2 under numpy 2 overflows when one feature occurs more
        # than 255 times; capping the weight keeps the fingerprint's meaning.
        features = simhash.Simhash(0)._tokenize(text)
        counts: dict[str, int] = {}
        for feature in features:
            counts[feature] = min(counts.get(feature, 0) + 1, 255)
        return simhash.Simhash(list(counts.items()))


def run_baseline(
    dump_dir: Path | str, read: Callable[[Path], list[tuple[int, str]]] = read_items
) -> list[dict[str, Any]]:
    """The baseline's export rows; ``read`` gives a dump's item lines (default: read_items)."""
    index = simhash.SimhashIndex([], k=K)
    articles: dict[str, dict[str, Any]] = {}
    fingerprints: dict[str, list[simhash.Simhash]] = {}
    for number, path in dump_files(Path(dump_dir)):
        seen_at = (EPOCH + timedelta(hours=number)).isoformat()
        for line, text in read(path):
            fp = fingerprint(text)
            hits = index.get_near_dups(fp)
            if hits:
                # Several hits: the closest fingerprint wins, then the oldest article.
                article_id = min(
                    hits,
                    key=lambda a: (min(fp.distance(o) for o in fingerprints[a]), int(a[1:])),
                )
                article = articles[article_id]
                latest = article["revisions"][-1]
                if text == latest["text"]:
                    kind, revision = "repeat", latest["number"]
                else:
                    kind, revision = "update", latest["number"] + 1
                    article["revisions"].append(_revision(revision, text, fp, seen_at))
                    index.add(article_id, fp)
                    fingerprints[article_id].append(fp)
            else:
                article_id = f"b{len(articles) + 1}"
                kind, revision = "new", 1
                articles[article_id] = {
                    "id": article_id,
                    "title": text[:40],
                    "first_seen": seen_at,
                    "last_seen": seen_at,
                    "revisions": [_revision(1, text, fp, seen_at)],
                    "sightings": [],
                }
                index.add(article_id, fp)
                fingerprints[article_id] = [fp]
                article = articles[article_id]
            article["last_seen"] = seen_at
            article["sightings"].append(
                {
                    "dump": path.name,
                    "line": line,
                    "revision": revision,
                    "kind": kind,
                    "seen_at": seen_at,
                }
            )
    return list(articles.values())


def _revision(number: int, text: str, fp: simhash.Simhash, seen_at: str) -> dict[str, Any]:
    return {"number": number, "text": text, "simhash": f"{fp.value:016x}", "first_seen": seen_at}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the textbook simhash baseline.")
    parser.add_argument("--dumps", type=Path, required=True, help="folder of NNN_<hex>.txt")
    parser.add_argument("--out", type=Path, required=True, help="export JSONL to write")
    args = parser.parse_args(argv)
    rows = run_baseline(args.dumps)
    with open(args.out, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} articles, {sum(len(r['sightings']) for r in rows)} sightings -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
