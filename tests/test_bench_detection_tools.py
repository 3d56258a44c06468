"""Smoke tests of the detection benchmark tools in bench/detection/."""

from __future__ import annotations

import difflib
import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.support import bench_detection

BENCH = Path(__file__).resolve().parents[1] / "bench" / "detection"


generate = bench_detection("generate")
score_mod = bench_detection("score")
baseline = bench_detection("baseline")

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
        assert set(row) == {
            "dump",
            "line",
            "article",
            "kind",
            "revision",
            "recut",
            "edit",
            "edits",
        }
        assert row["kind"] in ("new", "repeat", "update")
        assert row["kind"] == "repeat" or not row["recut"]


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
        "recut_accuracy",
    ):
        assert result[key] == 1.0, key
    assert result["revert_lines"] >= 1
    assert result["recut_lines"] >= 1  # the default stream's re-cut edits are repeats
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


run_mod = bench_detection("run")


@needs_seeds
def test_run_reports_both_systems_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--seed", "3", "--dumps", "12", "--articles", "20", "--out", str(tmp_path)]
    args.append("--no-table")
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
        run_mod.main(
            [
                "--seed",
                "3",
                "--dumps",
                "5",
                "--articles",
                "10",
                "--out",
                str(tmp_path),
                "--no-table",
            ]
        )
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


# ---------------------------------------------------------------------------
# The labeller's re-cut rule, on hand-written lines


def _see(*lines: str) -> list[tuple[str, int, bool]]:
    labeller = generate.Labeller()
    return [labeller.see("a1", line) for line in lines]


LONG_TEXT = (
    "扩散模型的训练目标可以写成去噪分数匹配,这一点在后文还会详细说明。然后引入离散分布的重参数"
)


def test_labeller_a_shorter_cut_of_the_same_text_is_a_repeat() -> None:
    assert _see(LONG_TEXT + "...", LONG_TEXT[:30] + "...") == [
        ("new", 1, False),
        ("repeat", 1, True),
    ]
    # "…" is an ellipsis too (NFKC makes it "..."), and the same cut is a plain repeat.
    assert _see(LONG_TEXT + "…", LONG_TEXT[:30] + "…", LONG_TEXT + "...")[1:] == [
        ("repeat", 1, True),
        ("repeat", 1, False),
    ]


def test_labeller_a_longer_re_cut_becomes_the_text_then_the_shorter_is_a_repeat() -> None:
    short, longer = LONG_TEXT[:30] + "...", LONG_TEXT + "..."
    assert _see(short, longer, short, LONG_TEXT[:40] + "...", longer) == [
        ("new", 1, False),
        ("repeat", 1, True),  # T becomes the longer text, the same revision
        ("repeat", 1, True),
        ("repeat", 1, True),
        ("repeat", 1, False),  # now equal to T
    ]


def test_labeller_a_text_shown_uncut_that_grows_is_an_update() -> None:
    whole = LONG_TEXT[:33]  # ends with 。: shown whole, no ellipsis
    assert _see(whole, LONG_TEXT + "...") == [("new", 1, False), ("update", 2, False)]
    assert _see(whole, whole + "感谢阅读。") == [("new", 1, False), ("update", 2, False)]
    # The shorter text is whole, not cut: also an update, even though it is a prefix.
    assert _see(LONG_TEXT + "...", whole)[1] == ("update", 2, False)


def test_labeller_edits_that_are_not_re_cuts() -> None:
    cut = LONG_TEXT + "..."
    comma = cut.replace(",", ";", 1)  # the same compact text: an update, not a re-cut
    typo = cut.replace("训练", "训炼", 1)
    assert _see(cut, comma)[1] == ("update", 2, False)
    assert _see(cut, typo, cut) == [("new", 1, False), ("update", 2, False), ("update", 1, False)]
    # Back to an older revision compares with its longest text, T.
    assert _see(LONG_TEXT[:30] + "...", cut, typo, cut, LONG_TEXT[:30] + "...") == [
        ("new", 1, False),
        ("repeat", 1, True),
        ("update", 2, False),
        ("update", 1, False),
        ("repeat", 1, True),
    ]
    # Width, spacing and the ellipsis style normalise away: plain repeats.
    assert _see(cut, "  " + LONG_TEXT.replace(",", "，") + " …")[1] == ("repeat", 1, False)


def test_labeller_keeps_articles_apart() -> None:
    labeller = generate.Labeller()
    assert labeller.see("a1", LONG_TEXT + "...") == ("new", 1, False)
    assert labeller.see("a2", LONG_TEXT[:30] + "...") == ("new", 1, False)
    assert labeller.see("a2", LONG_TEXT + "...") == ("repeat", 1, True)


# ---------------------------------------------------------------------------
# Stream kinds


def test_parse_kinds() -> None:
    assert generate.parse_kinds([]) == ()
    assert generate.parse_kinds(["all"]) == generate.STREAM_KINDS
    assert generate.parse_kinds(["sitewide"]) == ("series", "sitewide")
    assert generate.parse_kinds(["recut", "series", "recut"]) == ("series", "recut")
    with pytest.raises(ValueError):
        generate.parse_kinds(["nope"])


@needs_seeds
@pytest.mark.parametrize("kind", [*generate.STREAM_KINDS, "all"])
def test_each_kind_generates_deterministically(tmp_path: Path, kind: str) -> None:
    args = ("--seed", "7", "--dumps", "25", "--articles", "16", "--kind", kind)
    first = _run_generator(tmp_path / "a", "1", *args)
    second = _run_generator(tmp_path / "b", "2", *args)
    assert first == second and first.startswith("kinds=")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@needs_seeds
def test_without_kinds_the_default_stream_is_unchanged() -> None:
    """No --kind is the default stream; recut is the default stream re-cut."""
    plain = generate.generate(5, generate.stream_settings(30, 20))[0]
    none = generate.generate(5, generate.stream_settings(30, 20, kinds=()))[0]
    assert [d.content() for d in plain] == [d.content() for d in none]
    recut = generate.generate(5, generate.stream_settings(30, 20, kinds=["recut"]))[0]

    def structure(dumps: list[Any]) -> list[Any]:
        return [
            (d.name, [(x.number, x.article.aid if x.article else x.text, x.edit) for x in d.lines])
            for d in dumps
        ]

    assert structure(plain) == structure(recut)
    ratios = []
    for d, e in zip(plain, recut, strict=True):
        for x, y in zip(d.lines, e.lines, strict=True):
            if x.article and x.text.endswith("...") and y.text.endswith(("...", "…")):
                ratios.append(len(y.text.rstrip(".…")) / len(x.text.rstrip(".…")))
    assert ratios and 0.5 <= min(ratios) and max(ratios) <= 1.42
    assert sum(1 for r in ratios if abs(r - 1) > 0.02) >= 0.8 * len(ratios)


_KIND_STREAMS: dict[str, Any] = {}


def _kind_stream(kind: str) -> tuple[list[Any], list[dict[str, Any]], list[Any]]:
    """One stream per kind (seed 23, small), generated once per test session."""
    if not generate.DEFAULT_SEEDS.is_dir():
        pytest.skip(f"no seed dumps at {generate.DEFAULT_SEEDS}")
    if kind not in _KIND_STREAMS:
        dumps = 210 if kind == "long" else 60 if kind == "siblings" else 40
        settings = generate.stream_settings(dumps, 30 if kind != "long" else 20, kinds=[kind])
        _KIND_STREAMS[kind] = generate.generate(23, settings)
    return _KIND_STREAMS[kind]


def _shown(dumps: list[Any]) -> dict[tuple[str, int], str]:
    return {(d.name, x.number): x.text for d in dumps for x in d.lines}


def _firsts(kind: str) -> dict[str, tuple[int, str]]:
    """True article -> (index of its first dump, its first text)."""
    dumps, labels, _ = _kind_stream(kind)
    text = _shown(dumps)
    index = {d.name: i for i, d in enumerate(dumps)}
    return {
        r["article"]: (index[r["dump"]], text[(r["dump"], r["line"])])
        for r in labels
        if r["kind"] == "new"
    }


def test_series_issues_share_a_long_preamble_but_the_number() -> None:
    dumps, labels, articles = _kind_stream("series")
    firsts = _firsts("series")
    issues = [a for a in articles if a.source == "series" and a.aid]
    assert len({a.groups[0] for a in issues}) == 2
    masked = {a.aid: re.sub(r"\d+", "#", firsts[a.aid][1]) for a in issues}
    pairs = [
        (a, b)
        for a, b in itertools.combinations(issues, 2)
        if masked[a.aid][:100] == masked[b.aid][:100] and firsts[a.aid][1] != firsts[b.aid][1]
    ]
    assert len(pairs) >= 50
    for a in issues:
        assert 100 <= a.prefix_chars <= 200 + 4  # a site-wide change may lengthen it
        assert re.match(r"《[^》]+》第 \d+ 期 ", firsts[a.aid][1])
    # New issues keep arriving: the listing shows several at once.
    most = max(sum(1 for x in d.lines if x.article in issues) for d in dumps)
    assert most >= 5
    assert max(firsts[a.aid][0] for a in issues) >= len(dumps) - 8


def test_sitewide_changes_every_listed_issue_of_a_series_at_once() -> None:
    dumps, labels, _ = _kind_stream("sitewide")
    label = {(r["dump"], r["line"]): r for r in labels}
    events = changed = listed = 0
    for d in dumps:
        if d.resaved:
            continue
        rows = [(x, label[(d.name, x.number)]) for x in d.lines if x.article]
        for group in sorted({x.article.groups[0] for x, r in rows if r["edit"] == "sitewide"}):
            issues = [r for x, r in rows if x.article.groups[:1] == (group,) and r["kind"] != "new"]
            if sum(r["edit"] == "sitewide" for r in issues) < 2:
                continue  # an issue back on the listing with an older change
            events += 1
            listed += len(issues)
            changed += sum(r["kind"] == "update" and "sitewide" in r["edits"] for r in issues)
    assert events >= 2
    assert changed >= 0.8 * listed
    assert all(r["kind"] == "update" for r in labels if r["edit"] == "sitewide")


def test_recut_shows_posts_at_other_lengths_and_they_are_repeats() -> None:
    dumps, labels, _ = _kind_stream("recut")
    text = _shown(dumps)
    last: dict[str, int] = {}
    same = other = 0
    for d in dumps:
        if d.resaved:
            continue
        for x in d.lines:
            if x.article is None or not x.text.endswith(("...", "…")):
                continue
            aid = x.article.aid
            if aid in last:
                same += last[aid] == len(x.text)
                other += last[aid] != len(x.text)
            last[aid] = len(x.text)
    assert other >= 0.9 * (same + other) and other > 200
    recuts = [r for r in labels if r["recut"]]
    assert len(recuts) >= 0.6 * sum(r["kind"] == "repeat" for r in labels)
    assert {r["kind"] for r in recuts} == {"repeat"}
    # Posts shown whole stay whole.
    whole: dict[str, set[bool]] = defaultdict(set)
    for r in labels:
        whole[r["article"]].add(text[(r["dump"], r["line"])].endswith(("...", "…")))
    assert any(kinds == {False} for kinds in whole.values())


def test_long_has_pinned_posts_seen_hundreds_of_times() -> None:
    dumps, labels, articles = _kind_stream("long")
    sightings = Counter(r["article"] for r in labels)
    pinned = [a for a in articles if a.source == "pinned"]
    assert len(pinned) == generate.PINNED
    assert all(sightings[a.aid] >= 200 for a in pinned)
    updates = Counter(r["article"] for r in labels if r["kind"] == "update")
    assert updates[pinned[0].aid] == 0  # never edited
    assert all(1 <= updates[a.aid] <= 10 for a in pinned[1:])  # occasional edits
    for d in dumps[2:]:  # on top of every listing
        assert [x.article for x in d.lines if x.article][: len(pinned)] == pinned


def _tokens(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+|\d+|[\u4e00-\u9fff]", re.sub(r"\d+", "0", text))


def test_siblings_differ_only_in_numbers_and_a_few_words() -> None:
    dumps, labels, articles = _kind_stream("siblings")
    firsts = _firsts("siblings")
    siblings = [a for a in articles if a.source == "siblings" and a.aid]
    assert len({a.groups[0] for a in siblings}) == 2
    together = apart = 0
    present: dict[str, set[int]] = defaultdict(set)
    index = {d.name: i for i, d in enumerate(dumps)}
    for r in labels:
        present[r["article"]].add(index[r["dump"]])
    for a, b in itertools.combinations(siblings, 2):
        if a.groups != b.groups:
            continue
        x, y = _tokens(firsts[a.aid][1]), _tokens(firsts[b.aid][1])
        matcher = difflib.SequenceMatcher(None, x, y, autojunk=False)
        changed = sum(
            max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"
        )
        assert changed <= 10, (firsts[a.aid][1][:80], firsts[b.aid][1][:80])
        assert generate.normalize(firsts[a.aid][1]) != generate.normalize(firsts[b.aid][1])
        start_a, start_b = firsts[a.aid][0], firsts[b.aid][0]
        if start_a == start_b:
            together += 1
        elif not present[a.aid if start_a < start_b else b.aid] & {max(start_a, start_b)}:
            apart += 1  # the older one had left the listing when the newer came
    assert together >= 2 and apart >= 2
    # A typo fixed in a version number is an update of that post.
    fixes = [r for r in labels if r["edit"] == "version_fix"]
    assert fixes and all(r["kind"] == "update" for r in fixes)
    text = _shown(dumps)
    previous: dict[str, str] = {}
    for r in labels:
        now = text[(r["dump"], r["line"])]
        if r["edit"] == "version_fix":
            matcher = difflib.SequenceMatcher(None, previous[r["article"]], now, autojunk=False)
            for op, i1, i2, j1, j2 in matcher.get_opcodes():
                # (at the end: the cut pulls in what a shorter version number frees)
                if op != "equal" and i1 < len(previous[r["article"]]) - 6:
                    changed_text = previous[r["article"]][i1:i2] + now[j1:j2]
                    assert re.fullmatch(r"[\d.]+", changed_text), (op, changed_text)
        previous[r["article"]] = now


def test_insert_edits_a_section_after_the_opening_or_the_first_sentence() -> None:
    dumps, labels, _ = _kind_stream("insert")
    text = _shown(dumps)
    previous: dict[str, str] = {}
    seen: Counter[str] = Counter()
    for r in labels:
        now = text[(r["dump"], r["line"])]
        before = previous.get(r["article"], "")
        previous[r["article"]] = now
        if r["edit"] not in ("insert_section", "rewrite_opening"):
            continue
        seen[r["edit"]] += 1
        assert r["kind"] == "update"
        common = len(os.path.commonprefix([before, now]))
        if r["edit"] == "insert_section":
            assert len(now) == len(before)  # the cut stays: the end is pushed off
            assert 0.15 * len(before) - 2 <= common <= 0.5 * len(before) + 2
            grown = now[common:]
            inserted = next(
                n for n in range(len(grown)) if before[common:].startswith(grown[n:][:40])
            )
            assert 0.19 * len(before) <= inserted <= 0.41 * len(before)
        else:
            assert common <= 2
            first = re.search(r"[。！？!?]", before)
            assert first is not None
            assert before[first.end() : first.end() + 60] in now
    assert seen["insert_section"] >= 3 and seen["rewrite_opening"] >= 3


@needs_seeds
def test_every_kind_keeps_the_promise_but_siblings() -> None:
    """Every shown text of different articles, pairwise, in a stream of all kinds."""
    dumps, _, _ = generate.generate(41, generate.stream_settings(40, 24, kinds=["all"]))
    texts: dict[Any, set[str]] = defaultdict(set)
    for d in dumps:
        for x in d.lines:
            if x.article:
                texts[x.article].add(x.text)
    grams = {a: [generate._grams(generate.normalize(t)) for t in ts] for a, ts in texts.items()}
    union = {a: frozenset().union(*g) for a, g in grams.items()}
    worst = 0.0
    for a, b in itertools.combinations(texts, 2):
        if a.exempt_with(b):
            continue
        least = min(len(g) for g in grams[a] + grams[b])
        if len(union[a] & union[b]) < generate.MAX_PAIR_OVERLAP * least - 1:
            continue  # no pair of their texts can reach the promise
        for x in texts[a]:
            for y in texts[b]:
                worst = max(worst, generate.overlap(x, y))
    assert worst < generate.MAX_PAIR_OVERLAP


# ---------------------------------------------------------------------------
# run.py over seeds and kinds


def test_parse_seeds() -> None:
    assert run_mod.parse_seeds("1-3") == [1, 2, 3]
    assert run_mod.parse_seeds("23,41-43,23") == [23, 41, 42, 43]
    with pytest.raises(SystemExit):
        run_mod.parse_seeds("a-b")


@needs_seeds
def test_generator_table_has_a_row_per_kind(tmp_path: Path) -> None:
    table = run_mod.generator_table(
        tmp_path, seeds=(3,), kinds=("default", "recut"), stream=(8, 12), dumps_of={}
    )
    assert [row["name"] for row in table["rows"]] == ["default", "recut"]
    for row in table["rows"]:
        for system in ("feedd", "baseline"):
            assert "error" not in row[system], row[system]
            assert row[system]["lost_lines"] == row[system]["spurious_lines"] == 0
    assert table["rows"][1]["recuts"] > table["rows"][0]["recuts"]
    text = run_mod.format_generator_table(table)
    header = text.splitlines()[3].split()
    assert header[:4] == ["kind", "lines", "upd", "recut"]
    assert "f:upd_rec" in header and "t:new_prec" in header and "t:merges" in header


@needs_seeds
def test_run_scores_several_seeds_of_a_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--seeds", "3-4", "--kind", "series", "--dumps", "8", "--articles", "12"]
    assert run_mod.main([*args, "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kinds"] == ["series"]
    assert [row["name"] for row in result["rows"]] == ["seed 3", "seed 4"]
    pooled = result["pooled"]
    assert pooled["lines"] == sum(row["lines"] for row in result["rows"])
    assert pooled["baseline"]["lost_lines"] == 0
    assert (tmp_path / "seeds-3-4-series.json").is_file()
    assert run_mod.main([*args, "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("stream: series, 8 dumps x 12 articles")
    assert any(line.startswith("pooled") for line in lines)
