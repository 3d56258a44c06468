"""Parse a dump file's bytes into items, or say why it is not a dump.

A dump is a snapshot of a "latest updates" listing::

    INCOMING TRANSMISSION
    <blank>
    LATEST UPDATES
    <one article summary per line, with noise lines between them>

Noise lines (a category word, a date, pagination) are not articles; the
category and date become metadata of the item that follows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from feedd.core.encoding import decode
from feedd.errors import InvalidDump

HEADER = ("INCOMING TRANSMISSION", "LATEST UPDATES")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# "1 2", "1 2 3 ... 9", "« 1 2 »", "下一页": the pager at the foot of a listing.
_PAGER_TOKEN = re.compile(r"[«»<>‹›]|\.{3}|…|\d{1,4}|上一页|下一页|next|prev", re.I)
_SENTENCE_PUNCT = re.compile(r"[。！？!?；;，,:：]")


@dataclass(frozen=True)
class Item:
    """One article summary line of a dump."""

    line: int  # 1-based physical line number in the file
    text: str  # exactly as read, without the line terminator
    category: str | None = None
    date: str | None = None


@dataclass(frozen=True)
class Noise:
    line: int
    text: str
    kind: str  # "category" | "date" | "pagination"


@dataclass(frozen=True)
class ParsedDump:
    encoding: str
    items: tuple[Item, ...]
    noise: tuple[Noise, ...]
    line_count: int


@dataclass(frozen=True)
class ParseLimits:
    max_category_chars: int = 24


def parse_dump(data: bytes, limits: ParseLimits | None = None) -> ParsedDump:
    """Parse a whole dump. Raises InvalidDump with a reason a person can act on."""
    limits = limits or ParseLimits()
    text, encoding = decode(data)
    # split("\n") rather than splitlines(): item text may hold U+2028, \x1c …,
    # which splitlines() would treat as line breaks and shift every line number.
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line; it is not a line itself
    header_end = _find_header(lines)
    items: list[Item] = []
    noise: list[Noise] = []
    category: str | None = None
    date: str | None = None
    for index in range(header_end, len(lines)):
        number = index + 1
        stripped = lines[index].strip()
        if not stripped:
            continue
        kind = classify_noise(stripped, limits)
        if kind == "date":
            date = stripped
        elif kind == "category":
            category = stripped
        if kind is not None:
            noise.append(Noise(number, stripped, kind))
            continue
        items.append(Item(number, lines[index].rstrip(), category, date))
        category = date = None
    return ParsedDump(encoding, tuple(items), tuple(noise), len(lines))


def _find_header(lines: list[str]) -> int:
    """Index of the first line after the header, or raise InvalidDump."""
    meaningful = [(i, line.strip()) for i, line in enumerate(lines[:20]) if line.strip()]
    if not meaningful:
        raise InvalidDump("empty file: no text at all")
    firsts = [text.upper() for _, text in meaningful[:2]]
    if tuple(firsts) != HEADER:
        shown = meaningful[0][1][:40]
        raise InvalidDump(
            f"no dump header: expected {HEADER[0]!r} then {HEADER[1]!r}, found {shown!r}"
        )
    return meaningful[1][0] + 1


def classify_noise(line: str, limits: ParseLimits) -> str | None:
    """'date', 'pagination', 'category' or None (an item). `line` is stripped."""
    if _DATE.fullmatch(line):
        return "date"
    # The first token alone settles most lines, without splitting a long item.
    if _PAGER_TOKEN.fullmatch(line.split(None, 1)[0]) and all(
        _PAGER_TOKEN.fullmatch(token) for token in line.split()
    ):
        return "pagination"
    if len(line) <= limits.max_category_chars and not _SENTENCE_PUNCT.search(line):
        return "category"
    return None
