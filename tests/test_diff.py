"""Character diffs for Chinese text: readable, exact, and bounded in cost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from feedd.core.diff import char_diff, inline_diff


def rebuild(ops: list[tuple[str, str]]) -> tuple[str, str]:
    old = "".join(t for op, t in ops if op != "insert")
    new = "".join(t for op, t in ops if op != "delete")
    return old, new


def test_one_character_change_in_chinese() -> None:
    ops = char_diff("编码向量是离散的", "编码矢量是离散的")
    assert ops == [("equal", "编码"), ("delete", "向"), ("insert", "矢"), ("equal", "量是离散的")]


def test_inline_diff_marks_changes_and_elides_long_context() -> None:
    old = "前" * 100 + "向" + "后" * 100
    new = "前" * 100 + "矢" + "后" * 100
    out = inline_diff(old, new, context=5)
    assert out == "…前前前前前[-向-]{+矢+}后后后后后…"


def test_a_huge_changed_middle_is_one_delete_and_one_insert() -> None:
    old, new = "甲" + "ab" * 5000 + "乙", "甲" + "ba" * 5000 + "乙"
    ops = char_diff(old, new, limit=100)
    assert [op for op, _ in ops] == ["equal", "delete", "insert", "equal"]
    assert rebuild(ops) == (old, new)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60), st.integers(min_value=0, max_value=80))
def test_diff_rebuilds_both_texts(old: str, new: str, limit: int) -> None:
    assert rebuild(char_diff(old, new, limit)) == (old, new)
