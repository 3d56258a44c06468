"""Character-level diffs: Chinese has no spaces, so a line diff says nothing."""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Literal

Op = Literal["equal", "insert", "delete"]


def char_diff(old: str, new: str) -> list[tuple[Op, str]]:
    """Runs of equal, deleted and inserted text turning ``old`` into ``new``."""
    # autojunk would treat frequent characters (的, 是, spaces) as junk on long
    # texts and produce absurd diffs.
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    out: list[tuple[Op, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.append(("equal", old[i1:i2]))
            continue
        if i2 > i1:
            out.append(("delete", old[i1:i2]))
        if j2 > j1:
            out.append(("insert", new[j1:j2]))
    return out


def inline_diff(old: str, new: str, *, context: int = 20) -> str:
    """wdiff-style text: ``…context [-deleted-]{+inserted+} context…``."""
    parts: list[str] = []
    ops = char_diff(old, new)
    for index, (op, text) in enumerate(ops):
        if op == "delete":
            parts.append(f"[-{text}-]")
        elif op == "insert":
            parts.append(f"{{+{text}+}}")
        elif len(text) > 2 * context:
            head = text[:context] if index > 0 else ""
            tail = text[-context:] if index < len(ops) - 1 else ""
            parts.append(f"{head}…{tail}")
        else:
            parts.append(text)
    return "".join(parts)
