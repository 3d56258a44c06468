"""Smoke tests of the detection benchmark tools in bench/detection/."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "detection"


def _load(name: str) -> ModuleType:
    # A unique module name keeps these generic file names (score, baseline)
    # from shadowing anything else on sys.path.
    spec = importlib.util.spec_from_file_location(f"bench_detection_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


generate = _load("generate")
score_mod = _load("score")
baseline = _load("baseline")

needs_seeds = pytest.mark.skipif(
    not generate.DEFAULT_SEEDS.is_dir(), reason=f"no seed dumps at {generate.DEFAULT_SEEDS}"
)
DUMP_NAME = re.compile(r"\d{3}_[0-9a-f]{16}\.txt")


def _run_generator(out: Path, hash_seed: str, *args: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, str(BENCH / "generate.py"), "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default-size stream (150 dumps, 150 articles), written once."""
    if not generate.DEFAULT_SEEDS.is_dir():
        pytest.skip(f"no seed dumps at {generate.DEFAULT_SEEDS}")
    out = tmp_path_factory.mktemp("corpus")
    assert generate.main(["--seed", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def labels(corpus: Path) -> list[dict[str, Any]]:
    return _read_jsonl(corpus / "labels.jsonl")


def _dump_lines(corpus: Path) -> dict[str, list[str]]:
    return {
        p.name: p.read_text(encoding="utf-8").split("\n")
        for p in sorted(corpus.iterdir())
        if DUMP_NAME.fullmatch(p.name)
    }


def _first_texts(corpus: Path, labels: list[dict[str, Any]]) -> dict[str, str]:
    lines = _dump_lines(corpus)
    return {
        row["article"]: lines[row["dump"]][row["line"] - 1]
        for row in labels
        if row["kind"] == "new"
    }


@needs_seeds
def test_generator_is_deterministic(tmp_path: Path) -> None:
    args = ("--seed", "7", "--dumps", "8", "--articles", "20")
    first = _run_generator(tmp_path / "a", "1", *args)
    second = _run_generator(tmp_path / "b", "2", *args)
    assert first == second
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert len([n for n in names if DUMP_NAME.fullmatch(n)]) == 8
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_labels_cover_every_item_line_exactly_once(
    corpus: Path, labels: list[dict[str, Any]]
) -> None:
    lines = _dump_lines(corpus)
    assert len(lines) == generate.StreamSettings.dumps
    labelled = Counter((row["dump"], row["line"]) for row in labels)
    assert max(labelled.values()) == 1
    endings = set()
    noise: Counter[str] = Counter()
    for name, content in lines.items():
        assert content[:3] == ["INCOMING TRANSMISSION", "", "LATEST UPDATES"]
        endings.add(content[-1] == "")
        body = content[3:-1] if content[-1] == "" else content[3:]
        for number, text in enumerate(body, start=4):
            if baseline.is_noise(text):
                assert (name, number) not in labelled, (name, number, text)
                noise["date" if re.fullmatch(r"[\d-]{10}", text) else text] += 1
            else:
                assert 100 <= len(text) <= 1300, (name, number, len(text))
                assert labelled.pop((name, number)) == 1
    assert not labelled, f"labels for lines that are not items: {list(labelled)[:3]}"
    assert endings == {True, False}  # both final-newline styles occur
    assert noise["NLP"] and noise["date"] and noise["1 2"]
    contents = [(corpus / n).read_bytes() for n in lines]
    assert any(a == b for a, b in itertools.pairwise(contents)), "no re-saved dump"
    for row in labels:
        assert set(row) == {"dump", "line", "article", "kind", "revision", "edit", "edits"}
        assert row["kind"] in ("new", "repeat", "update")


def test_default_run_has_every_edit_and_hard_negative(
    corpus: Path, labels: list[dict[str, Any]]
) -> None:
    edits = Counter(row["edit"] for row in labels if row["edit"])
    assert set(edits) == set(generate.EDIT_TYPES)
    kinds_by_edit = defaultdict(set)
    for row in labels:
        kinds_by_edit[row["edit"]].add(row["kind"])
    assert kinds_by_edit["width"] == {"repeat"}  # NFKC-equal: not an update
    assert kinds_by_edit["typo"] <= {"update"}
    assert generate.count_reverts(labels) >= 1  # an update back to an older revision

    first = _first_texts(corpus, labels)
    for heading in generate.HEADINGS:
        assert sum(text.startswith(heading) for text in first.values()) >= 3, heading
    openings = Counter(text[:100] for text in first.values())
    assert openings.most_common(1)[0][1] >= 3  # a shared boilerplate opening
    sentences = Counter(re.split(r"(?<=。)", text)[0] for text in first.values())
    assert sum(1 for n in sentences.values() if n >= 2) >= 3  # same heading + first sentence
    members = Counter(g for row in _read_jsonl(corpus / "articles.jsonl") for g in row["groups"])
    assert members["topic:normalizing-flow"] >= 2  # the seeds' articles on one topic
    for family in ("boilerplate:0", "boilerplate:1"):
        assert members[family] >= 4, family
    assert sum(1 for g, n in members.items() if g.startswith("opening:") and n >= 2) >= 2


def _texts_by_article(corpus: Path, labels: list[dict[str, Any]]) -> dict[str, list[str]]:
    lines = _dump_lines(corpus)
    texts: dict[str, list[str]] = defaultdict(list)
    for row in labels:
        text = lines[row["dump"]][row["line"] - 1]
        if text not in texts[row["article"]]:
            texts[row["article"]].append(text)
    return texts


def test_different_articles_keep_the_promise_and_some_come_close(
    corpus: Path, labels: list[dict[str, Any]]
) -> None:
    """Every text of every revision, pairwise: below the promise, some near it."""
    texts = _texts_by_article(corpus, labels)
    worst = 0.0
    for a, b in itertools.combinations(sorted(texts), 2):
        for x in texts[a]:
            for y in texts[b]:
                worst = max(worst, generate.overlap(x, y))
    assert 0.55 <= worst < generate.MAX_PAIR_OVERLAP


def test_the_stream_looks_like_the_seeds(corpus: Path, labels: list[dict[str, Any]]) -> None:
    lines = _dump_lines(corpus)
    shown = [lines[row["dump"]][row["line"] - 1] for row in labels]
    cut = [t for t in shown if t.endswith(("...", "…"))]
    assert len(cut) >= 0.8 * len(shown)  # most items are cut, as in the seeds
    assert Counter(len(t.rstrip(".…")) for t in cut).most_common(1)[0][0] == 350
    kinds = Counter(row["kind"] for row in labels)
    assert kinds["repeat"] > 0.75 * len(labels)  # most sightings are repeats
    assert any(len(t) < 250 and not t.endswith("...") for t in shown)  # short posts, whole


def test_stacked_and_away_edits(labels: list[dict[str, Any]]) -> None:
    dumps = sorted({row["dump"] for row in labels})
    position = {name: i for i, name in enumerate(dumps)}
    last_seen: dict[str, int] = {}
    away_gaps = []
    for row in labels:
        here = position[row["dump"]]
        if row["edit"] == "stacked":
            assert 2 <= len(row["edits"]) <= 3, row
        elif row["edit"] == "away":
            assert 1 <= len(row["edits"]) <= 3, row
            away_gaps.append(here - last_seen[row["article"]])
        elif row["edit"]:
            assert row["edits"] == [row["edit"]], row
        last_seen[row["article"]] = here
    # An away edit brings back an article that had left the listing.
    assert away_gaps and min(away_gaps) >= 2
    recut = Counter(row["edit"] for row in labels if str(row["edit"]).startswith("recut"))
    assert recut["recut_shorter"] and recut["recut_longer"]


def _oracle_export(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a perfect system would export for these labels."""
    articles: dict[str, dict[str, Any]] = {}
    for row in labels:
        article = articles.setdefault(
            row["article"],
            {"id": f"x-{row['article']}", "title": "", "revisions": [], "sightings": []},
        )
        article["sightings"].append(
            {
                "dump": row["dump"],
                "line": row["line"],
                "revision": row["revision"],
                "kind": row["kind"],
                "seen_at": "2026-01-01T00:00:00+00:00",
            }
        )
    return list(articles.values())


def test_scorer_gives_a_perfect_export_full_marks(labels: list[dict[str, Any]]) -> None:
    result = score_mod.score(_oracle_export(labels), labels)
    for key in ("lost_lines", "spurious_lines", "false_merges", "false_splits"):
        assert result[key] == 0, key
    for key in (
        "new_precision",
        "new_recall",
        "update_precision",
        "update_recall",
        "repeat_accuracy",
        "revision_accuracy",
        "revert_recall",
    ):
        assert result[key] == 1.0, key
    assert result["revert_lines"] >= 1
    assert sum(result["confusion"][k][k] for k in score_mod.KINDS) == len(labels)


def test_scorer_reports_merges_splits_lost_and_spurious(labels: list[dict[str, Any]]) -> None:
    export = _oracle_export(labels)
    merged = [{**export[0], "sightings": export[0]["sightings"] + export[1]["sightings"]}]
    result = score_mod.score(merged + export[2:], labels)
    assert (result["false_merges"], result["false_merge_extra"]) == (1, 1)
    assert result["false_splits"] == 0

    sightings = export[0]["sightings"]
    halves = [
        {**export[0], "id": "left", "sightings": sightings[:1]},
        {**export[0], "id": "right", "sightings": sightings[1:]},
    ]
    result = score_mod.score(halves + export[1:], labels)
    assert (result["false_splits"], result["false_split_extra"]) == (1, 1)

    # First line dropped, second reported twice, header line 2 reported once.
    twice_and_header = [sightings[1], {**sightings[1], "line": 2}]
    noisy = [{**export[0], "sightings": sightings[1:] + twice_and_header}]
    result = score_mod.score(noisy + export[1:], labels)
    assert (result["lost_lines"], result["spurious_lines"]) == (1, 2)


@needs_seeds
def test_baseline_runs_and_is_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run_generator(tmp_path, "0", "--seed", "3", "--dumps", "8", "--articles", "20")
    export = tmp_path / "baseline.jsonl"
    assert baseline.main(["--dumps", str(tmp_path), "--out", str(export)]) == 0
    rows = _read_jsonl(export)
    for row in rows:
        assert set(row) == {"id", "title", "first_seen", "last_seen", "revisions", "sightings"}
        assert all(re.fullmatch(r"[0-9a-f]{16}", r["simhash"]) for r in row["revisions"])
    labels = _read_jsonl(tmp_path / "labels.jsonl")
    result = score_mod.score(rows, labels)
    assert result["lost_lines"] == result["spurious_lines"] == 0
    assert result["new_recall"] == 1.0

    capsys.readouterr()
    oracle = tmp_path / "oracle.jsonl"
    oracle.write_text("\n".join(json.dumps(r) for r in _oracle_export(labels)), encoding="utf-8")
    args = ["--export", f"baseline={export}", "--export", str(oracle)]
    assert score_mod.main([*args, "--labels", str(tmp_path / "labels.jsonl")]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[-2:] == ["baseline", "oracle"]
    assert "update recall" in table and "confusion true update -> new" in table


run_mod = _load("run")


@needs_seeds
def test_run_reports_both_systems_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--seed", "3", "--dumps", "12", "--articles", "20", "--out", str(tmp_path)]
    assert run_mod.main([*args, "--set", "match.verify_threshold=0.85", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["systems"]) == {"feedd", "baseline"}
    assert report["overrides"] == {"match.verify_threshold": 0.85}
    assert report["systems"]["feedd"]["labelled_lines"] > 100
    assert {t["name"] for t in report["targets"]} >= {"feedd false merges", "feedd update recall"}
    assert (tmp_path / "report-3.json").is_file()
    corpus = tmp_path / "corpus-3-12x20"
    assert (corpus / "labels.jsonl").is_file()

    # Run again: the corpus is regenerated in place, and the table is printed.
    assert run_mod.main(args) == 0
    table = capsys.readouterr().out
    assert "update recall" in table and "feedd verification margins" in table


@needs_seeds
def test_run_refuses_to_clear_a_folder_it_did_not_write(tmp_path: Path) -> None:
    folder = tmp_path / "corpus-3-5x10"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SystemExit):
        run_mod.main(["--seed", "3", "--dumps", "5", "--articles", "10", "--out", str(tmp_path)])
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"


@needs_seeds
def test_sweep_runs_every_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--sweep", "--tune-seed", "5", "--dumps", "6", "--articles", "12"]
    assert run_mod.main([*args, "--out", str(tmp_path), "--json"]) == 0
    sweep = json.loads(capsys.readouterr().out)
    settings = [row["setting"] for row in sweep["rows"]]
    assert settings.count("defaults") == 1
    assert len(settings) == len(set(settings))  # the defaults are run once, not per row
    assert len(settings) >= sum(len(values) for _, values in run_mod.SWEEP) - len(run_mod.SWEEP)
    assert "match.verify_threshold=0.6" in settings
    assert all(row["lost_lines"] == 0 for row in sweep["rows"])
