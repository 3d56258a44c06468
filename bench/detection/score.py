"""Score a system's export against the generator's labels.

    python bench/detection/score.py --export EXPORT.jsonl --labels labels.jsonl [--json]
    python bench/detection/score.py --export feedd=a.jsonl --export baseline=b.jsonl \\
        --labels labels.jsonl

Sightings are joined to labels on (dump, line). Kind metrics count a lost line
as a miss; precision counts only the lines the system did report. The confusion
matrix holds the matched lines (true kind x predicted kind).

``revision_accuracy`` compares revision numbers literally, which is meaningful
for systems that number revisions from 1 in order of first appearance and
re-use a number when a text comes back (feedd's contract). The labels follow
the re-cut rule of generate.Labeller: a line that shows its revision's text cut
at another length (one compact text a prefix of the other, the shorter one
ending in an ellipsis) is a ``repeat`` of that revision and keeps its number.
``recut_accuracy`` is the share of those re-cut lines (labels with ``"recut":
true``) that the system called repeats. ``revert_recall`` does not depend on
numbering: a line that returns to an earlier true revision counts when the
system calls it an update of the same article and revision it gave that
revision's first line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

KINDS = ("new", "repeat", "update")

Key = tuple[str, int]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _dump_order(name: str) -> tuple[int, str]:
    prefix = name.split("_", 1)[0]
    return (int(prefix) if prefix.isdigit() else -1, name)


def score(export_rows: list[dict[str, Any]], labels: list[dict[str, Any]]) -> dict[str, Any]:
    truth: dict[Key, dict[str, Any]] = {}
    for row in labels:
        truth[(str(row["dump"]), int(row["line"]))] = row

    predicted: dict[Key, tuple[str, str, int]] = {}  # key -> (system article, kind, revision)
    spurious = 0
    for article in export_rows:
        for sighting in article.get("sightings", []):
            key = (str(sighting["dump"]), int(sighting["line"]))
            if key not in truth or key in predicted:
                spurious += 1  # a noise or header line, or one line reported twice
                continue
            predicted[key] = (str(article["id"]), str(sighting["kind"]), int(sighting["revision"]))

    true_per_system: dict[str, set[str]] = defaultdict(set)
    system_per_true: dict[str, set[str]] = defaultdict(set)
    for key, (system_id, _, _) in predicted.items():
        true_id = str(truth[key]["article"])
        true_per_system[system_id].add(true_id)
        system_per_true[true_id].add(system_id)
    merged = [len(ids) for ids in true_per_system.values() if len(ids) > 1]
    split = [len(ids) for ids in system_per_true.values() if len(ids) > 1]

    confusion = {t: dict.fromkeys(KINDS, 0) for t in KINDS}
    true_kinds: Counter[str] = Counter()
    predicted_kinds: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    revision_hits = 0
    recut_lines = recut_hits = 0
    by_edit: dict[str, dict[str, Any]] = {}
    for key, row in truth.items():
        true_kind = str(row["kind"])
        true_kinds[true_kind] += 1
        guess = predicted.get(key)
        edit = row.get("edit")
        if edit:
            entry = by_edit.setdefault(str(edit), {"lines": 0, "kind_correct": 0})
            entry["lines"] += 1
        recut = bool(row.get("recut"))
        recut_lines += recut
        if guess is None:
            continue
        _, kind, revision = guess
        recut_hits += recut and kind == "repeat"
        if kind in KINDS:
            confusion[true_kind][kind] += 1
        predicted_kinds[kind] += 1
        if kind == true_kind:
            hits[true_kind] += 1
            if edit:
                by_edit[str(edit)]["kind_correct"] += 1
        if revision == int(row["revision"]):
            revision_hits += 1
    for entry in by_edit.values():
        entry["kind_accuracy"] = _ratio(entry["kind_correct"], entry["lines"])

    reverts, revert_hits = _reverts(truth, predicted)
    return {
        "labelled_lines": len(truth),
        "matched_lines": len(predicted),
        "lost_lines": len(truth) - len(predicted),
        "spurious_lines": spurious,
        "true_articles": len({str(row["article"]) for row in truth.values()}),
        "system_articles": len(export_rows),
        "false_merges": len(merged),
        "false_merge_extra": sum(n - 1 for n in merged),
        "false_splits": len(split),
        "false_split_extra": sum(n - 1 for n in split),
        "new_precision": _ratio(confusion["new"]["new"], predicted_kinds["new"]),
        "new_recall": _ratio(hits["new"], true_kinds["new"]),
        "update_precision": _ratio(confusion["update"]["update"], predicted_kinds["update"]),
        "update_recall": _ratio(hits["update"], true_kinds["update"]),
        "repeat_accuracy": _ratio(hits["repeat"], true_kinds["repeat"]),
        "revision_accuracy": _ratio(revision_hits, len(truth)),
        "recut_lines": recut_lines,
        "recut_hits": recut_hits,
        "recut_accuracy": _ratio(recut_hits, recut_lines),
        "revert_lines": reverts,
        "revert_recall": _ratio(revert_hits, reverts),
        "confusion": confusion,
        "true_kinds": {k: true_kinds[k] for k in KINDS},
        "predicted_kinds": {k: predicted_kinds[k] for k in KINDS},
        "by_edit": dict(sorted(by_edit.items())),
    }


def _reverts(
    truth: dict[Key, dict[str, Any]], predicted: dict[Key, tuple[str, str, int]]
) -> tuple[int, int]:
    """Lines that go back to an earlier text of their article, and how many were seen so."""
    first_line: dict[tuple[str, int], Key] = {}
    latest: dict[str, int] = {}
    reverts = hits = 0
    for key in sorted(truth, key=lambda k: (_dump_order(k[0]), k[1])):
        row = truth[key]
        revision_key = (str(row["article"]), int(row["revision"]))
        if revision_key not in first_line:
            first_line[revision_key] = key
        elif row["kind"] == "update" and latest.get(revision_key[0]) != revision_key[1]:
            reverts += 1
            guess, earlier = predicted.get(key), predicted.get(first_line[revision_key])
            if guess and earlier and guess[1] == "update":
                hits += (guess[0], guess[2]) == (earlier[0], earlier[2])
        latest[revision_key[0]] = revision_key[1]
    return reverts, hits


_ROWS: tuple[tuple[str, str], ...] = (
    ("labelled_lines", "labelled lines"),
    ("matched_lines", "matched lines"),
    ("lost_lines", "lost lines"),
    ("spurious_lines", "spurious lines"),
    ("true_articles", "true articles"),
    ("system_articles", "system articles"),
    ("false_merges", "false merges (articles)"),
    ("false_merge_extra", "false merges (extra true articles)"),
    ("false_splits", "false splits (true articles)"),
    ("false_split_extra", "false splits (extra pieces)"),
    ("new_precision", "new precision"),
    ("new_recall", "new recall"),
    ("update_precision", "update precision"),
    ("update_recall", "update recall"),
    ("repeat_accuracy", "repeat accuracy"),
    ("revision_accuracy", "revision accuracy"),
    ("recut_lines", "re-cut repeat lines"),
    ("recut_accuracy", "re-cut repeat accuracy"),
    ("revert_lines", "revert lines"),
    ("revert_recall", "revert recall"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """Systems side by side: one column per system, one row per metric."""
    systems = list(results)
    rows: list[tuple[str, list[str]]] = []
    for key, title in _ROWS:
        rows.append((title, [_cell(results[s].get(key)) for s in systems]))
    for true_kind in KINDS:
        for kind in KINDS:
            cells = [_cell(results[s]["confusion"][true_kind][kind]) for s in systems]
            rows.append((f"confusion true {true_kind} -> {kind}", cells))
    edits = sorted({e for s in systems for e in results[s].get("by_edit", {})})
    for edit in edits:
        lines = max(results[s]["by_edit"].get(edit, {}).get("lines", 0) for s in systems)
        cells = [_cell(results[s]["by_edit"].get(edit, {}).get("kind_accuracy")) for s in systems]
        rows.append((f"kind accuracy, edit={edit} (n={lines})", cells))

    first = max(len("metric"), *(len(title) for title, _ in rows))
    widths = [max(len(s), *(len(cells[i]) for _, cells in rows)) for i, s in enumerate(systems)]

    def line(title: str, cells: Sequence[str]) -> str:
        padded = (c.rjust(w) for c, w in zip(cells, widths, strict=True))
        return "  ".join([title.ljust(first), *padded])

    out = [line("metric", systems), line("-" * first, ["-" * w for w in widths])]
    out += [line(title, cells) for title, cells in rows]
    return "\n".join(out)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _named(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return name, Path(path)
    return Path(spec).stem, Path(spec)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score detection exports against labels.")
    parser.add_argument(
        "--export",
        action="append",
        required=True,
        metavar="[NAME=]FILE",
        help="a system's export JSONL; repeat to compare systems side by side",
    )
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    labels = read_jsonl(args.labels)
    results: dict[str, dict[str, Any]] = {}
    for spec in args.export:
        name, path = _named(spec)
        results[name] = score(read_jsonl(path), labels)
    if args.json:
        single: Iterable[Any] = results.values()
        payload = next(iter(single)) if len(results) == 1 else results
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
