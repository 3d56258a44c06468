"""Issue #5's detection targets, on a small fixed-seed stream of the benchmark.

The benchmark is ``make bench-detection`` (bench/detection/run.py, several
seeds and a sweep); this is its one-seed version, on the default stream (no
``--kind``: generate.py's docstring describes the kinds). It asserts the targets exactly
as the issue states them for feedd's default config, and that the textbook
baseline scores measurably worse on the same stream, so the benchmark cannot
silently become trivial. The labels follow the re-cut contract (generate.Labeller):
the same text cut at another length is a repeat of its revision.
docs/detection.md explains the stream, the design and the known failures.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import bench_detection

# The report seed and size of `make bench-detection`, so that the table in
# docs/detection.md is the one asserted here (about 5 s). The defaults were
# tuned on other seeds (11-20).
SEED = 23
DUMPS = 150
ARTICLES = 150


bench = bench_detection("run")


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not bench.generate.DEFAULT_SEEDS.is_dir():
        pytest.skip(f"no seed dumps at {bench.generate.DEFAULT_SEEDS}")
    corpus = bench.make_corpus(
        tmp_path_factory.mktemp("detection"), SEED, DUMPS, ARTICLES, kinds=()
    )
    return bench.report(corpus, overrides={}, mistake_limit=10)


def _explain(report: dict[str, Any]) -> str:
    """What to look at when a target is missed: the first wrong lines."""
    return json.dumps(report["mistakes"], ensure_ascii=False, indent=1)


def test_stream_holds_what_the_targets_are_about(measured: dict[str, Any]) -> None:
    feedd = measured["systems"]["feedd"]
    assert feedd["labelled_lines"] > 1000
    assert feedd["confusion"]["update"]["update"] + feedd["confusion"]["update"]["new"] > 80
    edits = feedd["by_edit"]
    for kind in ("stacked", "away", "boilerplate", "recut_longer", "recut_shorter", "revert"):
        assert edits.get(kind, {}).get("lines", 0) >= 1, kind
    # Re-cuts (recut_* edits, and every later sighting of a shorter cut) are repeats.
    assert feedd["recut_lines"] >= 20


def test_feedd_meets_the_targets_on_its_default_config(measured: dict[str, Any]) -> None:
    feedd = measured["systems"]["feedd"]
    why = _explain(measured)
    assert feedd["lost_lines"] == 0, why
    assert feedd["spurious_lines"] == 0, why
    assert feedd["false_merges"] == 0, why
    assert feedd["update_recall"] >= 0.99, why
    assert feedd["new_precision"] >= 0.995, why
    assert feedd["repeat_accuracy"] == 1.0, why


def test_the_baseline_is_measurably_worse(measured: dict[str, Any]) -> None:
    feedd = measured["systems"]["feedd"]
    textbook = measured["systems"]["baseline"]
    assert textbook["lost_lines"] == textbook["spurious_lines"] == 0  # same lines, other answers
    assert textbook["update_recall"] < feedd["update_recall"] - 0.2
    assert textbook["new_precision"] < feedd["new_precision"]


# Minimal inputs the benchmark found, where feedd's candidate search (simhash
# within 3 bits, or one shared leading segment) proposes nothing, so an update
# becomes a new article. Verification would accept both pairs (containment 0.88
# and 0.99). docs/detection.md, "Known failures", has the analysis and the fix;
# these turn into XPASS (a failure, strict) when the fix lands: drop the mark then.
_PREAMBLE = "声明:本文为原创文章,首发于个人博客与公众号「算法工程笔记」,未经授权禁止转载;"
_POST = (
    "模型设计 ControlNet的模型结构如下所示,这里是直接复制一份SD的上半部分:"
    "Encoder和中间的Middle Block。 更准确地讲,它们是假"
)
_FORMULA = (
    "基于文章 《Elucidating the Design Space of Diffusion-Based Generative Models》 "
    "来统一扩散模型框架 通用扩散模型框架推导 加噪公式 Flow Matching的一步加噪公式 "
    "\\[\\mathbf{x}_t=(1-t)\\mathbf{x}_0+t\\varepsilon\\] 写成概率分布形式: "
    "\\[p(\\mathbf{x}_t|\\mathbf{..."
)
FORMER_MISSES = [  # missed by clause-based segments; found since winnowing
    pytest.param(
        _PREAMBLE
        + "如需转载请联系作者获得授权,并在文章开头注明作者和原文出处,谢谢支持。"
        + _POST
        + "...",
        "声明:本文为原创文章,同步发布于个人博客、知乎与公众号「算法工程笔记」,未经授权禁止转载;"
        "如需转载请联系作者,并在文章开头注明作者和原文出处。" + _POST + "设了 \\...",
        id="site-wide-preamble-change-on-a-short-post",
    ),
    pytest.param(
        _FORMULA, _FORMULA.replace("来统一扩散", "来统一之散"), id="typo-in-the-only-segment"
    ),
]


@pytest.mark.parametrize(("before", "after"), FORMER_MISSES)
def test_former_candidate_misses_are_found(sqlite_url: str, before: str, after: str) -> None:
    from datetime import UTC, datetime

    from feedd.app import build
    from feedd.config import load_config
    from feedd.core.decide import Decision
    from tests.support import dump_bytes

    app = build(load_config(None, env={}, overrides={"database.url": sqlite_url}))
    try:
        seen = datetime(2026, 1, 1, tzinfo=UTC)
        app.ingester.ingest_bytes("000_0000000000000000.txt", dump_bytes(before), seen)
        observed: list[Decision] = []
        app.ingester.observer = lambda _name, lines: observed.extend(d for _, d in lines)
        app.ingester.ingest_bytes("001_0000000000000001.txt", dump_bytes(after), seen)
    finally:
        app.close()
    decision = observed[0]
    assert (decision.kind.value, decision.article_id) == ("update", 1), decision.reason
