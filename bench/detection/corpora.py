"""feedd and three baselines on the real corpora of ../shared/corpora, one table.

    python bench/detection/corpora.py [--corpora DIR] [--work DIR] [--only NAME ...]
        [--systems feedd,textbook,minhash,tfidf] [--limit-dumps N] [--json]

The corpora (../shared/corpora/README.md) are real git edit histories of four
blogs replayed as dumps, each with a ``-recut`` twin (every post cut at another
length in every dump) and a ``-renames`` twin (a renamed post keeps its key).
Each ``<name>.tar.gz`` is unpacked once into ``--work`` (default
bench/out/corpora/). Four systems classify every item line as new / repeat /
update, each writes feedd's export format (JSON Lines), and the corpora's own
``score.py`` scores it against ``labels.jsonl``:

- feedd, exactly as a user runs it: ``feedd backfill <dumps> --no-feeds`` on a
  fresh SQLite database in a temporary folder (built-in defaults: no config
  file, no other FEEDD_* variable), then ``feedd export``. Its time is the wall
  clock of the backfill process, start-up included.
- textbook: bench/detection/baseline.py (simhash k=3, SimhashIndex).
- minhash: datasketch MinHash (128 permutations) over character 3-grams, an
  LSH index (threshold 0.5) of each article's first line; the candidate with
  the highest estimated Jaccard similarity wins.
- tfidf: scikit-learn TF-IDF over character 3-grams fitted on all item lines,
  cosine with the latest line of every article, joins at >= 0.5. Brute force:
  a quality reference, not a design.

The baselines read dumps as the corpora README describes them: the three header
lines, the noise lines and every line shorter than 40 characters are skipped
(the 20 empty item lines of the jbranchaud-til corpora are therefore lost; feedd
reports no article for them either). A line joining an article is a repeat when
it equals the article's last line, else an update. Baseline times are the wall
clock of the classification (TF-IDF fitting included), in process; lines/s is
labelled item lines over seconds.

The table marks feedd's targets (false merges + false splits per corpus, its
speed against the textbook in the same run, nothing lost or spurious but the
README's empty lines), and the performance issue's: on every corpus (normal,
``-recut`` and ``-renames`` alike) feedd's lines/s end to end, process start
included, at least 10x the textbook's AND at least 10x MinHash LSH's, both
measured in the same run. tests/test_corpora.py asserts the identity targets on a
slice; this script exits 0 unless it crashes (targets are reported, never
asserted). ``--limit-dumps N`` keeps the first N dumps of each corpus and the
labels of those dumps. The exports and feedd's logs stay in ``--work``/runs/.

``--json`` prints the report in bench/common.py's format (``figures`` and
``targets`` lists, read by bench/run_all.py as "corpora"; the per-system
results and the per-corpus checks are in ``params``); the same object is saved
as ``--work``/report.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_CORPORA = REPO_ROOT.parent / "shared" / "corpora"
DEFAULT_WORK = REPO_ROOT / "bench" / "out" / "corpora"
DEFAULT_SCORE = DEFAULT_CORPORA / "score.py"
SYSTEMS = ("feedd", "textbook", "minhash", "tfidf")

# feedd's identity targets: false merges + false splits, default config.
TARGETS = {
    "iosweekly-renames": 23,
    "jstutorial-renames": 43,
    "nodejs-release-renames": 25,
    "jbranchaud-til-renames": 2,
    "iosweekly-recut": 31,
    "jstutorial-recut": 55,
    "nodejs-release-recut": 53,
    "jbranchaud-til-recut": 14,
}
# feedd's backfill lines/s over the textbook's, same run: -recut, everything else.
SPEED_RECUT = 1.0
SPEED_OTHER = 5.0
# The performance issue's: feedd's lines/s, end to end, over each of these baselines'
# in the same run, on every corpus.
SPEED_ISSUE = 10.0
SPEED_ISSUE_BASELINES = ("textbook", "minhash")
BASELINE_TITLES = {"textbook": "textbook", "minhash": "MinHash", "tfidf": "TF-IDF"}

HEADER_LINES = 3
MIN_CHARS = 40
NOISE = re.compile(r"周刊|\d{4}-\d{2}-\d{2}|\d+( \d+)*")  # README, "Dumps"
NUM_PERM = 128
MINHASH_THRESHOLD = 0.5
TFIDF_THRESHOLD = 0.5
SCORE_LINE = re.compile(r"(\w+)=(\S+)")


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


baseline = _sibling("baseline")


def _common() -> ModuleType:
    """bench/common.py (the Report format), under a unique module name."""
    unique = "bench_common"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, HERE.parent / "common.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    spec.loader.exec_module(module)
    return module


common = _common()

Items = list[tuple[int, str]]  # (1-based line number, text) of a dump's item lines


@dataclass
class Corpus:
    name: str
    dump_dir: Path  # the dumps the systems read: the corpus, or a copy of its first N
    labels_path: Path  # the labels to score against (only those of the dumps read)
    dumps: list[tuple[str, Items]]  # dump name and item lines, in dump order
    labels: int  # labelled item lines
    empty: set[tuple[str, int]] = field(default_factory=set)  # labelled lines with no text


@dataclass
class Run:
    rows: list[dict[str, Any]]
    seconds: float


# ---------------------------------------------------------------------------
# Corpora


def corpus_names(corpora_dir: Path) -> list[str]:
    return sorted(p.name.removesuffix(".tar.gz") for p in corpora_dir.glob("*.tar.gz"))


def unpack(corpora_dir: Path, name: str, work: Path) -> Path:
    """<work>/<name>/, unpacked from <name>.tar.gz unless it is there already."""
    folder = work / name
    if (folder / "labels.jsonl").is_file():
        return folder
    work.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=work))
    try:
        with tarfile.open(corpora_dir / f"{name}.tar.gz") as tar:
            tar.extractall(partial, filter="data")
        if not (partial / name / "labels.jsonl").is_file():
            raise SystemExit(f"{name}.tar.gz holds no {name}/labels.jsonl")
        if folder.exists():  # an unpacking that was cut short
            shutil.rmtree(folder)
        (partial / name).rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def read_items(path: Path) -> Items:
    """A dump's item lines as the README's baselines read them (one reader for all three)."""
    lines = path.read_bytes().decode("utf-8").split("\n")
    items = []
    for number, raw in enumerate(lines[HEADER_LINES:], start=HEADER_LINES + 1):
        text = raw.rstrip("\r")
        if len(text) >= MIN_CHARS and not NOISE.fullmatch(text.strip()):
            items.append((number, text))
    return items


def load_corpus(folder: Path, scratch: Path, limit_dumps: int | None = None) -> Corpus:
    """The corpus in folder; with limit_dumps, a copy of its first dumps in scratch."""
    paths = [path for _, path in baseline.dump_files(folder)]
    labels_path = folder / "labels.jsonl"
    dump_dir = folder
    labels = [json.loads(line) for line in labels_path.read_text(encoding="utf-8").splitlines()]
    if limit_dumps is not None and limit_dumps < len(paths):
        paths = paths[:limit_dumps]
        dump_dir = scratch / f"{folder.name}.first{limit_dumps}"
        if dump_dir.exists():
            shutil.rmtree(dump_dir)
        dump_dir.mkdir(parents=True)
        for path in paths:  # copies keep the mtimes; feedd does not follow symlinks
            shutil.copy2(path, dump_dir / path.name)
        kept = {path.name for path in paths}
        labels = [row for row in labels if row["file"] in kept]
        labels_path = dump_dir / "labels.jsonl"
        labels_path.write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in labels),
            encoding="utf-8",
        )
    raw = {path.name: path.read_bytes().decode("utf-8").split("\n") for path in paths}
    empty = {(r["file"], r["line"]) for r in labels if not raw[r["file"]][r["line"] - 1].strip()}
    return Corpus(
        folder.name,
        dump_dir,
        labels_path,
        [(path.name, read_items(path)) for path in paths],
        len(labels),
        empty,
    )


# ---------------------------------------------------------------------------
# Systems


def feedd_executable() -> Path:
    return Path(sys.executable).with_name("feedd")


def run_feedd(corpus: Corpus, log: Path) -> Run:
    """`feedd backfill` then `feedd export`, as a user would, on a fresh SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}
    feedd = str(feedd_executable())
    with tempfile.TemporaryDirectory(prefix="feedd-corpora-") as tmp:
        env["FEEDD_DATABASE_URL"] = f"sqlite:///{tmp}/feedd.db"
        with open(log, "w", encoding="utf-8") as out:
            started = time.perf_counter()
            done = subprocess.run(
                [feedd, "backfill", str(corpus.dump_dir), "--no-feeds"],
                cwd=tmp,  # so that no ./config.toml is picked up
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
            seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"feedd backfill exited {done.returncode}; see {log}")
        exported = subprocess.run(
            [feedd, "export"], cwd=tmp, env=env, capture_output=True, text=True, check=False
        )
        if exported.returncode != 0:
            raise RuntimeError(f"feedd export exited {exported.returncode}: {exported.stderr}")
    rows = [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]
    return Run(rows, seconds)


def run_textbook(corpus: Corpus) -> Run:
    """bench/detection/baseline.py, on the README's item lines."""
    items = dict(corpus.dumps)
    started = time.perf_counter()
    rows = baseline.run_baseline(corpus.dump_dir, read=lambda path: items[path.name])
    return Run(rows, time.perf_counter() - started)


def comparable(text: str) -> str:
    """What MinHash and TF-IDF compare: the line without its trailing dots and spaces."""
    return text.rstrip(". ")


class Articles:
    """Articles as a baseline finds them, with feedd's export rows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.last: list[str] = []

    def new(self, dump: str, line: int, text: str) -> int:
        self.rows.append({"id": f"a{len(self.rows) + 1}", "sightings": []})
        self.last.append(text)
        self._sighting(len(self.rows) - 1, dump, line, "new")
        return len(self.rows) - 1

    def join(self, article: int, dump: str, line: int, text: str) -> bool:
        """Add the line to the article; True when its text changed (an update)."""
        changed = text != self.last[article]
        self.last[article] = text
        self._sighting(article, dump, line, "update" if changed else "repeat")
        return changed

    def _sighting(self, article: int, dump: str, line: int, kind: str) -> None:
        self.rows[article]["sightings"].append({"dump": dump, "line": line, "kind": kind})


def _lines(corpus: Corpus) -> Iterable[tuple[str, int, str]]:
    for dump, items in corpus.dumps:
        for line, text in items:
            yield dump, line, text


def run_minhash(corpus: Corpus) -> Run:
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    lsh = MinHashLSH(threshold=MINHASH_THRESHOLD, num_perm=NUM_PERM)
    firsts: list[Any] = []  # article -> MinHash of its first line
    articles = Articles()
    for dump, line, text in _lines(corpus):
        plain = comparable(text)
        signature = MinHash(num_perm=NUM_PERM)
        signature.update_batch(
            {plain[i : i + 3].encode("utf-8") for i in range(max(1, len(plain) - 2))}
        )
        candidates = lsh.query(signature)
        if candidates:
            # The highest estimated Jaccard similarity; on a tie, the oldest article.
            best = max(candidates, key=lambda a: (firsts[a].jaccard(signature), -a))
            articles.join(best, dump, line, text)
        else:
            article = articles.new(dump, line, text)
            lsh.insert(article, signature)
            firsts.append(signature)
    return Run(articles.rows, time.perf_counter() - started)


def run_tfidf(corpus: Corpus) -> Run:
    """Cosine with the latest line of every article, exactly, one dump at a time.

    The similarities of a dump's lines to all articles come from one product;
    articles that a line of the same dump created or changed are compared again.
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    started = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(3, 3), sublinear_tf=True)
    matrix = vectorizer.fit_transform([comparable(t) for _, _, t in _lines(corpus)]).tocsr()
    articles = Articles()
    latest: list[int] = []  # article -> matrix row of its latest line
    row = 0
    for dump, items in corpus.dumps:
        known = len(latest)
        batch = linear_kernel(matrix[row : row + len(items)], matrix[latest]) if known else None
        touched: list[int] = []  # articles created or changed by this dump's lines
        for offset, (line, text) in enumerate(items):
            here = row + offset
            sims = np.zeros(len(latest))
            if batch is not None:
                sims[:known] = batch[offset]
            if touched:
                sims[touched] = linear_kernel(matrix[here], matrix[[latest[a] for a in touched]])[0]
            best = int(np.argmax(sims)) if len(sims) else -1  # on a tie, the oldest
            if best >= 0 and sims[best] >= TFIDF_THRESHOLD:
                if articles.join(best, dump, line, text):
                    latest[best] = here
                    if best not in touched:
                        touched.append(best)
            else:
                touched.append(articles.new(dump, line, text))
                latest.append(here)
        row += len(items)
    return Run(articles.rows, time.perf_counter() - started)


RUNNERS: dict[str, Callable[[Corpus], Run]] = {
    "textbook": run_textbook,
    "minhash": run_minhash,
    "tfidf": run_tfidf,
}


# ---------------------------------------------------------------------------
# Scoring


def score(corpus: Corpus, export: Path, score_py: Path = DEFAULT_SCORE) -> dict[str, Any]:
    """The corpora's score.py on an export, its last line as numbers."""
    done = subprocess.run(
        [sys.executable, str(score_py), str(corpus.labels_path), str(export)],
        capture_output=True,
        text=True,
        check=False,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    values = dict(SCORE_LINE.findall(last))
    if done.returncode not in (0, 1) or "repeat_ok" not in values:
        raise RuntimeError(f"score.py failed ({done.returncode}): {done.stderr or done.stdout}")
    right, total = values.pop("repeat_ok").split("/")
    out: dict[str, Any] = {
        k: float(v) if "." in v else int(v) for k, v in values.items() if k != "repeat_ok"
    }
    out["repeat_ok"] = int(right)
    out["repeat_total"] = int(total)
    out["merges_splits"] = out["false_merges"] + out["false_splits"]
    return out


def lost_beyond_empty(corpus: Corpus, rows: list[dict[str, Any]]) -> int:
    """Item lines with no sighting that are not the README's empty lines."""
    seen = {(Path(str(s["dump"])).name, int(s["line"])) for r in rows for s in r["sightings"]}
    labels = corpus.labels_path.read_text(encoding="utf-8").splitlines()
    keys = {(row["file"], row["line"]) for row in map(json.loads, labels)}
    return len(keys - seen - corpus.empty)


def run_system(
    system: str, corpus: Corpus, out: Path, score_py: Path = DEFAULT_SCORE
) -> dict[str, Any]:
    """Run one system on one corpus, write its export to out/, score it."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{corpus.dump_dir.name}.{system}"
    if system == "feedd":
        done = run_feedd(corpus, out / f"{stem}.log")
    else:
        done = RUNNERS[system](corpus)
    export = out / f"{stem}.jsonl"
    with open(export, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in done.rows)
    result: dict[str, Any] = {"corpus": corpus.name, "system": system}
    result.update(score(corpus, export, score_py))
    result["lost_beyond_empty"] = lost_beyond_empty(corpus, done.rows)
    result["lines"] = corpus.labels
    result["seconds"] = round(done.seconds, 3)
    result["lines_per_s"] = corpus.labels / done.seconds if done.seconds > 0 else None
    result["export"] = str(export)
    return result


# ---------------------------------------------------------------------------
# Targets and the table


def speed_target(corpus: str) -> float:
    return SPEED_RECUT if corpus.endswith("-recut") else SPEED_OTHER


def evaluate(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """feedd's targets per corpus: identity, speed against the textbook, lost/spurious."""
    by = {(r["corpus"], r["system"]): r for r in results}
    out: dict[str, dict[str, Any]] = {}
    for (corpus, system), r in by.items():
        if system != "feedd":
            continue
        checks: dict[str, Any] = {
            "lost_spurious": {
                "lost": r["lost"],
                "lost_beyond_empty": r["lost_beyond_empty"],
                "spurious": r["spurious"],
                "met": r["lost_beyond_empty"] == 0 and r["spurious"] == 0,
            }
        }
        if corpus in TARGETS:
            checks["identity"] = {
                "merges_splits": r["merges_splits"],
                "target": TARGETS[corpus],
                "met": r["merges_splits"] <= TARGETS[corpus],
            }
        textbook = by.get((corpus, "textbook"))
        if textbook and r["lines_per_s"] and textbook["lines_per_s"]:
            ratio = r["lines_per_s"] / textbook["lines_per_s"]
            need = speed_target(corpus)
            checks["speed"] = {"ratio": round(ratio, 3), "target": need, "met": ratio >= need}
        for other in SPEED_ISSUE_BASELINES:
            base = by.get((corpus, other))
            if base and r["lines_per_s"] and base["lines_per_s"]:
                ratio = r["lines_per_s"] / base["lines_per_s"]
                checks[f"speed_{other}"] = {
                    "ratio": round(ratio, 3),
                    "target": SPEED_ISSUE,
                    "met": ratio >= SPEED_ISSUE,
                }
        out[corpus] = checks
    return out


COLUMNS = (
    ("corpus", "corpus"),
    ("system", "system"),
    ("lost", "lost"),
    ("spurious", "spurious"),
    ("false_merges", "false merges"),
    ("false_splits", "false splits"),
    ("merges_splits", "merges+splits"),
    ("new_precision", "new precision"),
    ("update_recall", "update recall"),
    ("lines_per_s", "lines/s"),
)
TEXT_COLUMNS = {"corpus", "system"}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "lines_per_s":
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.4f}"  # as score.py prints it
    return str(value)


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def format_table(result: dict[str, Any]) -> str:
    checks = result["targets"]
    by = {(r["corpus"], r["system"]): r for r in result["results"]}
    header = [title for _, title in COLUMNS] + [
        "target (merges+splits)",
        "speed vs textbook",
        "speed vs MinHash",
    ]
    lines = [
        "| " + " | ".join(header) + " |",
        "|"
        + "|".join("---" if k in TEXT_COLUMNS else "---:" for k, _ in COLUMNS)
        + "|---|---|---|",
    ]
    for r in result["results"]:
        cells = [_cell(k, r[k]) for k, _ in COLUMNS]
        corpus, system = r["corpus"], r["system"]
        target = f"≤ {TARGETS[corpus]}" if corpus in TARGETS else ""
        speed = ""
        textbook = by.get((corpus, "textbook"))
        if system != "textbook" and textbook and r["lines_per_s"] and textbook["lines_per_s"]:
            speed = f"{r['lines_per_s'] / textbook['lines_per_s']:.2f}×"
        vs_minhash = ""
        minhash = by.get((corpus, "minhash"))
        if system == "feedd" and minhash and r["lines_per_s"] and minhash["lines_per_s"]:
            vs_minhash = f"{r['lines_per_s'] / minhash['lines_per_s']:.2f}×"
        if system == "feedd":
            check = checks.get(corpus, {})
            if "identity" in check:
                target += f" {_met(check['identity']['met'])}"
            if "speed" in check:
                s = check["speed"]
                if not s["met"] and speed.startswith(f"{s['target']:.2f}"):  # 0.997 is no 1.00
                    speed = f"{r['lines_per_s'] / textbook['lines_per_s']:.3f}×"
                speed += f" (≥ {s['target']:g}×) {_met(s['met'])}"
            for other, label in (("textbook", "speed"), ("minhash", "")):
                if f"speed_{other}" in check:
                    s = check[f"speed_{other}"]
                    verdict = f"(≥ {s['target']:g}×) {_met(s['met'])}"
                    if label:
                        speed += f"; {verdict}"
                    else:
                        vs_minhash += f" {verdict}"
            if not check["lost_spurious"]["met"]:
                cells[2] += " MISSED"
        row = [*cells, target.strip(), speed, vs_minhash]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_summary(result: dict[str, Any]) -> str:
    checks = result["targets"].values()
    out = [f"machine: {result['machine']}", f"corpora: {result['corpora_dir']}"]
    if result["limit_dumps"] is not None:
        out.append(f"first {result['limit_dumps']} dumps of each corpus only")
    summaries = (
        ("identity", "merges+splits"),
        ("speed", "speed"),
        ("speed_textbook", f"speed >= {SPEED_ISSUE:g}x the textbook"),
        ("speed_minhash", f"speed >= {SPEED_ISSUE:g}x MinHash"),
        ("lost_spurious", ""),
    )
    for name, label in summaries:
        found = [c[name] for c in checks if name in c]
        if not found:
            continue
        label = label or "nothing lost or spurious beyond the README's empty lines"
        out.append(f"feedd targets, {label}: {sum(c['met'] for c in found)}/{len(found)} met")
    seconds = sum(r["seconds"] for r in result["results"])
    out.append(f"time: {seconds:.1f} s of system runs, {result['seconds']:.1f} s in all")
    return "\n".join(out)


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


def build_report(result: dict[str, Any]) -> Any:
    """The result in bench/common.py's Report format: figures and targets, met or missed."""
    report = common.Report(
        "corpora",
        params={
            "corpora": ",".join(dict.fromkeys(r["corpus"] for r in result["results"])),
            "systems": ",".join(dict.fromkeys(r["system"] for r in result["results"])),
            "limit_dumps": result["limit_dumps"],
        },
    )
    by = {(r["corpus"], r["system"]): r for r in result["results"]}
    pooled: dict[str, list[float]] = {}
    for r in result["results"]:
        corpus, system = r["corpus"], r["system"]
        label = "feedd (end to end)" if system == "feedd" else BASELINE_TITLES[system]
        report.figure(f"{corpus}: {label} lines/s", r["lines_per_s"] or 0.0, "lines/s")
        totals = pooled.setdefault(label, [0, 0.0])
        totals[0] += r["lines"]
        totals[1] += r["seconds"]
        if system == "feedd":
            report.figure(f"{corpus}: feedd merges+splits", r["merges_splits"])
            for other in ("textbook", "minhash", "tfidf"):
                base = by.get((corpus, other))
                if base and r["lines_per_s"] and base["lines_per_s"]:
                    report.figure(
                        f"{corpus}: feedd / {BASELINE_TITLES[other]} lines/s",
                        r["lines_per_s"] / base["lines_per_s"],
                        "x",
                    )
    for label, (lines, seconds) in pooled.items():
        report.figure(
            f"all corpora: {label} lines/s", lines / seconds if seconds else 0.0, "lines/s"
        )
    for corpus, check in result["targets"].items():
        if "identity" in check:
            c = check["identity"]
            report.target(
                f"{corpus}: feedd merges+splits", c["merges_splits"], f"<= {c['target']}", c["met"]
            )
        if "speed" in check:
            c = check["speed"]
            report.target(
                f"{corpus}: feedd / textbook lines/s",
                c["ratio"],
                f">= {c['target']:g}x",
                c["met"],
                "x",
            )
        for other in SPEED_ISSUE_BASELINES:
            if f"speed_{other}" in check:
                c = check[f"speed_{other}"]
                report.target(
                    f"{corpus}: feedd >= {c['target']:g}x {BASELINE_TITLES[other]} lines/s",
                    c["ratio"],
                    f">= {c['target']:g}x",
                    c["met"],
                    "x",
                )
        c = check["lost_spurious"]
        report.target(
            f"{corpus}: feedd lost (beyond the README's empty lines) + spurious",
            c["lost_beyond_empty"] + c["spurious"],
            "0",
            c["met"],
        )
    report.notes.append(
        "feedd's time is the wall clock of `feedd backfill` (process start included); "
        "the baselines' is their classification, in process"
    )
    report.params.update(
        corpora_dir=result["corpora_dir"],
        seconds=round(result["seconds"], 1),
        results=result["results"],
        checks=result["targets"],
    )
    return report


def run(
    corpora_dir: Path,
    work: Path,
    names: Sequence[str],
    systems: Sequence[str],
    limit_dumps: int | None = None,
) -> dict[str, Any]:
    """Every system on every corpus named; the results and feedd's targets."""
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="feedd-corpora-") as scratch:
        for name in names:
            corpus = load_corpus(unpack(corpora_dir, name, work), Path(scratch), limit_dumps)
            for system in systems:
                results.append(run_system(system, corpus, work / "runs", corpora_dir / "score.py"))
    return {
        "machine": machine(),
        "corpora_dir": str(corpora_dir),
        "limit_dumps": limit_dumps,
        "results": results,
        "targets": evaluate(results),
        "seconds": time.perf_counter() - started,
    }


def _systems(value: str) -> list[str]:
    chosen = [s.strip() for s in value.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SYSTEMS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {','.join(SYSTEMS)}, got {value!r}")
    return [s for s in SYSTEMS if s in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="the *.tar.gz")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="unpacked corpora, runs")
    parser.add_argument("--only", action="append", metavar="NAME", help="a corpus (repeatable)")
    parser.add_argument("--systems", type=_systems, default=list(SYSTEMS), help="comma-separated")
    parser.add_argument("--limit-dumps", type=int, metavar="N", help="only the first N dumps")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    available = corpus_names(args.corpora)
    if not available:
        raise SystemExit(f"no corpora (*.tar.gz) in {args.corpora}")
    unknown = sorted(set(args.only or []) - set(available))
    if unknown:
        raise SystemExit(f"unknown corpora {unknown}; {args.corpora} has {available}")
    names = [n for n in available if n in set(args.only or available)]
    if args.limit_dumps is not None and args.limit_dumps < 1:
        raise SystemExit("--limit-dumps wants a positive number")
    result = run(args.corpora, args.work, names, args.systems, args.limit_dumps)
    report = build_report(result).as_dict()
    suffix = f"-first{args.limit_dumps}" if args.limit_dumps is not None else ""
    (args.work / f"report{suffix}.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(format_table(result))
        print()
        print(format_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
