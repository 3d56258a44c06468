"""Character-level diffs: Chinese has no spaces, so a line diff says nothing."""

from __future__ import annotations

import os
from difflib import SequenceMatcher
from typing import Literal

Op = Literal["equal", "insert", "delete"]

DIFF_MAX_CHARS = 2000


def char_diff(old: str, new: str, limit: int = DIFF_MAX_CHARS) -> list[tuple[Op, str]]:
    """Runs of equal, deleted and inserted text turning ``old`` into ``new``.

    The cost stays bounded however long the texts are: the common start and
    end are cut off first, and a changed middle longer than ``limit`` is shown
    as one deletion and one insertion (SequenceMatcher is quadratic).
    """
    prefix = len(os.path.commonprefix([old, new]))
    old_rest, new_rest = old[prefix:], new[prefix:]
    suffix = len(os.path.commonprefix([old_rest[::-1], new_rest[::-1]]))
    old_mid = old_rest[: len(old_rest) - suffix]
    new_mid = new_rest[: len(new_rest) - suffix]
    middle: list[tuple[Op, str]]
    if max(len(old_mid), len(new_mid)) <= limit:
        middle = _matched(old_mid, new_mid)
    else:
        middle = [("delete", old_mid), ("insert", new_mid)]
    ops: list[tuple[Op, str]] = []
    for op, text in [("equal", old[:prefix]), *middle, ("equal", old_rest[len(old_mid) :])]:
        if not text:
            continue
        if ops and ops[-1][0] == op:
            ops[-1] = (op, ops[-1][1] + text)
        else:
            ops.append((op, text))
    return ops


def _matched(old: str, new: str) -> list[tuple[Op, str]]:
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
