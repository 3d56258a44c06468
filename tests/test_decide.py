"""The pure dump-level decision, table by table: no database, no files."""

from __future__ import annotations

import pytest

from feedd.core.decide import (
    Action,
    Candidate,
    ExactMatch,
    Item,
    Kind,
    claim_exact,
    claim_recuts,
    decide_dump,
)
from feedd.core.fingerprint import FingerprintSettings, fingerprint
from feedd.core.rarity import Background, distinct_codes, dump_counts
from feedd.core.verify import MatchSettings, Opening, Text, number_veto, recut

FS = FingerprintSettings()
MS = MatchSettings()
BODY = (
    "注意力机制的核心是在序列中为每个位置计算与其他位置的相关性权重,然后用这些权重对数值向量求和。"
    "这种做法让模型在处理长距离依赖时不再受限于循环结构,训练也更容易并行。"
    "本文从最简单的点积注意力讲起,再介绍多头注意力与位置编码的设计动机。"
)
OTHER = (
    "数据库索引的本质是用额外的存储换取查询时间,常见的结构包括B树、哈希表和倒排表。"
    "选择哪一种取决于查询的模式:范围查询适合B树,等值查询适合哈希,全文检索需要倒排。"
    "本文比较了三者在写入放大与缓存友好性上的差异,并给出一些实践建议。"
)
PREAMBLE = (
    "《机器学习周刊》第 {n} 期 本刊每周一出版,汇集一周内值得一读的论文、工具与讨论,欢迎投稿与转发。"
)


def text(raw: str) -> Text:
    return Text.of(raw, FS, MS.shingle_size)


def cand(article_id: int, raw: str) -> Candidate:
    return Candidate(article_id, article_id * 10, 1, text(raw), fingerprint(raw, FS).simhash)


def item(line: int, raw: str, *cands: Candidate, exact: tuple[ExactMatch, ...] = ()) -> Item:
    return Item(line, text(raw), fingerprint(raw, FS), exact, cands)


def decide(items: list[Item], stored_df: dict[int, int] | None = None) -> list:  # type: ignore[type-arg]
    fps = [i.fingerprint for i in items if i.fingerprint is not None]
    df = stored_df or {}
    return decide_dump(items, df, dump_counts(fps), MS)


@pytest.mark.parametrize(
    ("stored", "shown", "expected"),
    [
        (BODY, BODY[:80] + "...", "shorter"),  # cut shorter
        (BODY[:80] + "...", BODY, "longer"),  # the stored text was cut: now longer
        (BODY[:80] + "…", BODY[:120] + "…", "longer"),
        (BODY[:80], BODY, None),  # shown whole, then grew: an edit, not a re-cut
        (BODY, BODY[:80], None),  # shorter but not cut: an edit
        (BODY, BODY, None),  # the same text is an exact match, not a re-cut
        (BODY, OTHER[:80] + "...", None),
    ],
)
def test_recut_table(stored: str, shown: str, expected: str | None) -> None:
    assert recut(text(shown), text(stored)) == expected
    assert recut(Opening.of(shown, text(shown).normalized), text(stored)) == expected


@pytest.mark.parametrize(
    ("a", "b", "vetoed"),
    [
        (
            "Node v20.3.1 (Current) version: 20.3.1 notes",
            "Node v18.16.1 (LTS) version: 18.16.1 notes",
            True,
        ),
        ("node-v20-3-1 Node v20.3.1 notes", "node-v18-16-1 Node v18.16.1 notes", True),
        # A typo fixed in one occurrence leaves the old number elsewhere.
        ("Node v20.3.1 version: 20.3.1 notes", "Node v20.3.1 version: 20.3.2 notes", False),
        ("released 1.2.3 today", "released 1.2.4 today", False),  # once each: no veto
    ],
)
def test_identity_numbers_table(a: str, b: str, vetoed: bool) -> None:
    assert (number_veto(text(a), text(b), MS.prefix_slack) is not None) is vetoed


def test_exact_claims_current_revisions_first() -> None:
    old = ExactMatch(1, 11, 1, is_current=False)
    current = ExactMatch(1, 12, 2, is_current=True)
    other = ExactMatch(2, 21, 1, is_current=True)
    # Line 0 shows an older text of article 1, line 1 its current text.
    assert claim_exact([(old,), (current,), (other,)]) == [None, current, other]
    # Two lines with one text: the second does not take the same article.
    assert claim_exact([(other,), (other,)]) == [other, None]


def test_recut_claims_newest_unclaimed_article() -> None:
    shown = Opening.of(BODY[:80] + "...", BODY[:80])
    a, b = cand(1, BODY), cand(2, BODY)
    claimed: set[int] = set()
    assert claim_recuts([(shown, [a, b]), (shown, [a, b])], claimed) == [
        (b, "shorter"),
        (a, "shorter"),
    ]
    assert claimed == {1, 2}
    assert claim_recuts([(shown, [a])], {1}) == [None]


def test_an_edit_is_an_update_and_a_stranger_is_new() -> None:
    edited = BODY.replace("核心", "关键").replace("更容易", "更加容易")
    [d1, d2] = decide([item(4, edited, cand(1, BODY)), item(5, OTHER, cand(1, BODY))])
    assert (d1.kind, d1.action, d1.article_id) == (Kind.UPDATE, Action.REVISE, 1)
    assert (d2.kind, d2.action, d2.article_id) == (Kind.NEW, Action.CREATE, None)
    # The edit is weighed; the stranger is screened out on plain containment.
    assert not d1.scores[0].screened and d1.scores[0].weighted > 0
    assert d2.scores[0].screened and d2.scores[0].containment < MS.min_plain


def test_an_article_is_shown_at_most_once_per_dump() -> None:
    # Two edited lines both match article 1: the surer one takes it.
    close = BODY.replace("核心", "关键")
    far = BODY.replace("核心", "关键").replace("循环结构", "递归结构").replace("点积", "加性")
    [d1, d2] = decide([item(4, far, cand(1, BODY)), item(5, close, cand(1, BODY))])
    assert (d1.kind, d2.kind) == (Kind.NEW, Kind.UPDATE)
    assert d2.article_id == 1
    assert d1.scores[0].excluded and "another line" in d1.reason


def test_an_exact_line_excludes_its_article_for_the_others() -> None:
    edited = BODY.replace("核心", "关键")
    mine = ExactMatch(1, 10, 1, is_current=True)
    exact_line = Item(5, exact=(mine,))
    [d1, d2] = decide([item(4, edited, cand(1, BODY)), exact_line])
    assert (d1.kind, d2.kind) == (Kind.NEW, Kind.REPEAT)


def test_shared_boilerplate_is_not_evidence() -> None:
    # Two issues of one series share a long preamble; a third line of the
    # dump carries it too. Only the preamble is shared: different articles.
    one = PREAMBLE.format(n=105) + BODY
    two = PREAMBLE.format(n=106) + OTHER
    three = PREAMBLE.format(n=107) + "本期介绍几篇关于推荐系统冷启动的论文。" * 3
    stored = text(one)
    df = dict.fromkeys(stored.hashes, 1)  # the stored issue holds its own segments
    [d2, d3] = decide([item(4, two, cand(1, one)), item(5, three, cand(1, one))], df)
    assert (d2.kind, d3.kind) == (Kind.NEW, Kind.NEW)


def test_a_change_inside_the_shared_preamble_is_the_same_article() -> None:
    # A site-wide edit of the preamble, seen on every listed issue at once.
    old = [PREAMBLE.format(n=n) + body for n, body in ((105, BODY), (106, OTHER))]
    new = [p.replace("汇集", "精选") for p in old]
    items = [item(4 + i, new[i], cand(1, old[0]), cand(2, old[1])) for i in range(2)]
    df = {h: 2 for t in old for h in text(PREAMBLE.format(n=105)).hashes if h in text(t).hashes}
    [d1, d2] = decide(items, df)
    assert (d1.kind, d1.article_id, d2.kind, d2.article_id) == (Kind.UPDATE, 1, Kind.UPDATE, 2)


def test_background_weighs_common_shingles_down() -> None:
    texts = [text(t).compact for t in (BODY, OTHER, BODY + OTHER)]
    bg = Background.of([distinct_codes(t, MS.shingle_size) for t in texts])
    shared = text(BODY).codes[:1]  # in BODY and BODY + OTHER
    unseen = text("完全不同的文字内容").codes[:1]
    assert bg.idf(unseen)[0] > bg.idf(shared)[0] >= 1.0


# A post whose listing is cut at a fixed length: a title only it has, then its body.
TITLE = "--- title: 注意力机制入门 date: 2013-01-17 category: grammar --- "
SECTION = (
    "更新说明: 这一节是新加的,讲的是缩放点积注意力为什么要除以维度的平方根,"
    "以及在长序列上如何用稀疏注意力节省显存,附带两个小实验的结果。"
    "实验一比较了不同序列长度下的显存占用,实验二比较了稀疏模式对困惑度的影响。"
)
THIRD = (
    "城市规划里最难的一步是交通预测:道路修好以后会引来新的车流,所以拥堵往往很快回到原样。"
    "经济学家把这叫做诱发需求,它解释了为什么单纯加宽道路很少能长期缓解堵车。"
)


def cut(raw: str, chars: int) -> str:
    return raw[:chars] + "..."


def test_a_section_inserted_after_the_opening_is_an_update() -> None:
    # The listing's fixed cut pushes as much of the old text off the end as
    # was inserted: the containment falls below what an edit needs.
    shown = len(TITLE) + 200
    old = cut(TITLE + BODY + OTHER, shown)
    new = cut(TITLE + SECTION + BODY + OTHER, shown)
    [d] = decide([item(4, new, cand(1, old))])
    assert (d.kind, d.action, d.article_id) == (Kind.UPDATE, Action.REVISE, 1)
    assert d.scores[0].inserted and "inserted" in d.reason
    assert d.scores[0].containment < MS.min_plain


def test_an_insertion_needs_the_cut_and_the_old_text_after_it() -> None:
    shown = len(TITLE) + 200
    old = cut(TITLE + BODY + OTHER, shown)
    # Shown whole, not cut: nothing was pushed off, so the lost tail is a real
    # difference, and the line is a new post that quotes the old opening.
    [whole] = decide([item(4, (TITLE + SECTION + BODY)[:shown], cand(1, old))])
    # Cut, but what follows the new text is not the old text.
    [other] = decide([item(4, cut(TITLE + SECTION + THIRD, shown), cand(1, old))])
    assert (whole.kind, other.kind) == (Kind.NEW, Kind.NEW)
    assert not any(s.inserted for s in whole.scores + other.scores)


def test_an_insertion_after_a_shared_preamble_is_a_new_post() -> None:
    # Issue 106 of a series adds its own text after the preamble and goes on
    # with text it shares with issue 105: the opening before the new text is
    # the preamble, which other issues hold too, so nothing says it is 105.
    shown = len(PREAMBLE) + 200
    old = cut(PREAMBLE.format(n=105) + BODY + OTHER, shown)
    new = cut(PREAMBLE.format(n=106) + SECTION + BODY + OTHER, shown)
    preamble = text(PREAMBLE.format(n=105)).hashes
    df = {h: (3 if h in preamble else 1) for h in text(old).hashes}
    [d] = decide([item(4, new, cand(1, old))], df)
    assert d.kind is Kind.NEW
    assert not d.scores[0].inserted
    # The same text after an opening only issue 105 holds is its update.
    df = dict.fromkeys(text(old).hashes, 1)
    own = cut(PREAMBLE.format(n=105) + SECTION + BODY + OTHER, shown)
    [d] = decide([item(4, own, cand(1, old))], df)
    assert (d.kind, d.article_id) == (Kind.UPDATE, 1)
    assert d.scores[0].inserted
