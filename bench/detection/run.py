"""The detection benchmark in one command: generate, run feedd and the baseline, score.

    python bench/detection/run.py [--seed 23] [--dumps 150] [--articles 150]
        [--out bench/out/detection] [--set match.verify_threshold=0.7 ...] [--json]
    python bench/detection/run.py --sweep [--tune-seed 11 [--tune-seed 12 ...]] [--json]

The first form regenerates the labelled corpus for ``--seed`` (the report
seed), runs feedd on a fresh SQLite database (built through ``feedd.app.build``
with the config overrides of ``--set``) and the textbook simhash baseline,
scores both and prints them side by side, with the margins of feedd's
verification and the lines it got wrong. ``--sweep`` runs feedd once per
setting of a one-at-a-time grid around the defaults on the tuning seed: the
defaults are chosen from that table (docs/detection.md), then reported on
another seed.

The targets are asserted by tests/test_detection.py, not here: this script
exits 0 unless it crashes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_OUT = REPO_ROOT / "bench" / "out" / "detection"
REPORT_SEED = 23
TUNE_SEED = 11


def _sibling(name: str) -> ModuleType:
    """bench/detection/<name>.py under a unique module name (no sys.path games)."""
    unique = f"bench_detection_{name}"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


generate = _sibling("generate")
score_mod = _sibling("score")
baseline = _sibling("baseline")

Key = tuple[str, int]  # (dump name, line)
KINDS = score_mod.KINDS

# One setting at a time around the defaults; the ablations show what each
# half of the candidate search (simhash radius, winnowed segments) contributes.
# segment_chars=100000 leaves every text shorter than one k-gram, so each
# revision gets a single hash of its whole compact text: no winnowing at all.
SWEEP: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("match.verify_threshold", (0.6, 0.7, 0.75, 0.8, 0.9)),
    ("match.simhash_k", (0, 2, 3)),
    ("fingerprint.segment_chars", (6, 8, 10, 12, 16, 100_000)),
    ("fingerprint.segment_window", (5, 10, 20)),
    ("fingerprint.max_segments", (8, 16, 24, 48)),
    ("fingerprint.feature_ngram", (1, 2, 3)),
    ("match.shingle_size", (2, 3, 4)),
)
ABLATION_NOTES = {
    ("match.simhash_k", 0): "segments only",
    ("fingerprint.segment_chars", 100_000): "simhash + whole-text hash, no winnowing",
}


@dataclass
class Corpus:
    path: Path
    seed: int
    dumps: int
    articles: int
    summary: str
    seconds: float
    labels: list[dict[str, Any]]
    groups: dict[str, list[str]]  # true article -> its hard-negative groups


@dataclass
class FeeddRun:
    rows: list[dict[str, Any]]
    seconds: float
    decisions: dict[Key, Any] = field(default_factory=dict)  # feedd.core.decide.Decision
    uid_of: dict[int, str] = field(default_factory=dict)  # internal article id -> uid


def make_corpus(out: Path, seed: int, dumps: int, articles: int, easy: bool = False) -> Corpus:
    """Generate the corpus for this seed into out/corpus-<seed>, replacing an old one."""
    folder = out / f"corpus-{seed}-{dumps}x{articles}{'-easy' if easy else ''}"
    if folder.exists():
        # Only what the generator writes: never a folder someone else owns.
        owned = [p for p in folder.iterdir() if p.name in ("labels.jsonl", "articles.jsonl")]
        owned += [p for p in folder.glob("*.txt") if baseline.DUMP_NAME.fullmatch(p.name)]
        if len(owned) != len(list(folder.iterdir())):
            raise SystemExit(f"{folder} holds files the generator did not write; move them")
        shutil.rmtree(folder)
    settings_cls = generate.StreamSettings
    settings = (
        settings_cls.easy(dumps, articles) if easy else settings_cls(dumps=dumps, articles=articles)
    )
    started = time.perf_counter()
    stream, labels, entering = generate.generate(seed, settings)
    generate.write(folder, stream, labels, entering)
    seconds = time.perf_counter() - started
    groups = {a.aid: list(a.groups) for a in entering if a.aid}
    return Corpus(
        folder,
        seed,
        dumps,
        articles,
        generate.summary(stream, labels),
        seconds,
        score_mod.read_jsonl(folder / "labels.jsonl"),
        groups,
    )


def dump_paths(folder: Path) -> list[Path]:
    return [path for _, path in baseline.dump_files(folder)]


def run_feedd(corpus: Path, overrides: dict[str, Any] | None = None) -> FeeddRun:
    """feedd's default pipeline, on a fresh SQLite database, as `feedd backfill` runs it."""
    from feedd.app import build
    from feedd.cli import _article_json
    from feedd.config import load_config

    with tempfile.TemporaryDirectory(prefix="feedd-bench-") as tmp:
        config = load_config(
            None,
            env={},
            overrides={"database.url": f"sqlite:///{tmp}/feedd.db", **(overrides or {})},
        )
        app = build(config)
        try:
            started = time.perf_counter()
            results = app.ingester.ingest_paths(dump_paths(corpus))
            seconds = time.perf_counter() - started
            exported = list(app.store.export())
        finally:
            app.close()
    rows = [_article_json(a, full=True) for a in exported]
    # Decisions come in item order; so do a dump's sightings sorted by line.
    lines: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        for sighting in row["sightings"]:
            lines[sighting["dump"]].append(int(sighting["line"]))
    decisions: dict[Key, Any] = {}
    for result in results:
        numbers = sorted(lines.get(result.name, []))
        if result.status == "ingested" and len(numbers) == len(result.decisions):
            decisions.update(
                ((result.name, n), d) for n, d in zip(numbers, result.decisions, strict=True)
            )
    return FeeddRun(rows, seconds, decisions, {a.id: a.uid for a in exported})


def run_baseline(corpus: Path) -> tuple[list[dict[str, Any]], float]:
    started = time.perf_counter()
    rows = baseline.run_baseline(corpus)
    return rows, time.perf_counter() - started


# ---------------------------------------------------------------------------
# Diagnostics: where feedd's verification sits between updates and hard negatives


def _truth_of_systems(rows: list[dict[str, Any]], truth: dict[Key, dict[str, Any]]) -> dict:
    """System article uid -> the true article most of its sightings belong to."""
    out: dict[str, str] = {}
    for row in rows:
        votes = Counter(
            truth[key]["article"]
            for s in row["sightings"]
            if (key := (s["dump"], int(s["line"]))) in truth
        )
        if votes:
            out[row["id"]] = votes.most_common(1)[0][0]
    return out


def margins(run: FeeddRun, corpus: Corpus) -> dict[str, Any]:
    """How far apart true updates and different articles are, as feedd measured them.

    For every line decided by verification (not by exact text): the best
    containment among candidates of its own true article, and the best among
    candidates of other articles. A candidate miss is an update line whose true
    article was not among the candidates at all (the index did not find it).
    """
    truth = {(str(r["dump"]), int(r["line"])): r for r in corpus.labels}
    system_truth = _truth_of_systems(run.rows, truth)
    own: list[tuple[float, Key]] = []
    other: list[tuple[float, Key, str]] = []
    candidate_misses: list[Key] = []
    verified = candidates = 0
    for key, decision in run.decisions.items():
        if not decision.scores and decision.reason.startswith(("same normalised", "text changed")):
            continue
        row = truth.get(key)
        if row is None:
            continue
        verified += 1
        candidates += len(decision.scores)
        mine, theirs = [], []
        for s in decision.scores:
            true_article = system_truth.get(run.uid_of.get(s.article_id, ""))
            (mine if true_article == row["article"] else theirs).append(s.containment)
            if true_article != row["article"]:
                other.append((s.containment, key, true_article or "?"))
        if row["kind"] == "update":
            if mine:
                own.append((max(mine), key))
            else:
                candidate_misses.append(key)
    own.sort()
    other.sort(reverse=True)

    def groups_of(article: str) -> list[str]:
        return corpus.groups.get(article, [])

    return {
        "verified_lines": verified,
        "candidates_per_verified_line": round(candidates / verified, 2) if verified else None,
        "update_lines_verified": len(own) + len(candidate_misses),
        "update_candidate_misses": len(candidate_misses),
        "lowest_update_containment": own[0][0] if own else None,
        "lowest_update_line": list(own[0][1]) if own else None,
        "update_containment_p01": own[len(own) // 100][0] if own else None,
        "highest_other_containment": other[0][0] if other else None,
        "highest_other_line": list(other[0][1]) if other else None,
        "highest_other_pair_groups": (
            sorted(set(groups_of(truth[other[0][1]]["article"])) | set(groups_of(other[0][2])))
            if other
            else None
        ),
        "other_above_0.6": sum(1 for c, _, _ in other if c >= 0.6),
        "other_above_0.7": sum(1 for c, _, _ in other if c >= 0.7),
    }


def mistakes(run: FeeddRun, corpus: Corpus, limit: int) -> list[dict[str, Any]]:
    """Lines whose kind or article feedd got wrong, first ones first."""
    truth = {(str(r["dump"]), int(r["line"])): r for r in corpus.labels}
    system_truth = _truth_of_systems(run.rows, truth)
    first_system: dict[str, str] = {}  # true article -> the system article of its first line
    predicted: dict[Key, tuple[str, str]] = {}
    for row in run.rows:
        for s in row["sightings"]:
            predicted[(s["dump"], int(s["line"]))] = (row["id"], s["kind"])
    out: list[dict[str, Any]] = []
    texts: dict[str, list[str]] = {}
    pieces: set[str] = set()  # system articles already reported as a split-off piece
    for key in sorted(truth, key=lambda k: (k[0], k[1])):
        row = truth[key]
        system, kind = predicted.get(key, ("", "lost"))
        first_system.setdefault(row["article"], system)
        merged = system_truth.get(system) != row["article"]
        split = system != first_system[row["article"]] and system not in pieces
        if split:
            pieces.add(system)
        if kind == row["kind"] and not merged and not split:
            continue
        if len(out) >= limit:
            break
        if key[0] not in texts:
            texts[key[0]] = (corpus.path / key[0]).read_text(encoding="utf-8").split("\n")
        decision = run.decisions.get(key)
        out.append(
            {
                "dump": key[0],
                "line": key[1],
                "true_article": row["article"],
                "true_kind": row["kind"],
                "edit": row.get("edit"),
                "edits": row.get("edits", []),
                "groups": corpus.groups.get(row["article"], []),
                "predicted_kind": kind,
                "predicted_article_is": system_truth.get(system, "?"),
                "reason": decision.reason if decision else None,
                "scores": [
                    {
                        "article": system_truth.get(run.uid_of.get(s.article_id, ""), "?"),
                        "revision": s.revision_number,
                        "distance": s.distance,
                        "shared_segments": s.shared_segments,
                        "containment": s.containment,
                        "jaccard": s.jaccard,
                    }
                    for s in (decision.scores if decision else ())
                ][:5],
                "text": texts[key[0]][key[1] - 1][:120],
            }
        )
    return out


# ---------------------------------------------------------------------------
# Printing


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_report(report: dict[str, Any]) -> str:
    out = [
        f"corpus: seed {report['seed']}, {report['corpus']}",
        f"machine: {report['machine']}",
        f"feedd overrides: {report['overrides'] or 'none (defaults)'}",
        "",
        score_mod.format_table(report["systems"]),
        "",
        "time (s): "
        + ", ".join(
            f"{name} {data['seconds']:.2f}"
            for name, data in [("generate", report["generate"]), *report["systems"].items()]
        ),
        "",
        "feedd verification margins (containment of the best candidate):",
    ]
    out += [f"  {k}: {_fmt(v)}" for k, v in report["margins"].items()]
    wrong = report["mistakes"]
    out += ["", f"feedd mistakes (first {len(wrong)}):" if wrong else "feedd mistakes: none"]
    for m in wrong:
        out.append(
            f"  {m['dump']}:{m['line']} {m['true_article']} {m['true_kind']} "
            f"(edit {m['edit']} {'+'.join(m['edits'])}; groups {','.join(m['groups']) or '-'}) "
            f"-> {m['predicted_kind']} of {m['predicted_article_is']}: {m['reason']}"
        )
        for s in m["scores"]:
            out.append(f"      candidate {s}")
        out.append(f"      text: {m['text']}")
    return "\n".join(out)


SWEEP_COLUMNS = (
    ("lost_lines", "lost"),
    ("spurious_lines", "spur"),
    ("false_merges", "merges"),
    ("false_splits", "splits"),
    ("new_precision", "new_prec"),
    ("update_recall", "upd_rec"),
    ("repeat_accuracy", "rep_acc"),
    ("update_candidate_misses", "cand_miss"),
    ("lowest_update_containment", "min_upd"),
    ("highest_other_containment", "max_other"),
    ("candidates_per_verified_line", "cand/line"),
    ("seconds", "seconds"),
)


def format_sweep(sweep: dict[str, Any]) -> str:
    header = ["setting", *(title for _, title in SWEEP_COLUMNS)]
    rows = [[r["setting"], *(_fmt(r.get(k)) for k, _ in SWEEP_COLUMNS)] for r in sweep["rows"]]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    out = [
        f"sweep on tuning seed(s) {', '.join(map(str, sweep['seeds']))}: {sweep['corpus']}",
        f"machine: {sweep['machine']}",
        "",
        line(header),
        line(["-" * w for w in widths]),
        *(line(row) for row in rows),
    ]
    return "\n".join(out)


# ---------------------------------------------------------------------------


def defaults() -> dict[str, Any]:
    from feedd.core.decide import MatchSettings
    from feedd.core.fingerprint import FingerprintSettings

    out = {f"match.{f.name}": getattr(MatchSettings(), f.name) for f in fields(MatchSettings)}
    out |= {
        f"fingerprint.{f.name}": getattr(FingerprintSettings(), f.name)
        for f in fields(FingerprintSettings)
    }
    return out


# Issue #5's acceptance targets for feedd's default config: (metric, test, bound).
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("lost_lines", "==", 0),
    ("spurious_lines", "==", 0),
    ("false_merges", "==", 0),
    ("update_recall", ">=", 0.99),
    ("new_precision", ">=", 0.995),
    ("repeat_accuracy", "==", 1.0),
)


def figures_and_targets(systems: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The few numbers bench/run_all.py puts in its table, and the targets, met or not."""
    figures = [
        {"name": f"{system} {key.replace('_', ' ')}", "value": data[key], "unit": ""}
        for system, data in systems.items()
        for key in ("update_recall", "new_precision", "repeat_accuracy", "false_splits")
    ]
    figures += [
        {"name": f"{system} time", "value": round(data["seconds"], 2), "unit": "s"}
        for system, data in systems.items()
    ]
    targets = []
    for key, test, bound in TARGETS:
        value = systems["feedd"][key]
        met = value is not None and (value == bound if test == "==" else value >= bound)
        name = f"feedd {key.replace('_', ' ')}"
        targets.append(
            {"name": name, "value": value, "unit": "", "target": f"{test} {bound}", "met": met}
        )
    return {"figures": figures, "targets": targets}


def report(corpus: Corpus, overrides: dict[str, Any], mistake_limit: int = 12) -> dict[str, Any]:
    feedd = run_feedd(corpus.path, overrides)
    base_rows, base_seconds = run_baseline(corpus.path)
    systems = {
        "feedd": {**score_mod.score(feedd.rows, corpus.labels), "seconds": feedd.seconds},
        "baseline": {**score_mod.score(base_rows, corpus.labels), "seconds": base_seconds},
    }
    return {
        "seed": corpus.seed,
        "corpus": corpus.summary,
        "corpus_path": str(corpus.path),
        "machine": machine(),
        "overrides": overrides,
        "generate": {"seconds": corpus.seconds},
        "systems": systems,
        "margins": margins(feedd, corpus),
        "mistakes": mistakes(feedd, corpus, mistake_limit),
        **figures_and_targets(systems),
        "exports": {"feedd": feedd.rows, "baseline": base_rows},
    }


def _pooled(scored: list[dict[str, Any]], found: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from several corpora: counts add up, ratios are recomputed from counts."""
    out: dict[str, Any] = {}
    for key in ("lost_lines", "spurious_lines", "false_merges", "false_splits"):
        out[key] = sum(s[key] for s in scored)
    confusion = {t: {k: sum(s["confusion"][t][k] for s in scored) for k in KINDS} for t in KINDS}
    true_kinds = {t: sum(s["true_kinds"][t] for s in scored) for t in KINDS}
    said_new = sum(confusion[t]["new"] for t in KINDS)
    out["new_precision"] = confusion["new"]["new"] / said_new if said_new else None
    out["update_recall"] = (
        confusion["update"]["update"] / true_kinds["update"] if true_kinds["update"] else None
    )
    out["repeat_accuracy"] = (
        confusion["repeat"]["repeat"] / true_kinds["repeat"] if true_kinds["repeat"] else None
    )
    out["update_candidate_misses"] = sum(m["update_candidate_misses"] for m in found)
    lows = [m["lowest_update_containment"] for m in found if m["lowest_update_containment"]]
    highs = [m["highest_other_containment"] for m in found if m["highest_other_containment"]]
    out["lowest_update_containment"] = min(lows) if lows else None
    out["highest_other_containment"] = max(highs) if highs else None
    verified = sum(m["verified_lines"] for m in found)
    candidates = sum(m["verified_lines"] * (m["candidates_per_verified_line"] or 0) for m in found)
    out["candidates_per_verified_line"] = round(candidates / verified, 2) if verified else None
    return out


def sweep(corpora: Sequence[Corpus], overrides: dict[str, Any]) -> dict[str, Any]:
    """feedd once per setting and corpus; one pooled row per setting."""
    base = defaults()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for key, values in SWEEP:
        for value in values:
            setting = {**overrides, key: value}
            signature = tuple(sorted((k, v) for k, v in setting.items() if base.get(k) != v))
            if signature in seen:
                continue
            seen.add(signature)
            scored, found, seconds = [], [], 0.0
            for corpus in corpora:
                run = run_feedd(corpus.path, setting)
                scored.append(score_mod.score(run.rows, corpus.labels))
                found.append(margins(run, corpus))
                seconds += run.seconds
            name = "defaults" if not signature else f"{key}={value}"
            note = ABLATION_NOTES.get((key, value))
            if note and signature:
                name += f" ({note})"
            rows.append(
                {
                    "setting": name,
                    "overrides": dict(signature),
                    **_pooled(scored, found),
                    "seconds": seconds,
                }
            )
    return {
        "seeds": [c.seed for c in corpora],
        "corpus": "; ".join(f"seed {c.seed}: {c.summary}" for c in corpora),
        "machine": machine(),
        "rows": rows,
    }


def _parse_set(values: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--set wants section.key=value, got {item!r}")
        out[key.strip()] = _number(value.strip())  # load_config validates
    return out


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=REPORT_SEED, help="report seed")
    parser.add_argument(
        "--tune-seed",
        type=int,
        action="append",
        help=f"seed of --sweep (default {TUNE_SEED}); repeat to pool several",
    )
    parser.add_argument("--dumps", type=int, default=generate.StreamSettings.dumps)
    parser.add_argument("--articles", type=int, default=generate.StreamSettings.articles)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus and exports go here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a feedd config override, e.g. match.verify_threshold=0.7 (repeatable)",
    )
    parser.add_argument("--sweep", action="store_true", help="grid over the matcher settings")
    parser.add_argument("--easy", action="store_true", help="the first, easier stream")
    parser.add_argument("--mistakes", type=int, default=12, help="feedd mistakes to list")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    overrides = _parse_set(args.set)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.sweep:
        seeds = args.tune_seed or [TUNE_SEED]
        corpora = [make_corpus(args.out, t, args.dumps, args.articles, args.easy) for t in seeds]
        result = sweep(corpora, overrides)
        name = "-".join(str(t) for t in seeds)
        (args.out / f"sweep-{name}.json").write_text(
            json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        print(
            json.dumps(result, ensure_ascii=False, indent=2) if args.json else format_sweep(result)
        )
        return 0

    corpus = make_corpus(args.out, args.seed, args.dumps, args.articles, args.easy)
    result = report(corpus, overrides, args.mistakes)
    for name, rows in result.pop("exports").items():
        with open(
            corpus.path.parent / f"{corpus.path.name}.{name}.jsonl", "w", encoding="utf-8"
        ) as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (args.out / f"report-{args.seed}.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
