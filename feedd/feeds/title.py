"""Readable feed titles from an item's text.

The listing has no titles, only the opening of each article. A scraped opening
starts with whatever the page put first: a section heading ("简介", "背景:"),
a marker emoji, the source URL, a "论文名称:" label. A reader wants the first
thing that says what the article is about, so those are dropped and the rest is
cut at the most natural boundary that fits.

Pure: no I/O, no configuration beyond ``max_chars``.
"""

from __future__ import annotations

import re
import unicodedata

UNTITLED = "(untitled)"
ELLIPSIS = "…"

# Headings that name a section, not an article. Matched only as a whole word at
# the start, so "背景音乐" or "Introduction to X" stay.
_GENERIC_CJK = (
    "引言与背景",
    "背景介绍",
    "研究背景",
    "内容简介",
    "论文简介",
    "题目描述",
    "问题描述",
    "技术分析",
    "模型概述",
    "方法概述",
    "简介",
    "背景",
    "概述",
    "概要",
    "引言",
    "前言",
    "导读",
    "介绍",
    "摘要",
    "题目",
    "方法",
    "正文",
)
_GENERIC_LATIN = (
    "introduction",
    "background",
    "overview",
    "abstract",
    "summary",
    "preface",
    "motivation",
    "methods",
    "method",
    "tl;dr",
)
# "Stanford Alpaca简介": a word glued to one of these is the next section's heading.
_SECTION_SUFFIXES = ("简介", "概述", "概要", "介绍", "背景")
# Labels whose value is the title itself: keep the value, drop the label.
_TITLE_LABELS = (
    "论文名称",
    "论文标题",
    "论文题目",
    "文章标题",
    "原文标题",
    "标题",
    "名称",
    "title",
    "paper",
)

_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)
_PLACEHOLDER = re.compile(
    r"\[(?:math|formula|公式|代码|code|图片|图像|image|img|表格|table|视频|video|链接|link)\]",
    re.IGNORECASE,
)
# LaTeX: \( \), \[ \], $$ $$, and $ $ only when the inside looks like TeX, so
# "$5 and $10" is left alone. A listing may cut a formula, so an unclosed
# opener swallows the rest of the text.
_LATEX = re.compile(
    r"\\\((?P<inline>.*?)(?:\\\)|$)"
    r"|\\\[.*?(?:\\\]|$)"
    r"|\$\$.*?(?:\$\$|$)"
    r"|\$[^$]*?[\\^_{][^$]*?\$",
    re.DOTALL,
)
_SIMPLE_MATH = re.compile(r"[A-Za-z0-9 ]{1,12}")
_NUMBERING = re.compile(r"(?:\d{1,2}|[一二三四五六七八九十]{1,2})[.、)）](?!\d)\s*")
_LEADING_JUNK = re.compile(r"[\s#>*•·\-–—|~=_:：,，.。、;；!！?？)）\]】]+")
_TRAILING_JUNK = re.compile(r"[\s,，、:：;；\-–—·|/\\(（\[【《“\"'.。]+$")
_TRAILING_CUT = re.compile(r"(?:\s*(?:\.{2,}|…+))+\s*$")
_SPACE_BEFORE_PUNCT = re.compile(r" +(?=[,，。.、;；:：!！?？)）》」』】])")
_SPACE_AFTER_OPEN = re.compile(r"(?<=[(（《「『【]) +")
_LABEL_BEFORE_URL = re.compile(r"(?:^|\s)[^\s:：]{1,12}\s*[:：]\s*$")

# Boundary strength: a sentence end beats a clause break beats a space.
_SENTENCE, _CLAUSE, _SPACE = 3, 2, 1
_SENTENCE_END = frozenset("。！？!?；;")
_CLAUSE_END = frozenset("，,：:")
_OPEN = frozenset("(（《「『【[“")
_CLOSE = frozenset(")）》」』】]”")
_INITIALISM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
_ABBREVIATIONS = frozenset({"vs", "e.g", "i.e", "etc", "al", "fig", "eq", "no", "cf", "mr", "dr"})
# A clause shorter than this before a comma is a transition ("首先,", "的确,",
# "换句话说,"); cutting there leaves a title that ends mid-thought.
_MIN_CLAUSE = 5
_MIN_TITLE = 6
# A first sentence up to this share of the limit is the title; a longer one loses
# to its first clause of at least _GOOD_CLAUSE characters.
_SOFT_SHARE = 0.65
_GOOD_CLAUSE = 12
# A title comes from the opening; reading further only costs time (an item may
# hold a megabyte, and stripping a hostile run of headings is quadratic).
_SCAN_CHARS = 4096


def make_title(text: str, max_chars: int = 80) -> str:
    """A one-line title of at most ``max_chars`` characters (+1 for "…").

    Never empty: falls back to the start of the text, then to "(untitled)".
    """
    limit = max(1, max_chars)
    clean = _clean(text[: _SCAN_CHARS + 4 * limit])
    body = _strip_noise(clean)
    body = _strip_head(body)
    body, broken = _before_marker(body)
    body = _tidy(_dedupe(body))
    title = _cut(body, limit, broken=broken) if body else ""
    if _meaningful(title):
        return title
    fallback = _cut(_tidy(clean), limit)
    if _meaningful(fallback):
        return fallback
    return UNTITLED if len(UNTITLED) <= limit else _hard_cut(UNTITLED, limit)


def _clean(text: str) -> str:
    """One line of printable text: no controls, no format characters, no surrogates."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Zl", "Zp") or ch in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85":
            out.append(" ")
        elif category in ("Cc", "Cf", "Cs") or ch in "\ufffe\uffff":
            continue
        else:
            out.append(ch)
    return " ".join("".join(out).split())


# Stands where a formula or a placeholder was: the sentence around it is broken,
# so the title ends before it. _clean has removed every real control character.
_GAP = "\x00"


def _strip_noise(text: str) -> str:
    text = _PLACEHOLDER.sub(_GAP, text)
    text = _LATEX.sub(_latex_replacement, text)
    return " ".join(text.split())


def _latex_replacement(match: re.Match[str]) -> str:
    # Keep a lone symbol ("\(Z\)" -> "Z"): dropping it would leave "从隐变量 生成".
    inner = match.group("inline")
    if inner is not None and _SIMPLE_MATH.fullmatch(inner.strip()):
        return f" {inner.strip()} "
    return _GAP


def _is_emoji(ch: str) -> bool:
    code = ord(ch)
    if code in (0x200D, 0x20E3) or 0xFE00 <= code <= 0xFE0F or 0x1F3FB <= code <= 0x1F3FF:
        return True
    return unicodedata.category(ch) == "So" and code >= 0x2190


def _strip_head(text: str) -> str:
    """Drop leading markers, URLs, numbering, generic headings and title labels."""
    while True:
        before = text
        text = text.lstrip()
        while text and _is_emoji(text[0]):
            text = text[1:]
        match = _LEADING_JUNK.match(text)
        if match:
            text = text[match.end() :]
        match = _URL.match(text)
        if match:
            text = text[match.end() :]
        match = _NUMBERING.match(text)
        if match and match.end() < len(text):
            text = text[match.end() :]
        text = _drop_heading(text)
        if text == before:
            return text


def _drop_heading(text: str) -> str:
    lower = text.lower()
    for label in _TITLE_LABELS:
        if lower.startswith(label):
            rest = text[len(label) :].lstrip()
            if rest[:1] in (":", "："):
                return rest[1:]
    for word in _GENERIC_CJK:
        if text.startswith(word):
            rest = text[len(word) :]
            if not rest or rest[0] in " :：":
                return rest
    for word in _GENERIC_LATIN:
        if lower.startswith(word):
            rest = text[len(word) :]
            if not rest or rest[0] in ":：":
                return rest
            # "Introduction to X" is a title; "Introduction Inception ..." is a heading.
            if rest[0] == " " and not rest[1:2].islower():
                return rest
    return text


def _before_marker(text: str) -> tuple[str, bool]:
    """The text before the first URL, marker emoji or formula, minus a "代码地址:" label.

    A URL in the middle of an opening separates the title from what follows
    ("LLaMA: ... Models 论文地址: https://..."). When nothing readable stands
    before it, the URL is dropped and the search goes on after it. The flag
    says the text stopped at a formula or placeholder, mid-sentence.
    """
    while text:
        cut = len(text)
        url = _URL.search(text)
        if url:
            cut = url.start()
        mark = next((i for i, ch in enumerate(text[:cut]) if _is_emoji(ch) or ch == _GAP), None)
        if mark is not None:
            cut = mark
        if cut == len(text):
            return text, False
        head = _LABEL_BEFORE_URL.sub("", text[:cut]).strip()
        if _meaningful(head) and len(head) >= 2:
            return head, text[cut] == _GAP
        rest = text[cut:]
        rest = rest[url.end() - cut :] if url and url.start() == cut else rest[1:]
        text = _strip_head(rest)
    return text, False


def _dedupe(text: str) -> str:
    """Collapse an immediately repeated run of words: a heading glued to the body
    that repeats it ("Normalizing Flow Normalizing Flow 是...")."""
    tokens = text.split(" ")
    for size in range(6, 0, -1):
        i = 0
        while i + 2 * size <= len(tokens):
            unit = tokens[i : i + size]
            if unit == tokens[i + size : i + 2 * size] and len(" ".join(unit)) >= 3:
                del tokens[i + size : i + 2 * size]
            else:
                i += 1
    return " ".join(tokens)


def _tidy(text: str) -> str:
    text = text.replace(_GAP, " ")
    text = _SPACE_BEFORE_PUNCT.sub("", text)
    text = _SPACE_AFTER_OPEN.sub("", text)
    return " ".join(text.split())


def _meaningful(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _is_latin(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _boundaries(text: str, limit: int) -> list[tuple[int, int]]:
    """(end, strength) of every place a title may end, up to ``limit`` chars.

    ``end`` is the index of the boundary character; a sentence keeps it, the
    other kinds drop it.
    """
    out: list[tuple[int, int]] = []
    depth = 0
    clause_start = 0
    for i, ch in enumerate(text[: limit + 1]):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        if depth or i == 0:
            continue
        if ch in _SENTENCE_END or (ch == "." and _ends_sentence(text, i)):
            out.append((i, _SENTENCE))
            clause_start = i + 1
        elif ch in _CLAUSE_END and _is_clause_break(text, i):
            if len(text[clause_start:i].strip()) >= _MIN_CLAUSE:
                out.append((i, _CLAUSE))
            clause_start = i + 1
        elif ch == " ":
            heading = _section_heading(text, i)
            if heading is not None:
                out.append((heading, _SENTENCE))
            elif _is_cjk(text[i - 1]) and _is_cjk(text[i + 1 : i + 2]):
                # Chinese prose has no spaces between characters: one there is
                # where a scraped heading or list item ended.
                out.append((i, _CLAUSE))
            else:
                out.append((i, _SPACE))
    return out


def _section_heading(text: str, i: int) -> int | None:
    """Where the title ends when a section heading starts after the space at i.

    "UITARS 简介 UITARS是..." ends after "简介"; "…LLaMA 7B Stanford Alpaca简介 2023年"
    ends before "Stanford Alpaca简介", the next section's own heading.
    """
    token = text[i + 1 :].split(" ", 1)[0]
    if " " not in text[i + 1 :]:
        return None
    bare = token.rstrip(":：")
    if bare in _GENERIC_CJK or bare.lower() in _GENERIC_LATIN:
        return i + 1 + len(token)
    if any(bare.endswith(word) and len(bare) > len(word) for word in _SECTION_SUFFIXES):
        start = text.rfind(" ", 0, i)
        # "Stanford Alpaca简介": the heading may span the word before it too.
        previous = text[start + 1 : i]
        if previous and _is_latin(previous[-1]) and _is_latin(bare[0]) and start > 0:
            return start
        return i
    return None


def _is_cjk(ch: str) -> bool:
    return bool(ch) and ("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf")


def _ends_sentence(text: str, i: int) -> bool:
    after = text[i + 1 : i + 2]
    if after and after != " ":
        return False  # 3.5, example.com, e.g.
    before = text[:i].rsplit(" ", 1)[-1]
    if not before or (before.isdigit() and len(before) <= 2):
        return False  # "1. 先训练": a list number
    if _INITIALISM.fullmatch(before):
        return False  # U.S., e.g
    return before.lower() not in _ABBREVIATIONS


def _is_clause_break(text: str, i: int) -> bool:
    # "1,000", "a:b", "10:30" are not breaks; "LLaMA: Open" and "模型,它" are.
    before, after = text[i - 1 : i], text[i + 1 : i + 2]
    return not (before.isdigit() and after.isdigit()) and not (
        text[i] == ":" and _is_latin(before) and _is_latin(after)
    )


def _cut(text: str, limit: int, *, broken: bool = False) -> str:
    """Cut at the best boundary within ``limit``.

    ``broken`` says the text stops where a formula or placeholder was, so its
    last clause is a fragment ("假设数据 [Math]") and goes when a boundary allows.
    """
    text = _TRAILING_CUT.sub("", text).strip()
    floor = min(_MIN_TITLE, limit // 2)
    last = min(limit, len(text) - 2)  # a boundary at the very end cuts nothing
    marks = [(end, s) for end, s in _boundaries(text, last) if floor <= end <= last]
    sentences = [end for end, s in marks if s == _SENTENCE]
    clauses = [end for end, s in marks if s == _CLAUSE]
    if len(text) <= limit:
        if sentences:
            return _finish(text[: sentences[0] + 1])
        if broken and clauses and text[-1] not in _SENTENCE_END:
            return _finish(text[: clauses[-1]])
        return _finish(text)
    soft = max(_MIN_TITLE, int(limit * _SOFT_SHARE))
    if sentences and sentences[0] <= soft:
        return _finish(text[: sentences[0] + 1])
    good = [end for end in clauses if end >= min(_GOOD_CLAUSE, limit // 2)]
    if good and (not sentences or good[0] < sentences[0]):
        return _finish(text[: good[0]])
    if sentences:
        return _finish(text[: sentences[0] + 1])
    if clauses:
        return _finish(text[: clauses[-1]])
    spaces = [end for end, s in marks if s == _SPACE]
    if spaces:
        return _finish(text[: spaces[-1]]) + ELLIPSIS
    return _hard_cut(text, limit)


def _hard_cut(text: str, limit: int) -> str:
    head = text[:limit]
    # Never split a Latin word when a shorter cut exists.
    if len(text) > limit and _is_latin(text[limit - 1]) and _is_latin(text[limit]):
        start = limit - 1
        while start > 0 and _is_latin(head[start - 1]):
            start -= 1
        if start > 0:
            head = head[:start]
    return (_finish(head) or head.strip() or head) + ELLIPSIS


def _finish(title: str) -> str:
    title = title.strip()
    # A question keeps its mark; a statement loses its full stop.
    if title.endswith(("?", "？", "!", "！")):
        return _balance(title)
    return _balance(_TRAILING_JUNK.sub("", title))


def _balance(title: str) -> str:
    """Drop an opening bracket left unclosed by the cut, and what follows it."""
    depth = 0
    last_open = -1
    for i, ch in enumerate(title):
        if ch in _OPEN:
            if depth == 0:
                last_open = i
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
    if depth and last_open > 0:
        return _TRAILING_JUNK.sub("", title[:last_open]).strip()
    return title
