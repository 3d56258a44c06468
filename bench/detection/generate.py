"""Generate a labelled stream of dump files for the detection benchmark.

    python bench/detection/generate.py --seed 1 --out /tmp/corpus [--dumps 150] [--articles 150]
        [--kind series --kind recut ... | --kind all] [--easy]

writes ``NNN_<16 hex>.txt`` dumps, ``labels.jsonl`` (one object per item line: the
true article, kind, revision, whether the line is a re-cut, and the edit that
produced the text) and ``articles.jsonl`` (the true articles and the groups they
belong to).

Everything is drawn from ``random.Random(seed)`` and the seed dumps, so the same
seed and seed folder give byte-identical output. No set is ever iterated while
drawing: string hashing is salted per process and would change the order.

Article texts are real: the item lines of the seed dumps, lengthened with
sentences of other seed items, plus articles spliced from sentences of 2-4
different seed items. Bodies run to 600-1200 characters and the listing shows
at most ``limit`` characters of each (350, sometimes 500, as in the seeds) and
an ellipsis, so most lines are cut; short articles are shown whole.

The world the stream imitates: a listing of the 12-14 most recently changed
articles. New articles push old ones out; an article edited while off the
listing comes back to the top ("away", often with 2-3 edits since it was last
seen); an article on the listing may get one edit or several saved between two
dumps ("stacked"); a site-wide preamble change touches every article of its
family at once; most sightings are repeats.

Hard negatives (see ``articles.jsonl`` groups): same opening heading (简介, 背景,
概述); the same opening sentence with different bodies; the same 75- or
105-character preamble, on short posts where it is about half of what is shown;
the same topic. The
benchmark's promise, checked on every text of every revision: two different
articles never have ``overlap`` >= MAX_PAIR_OVERLAP (the shorter text's
character 4-grams found in the same-length opening of the other). Group
members are built to come close to that line, the rest stay far below it.

Stream kinds (``--kind NAME``, repeatable; ``--kind all`` is every one). Each
adds one phenomenon of real listings on top of the default stream; without
``--kind`` the stream is exactly the default one (the same bytes as before the
kinds existed). A kind draws from generators of its own (``"<seed>:kinds"``,
``"<seed>:recut"``), and its articles are built after the default pool, so a
kind stream starts from the same pool and selection as the default stream.

- ``series``: two blog series (``《大模型周刊》第 116 期 …``, ``《生成模型与多模态前沿双周报》
  第 28 期 …``). Every issue opens with the series' preamble, 100-130 and
  160-200 characters of seed text that differ only in the issue number, then
  a body of its own. A new issue arrives every 2-5 dumps per series (spaced
  out so that a series has at most 40 issues), so the listing shows several
  issues at once (about 4-8 on 40 dumps). Issues of a series are a near-miss
  group (``series:N``): the preamble stays under 40% of what is shown.
- ``sitewide`` (brings ``series``): every 10-25 dumps per series, one word of
  the preamble (a SYNONYMS pair) changes in every issue at once: in that dump
  every listed issue whose preamble still holds the word in its context is an
  ``update`` (edit ``sitewide``); issues off the listing change too and show it
  when they come back; issues not yet published enter with the new word.
- ``recut``: every cut post is shown at another length in every dump: its
  usual cut times a factor drawn from 0.6-1.4 per post and dump, never past
  MAX_SHOWN (620, the part of a text built to be distinct), never where a
  preamble would be more than 45% of the text (PREFIX_SHARE), and always just
  after a letter, digit or CJK character, so two cuts differ in compact form.
  Posts shown whole stay whole. When a cut would bring two articles within the
  promise, a longer one is taken (then the usual one). The re-cut lines are
  ``repeat`` (see ground truth). Apart from the lengths this is the default
  stream: the same articles, edits and listings.
- ``long``: three pinned posts on top of every listing from dump 1 or 2 to the
  end (hundreds of sightings: ``--dumps`` defaults to LONG_DUMPS = 300 with
  this kind). The first is never edited; the other two get an ordinary edit
  every 10-20% of the stream.
- ``siblings``: release notes from two templates (Node.js style ``Node v21.5.0
  (Current) … Notable Changes …`` and a Chinese ``星河推理框架 v2.3.1
  版本发布说明 …``). Siblings differ only in version numbers, dates, PR/CVE
  numbers and one to three words. Releases alternate between a pair published
  in the same dump (two release lines) and a single one 16-40 dumps later, when
  the previous ones have left the listing. About a third first appear with a
  typo in the title's version number (a dot dropped, a digit doubled, two
  digits swapped) that is fixed 1-3 dumps later: an ``update`` of that post
  (edit ``version_fix``). Siblings (group ``siblings:NAME``) are outside the
  promise: only their numbers tell them apart (overlap about 0.75-0.85).
- ``insert``: in 30% of dumps one listed post gets one of two edits:
  ``insert_section``, a section of seed sentences (20-40% of the shown length)
  inserted at a sentence end 15-50% into the shown text, the cut staying where
  it was so that as much text leaves the end; or ``rewrite_opening``, its first
  sentence (at most 35% of what is shown) replaced by another of about the same
  length.

Ground truth (``Labeller``), from the shown texts alone. normalize: NFKC,
whitespace collapsed, trailing ellipsis dropped; compact: normalised,
lower-cased, letters/digits/CJK only (feedd/core/text.py). Each article's
current revision keeps T, the longest text seen for it. A line L is "new" at an
article's first sighting; else "repeat" when normalize(L) == normalize(T); else
"repeat" when compact(L) != compact(T), one of them is a prefix of the other and
the shorter one was cut (its raw text ends with ``...`` or ``…``) -- a re-cut,
``"recut": true`` in the label, and when L is the longer it becomes T (same
revision); else "update" back to an older revision whose T equals L once
normalised; else "update" to a new revision. Edits that only change width,
spacing or the ellipsis are therefore repeats, and so are re-cuts, including
an edit that leaves the compact text unchanged (a comma, a swap with a
punctuation mark) on a line shown shorter than T; a text shown whole that then
grows is an update. A line that goes back to a shorter cut of an older revision
is a new revision: only T is compared.

Seeds. Tuning seeds are 11-20 (choose settings there); report seeds are 23 and
41-60 (report on them, never tune on them); run.py's generator table uses 23
and 41. Seeds 1-40 are the wide check of the default stream.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SEEDS = REPO_ROOT.parent / "shared" / "seeds"
HEADER_LINES = ("INCOMING TRANSMISSION", "", "LATEST UPDATES")

# Ground truth must use exactly the normalisation the contract defines; this is
# the same expression feedd uses (NFKC, whitespace collapsed, trailing cut dropped).
_WHITESPACE = re.compile(r"\s+")
_TRAILING_CUT = re.compile(r"(?:\s*\.{2,})+\s*$")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_SEED_NOISE = re.compile(r"^(\S{1,12}|\d{4}-\d{2}-\d{2}|\d+( \d+)*)$")
_SENTENCE_END = re.compile(r"(?<=[。！？!?])\s*")
_CLAUSE_END = re.compile(r"[。！？!?,，;；]")
_NOT_ALNUM = re.compile(r"[\W_]+")

# The promise: different articles stay below this overlap (see module doc).
MAX_PAIR_OVERLAP = 0.7
# Margins kept while building, so that edits rarely hit the promise: members of
# a near-miss group are built up to _GROUP_OVERLAP, everything else far lower.
_GROUP_OVERLAP = 0.64
_BUILD_JACCARD = 0.35
_BUILD_CONTAINED = 0.45
_ALIGN_SLACK = 0.15  # the "same-length opening" of overlap() is 15% longer

LISTING_LIMITS = (350, 350, 350, 350, 500)  # characters shown before the ellipsis
SHORTER_LIMITS = (200, 250, 300)  # re-cut shorter to about one of these
LONGER_LIMITS = (400, 450, 500, 600)  # re-cut longer to about one of these
MAX_RUN_CHARS = 140  # consecutive characters taken from one seed item
MAX_SHOWN = 620  # nothing past this is ever shown, so only this part must be distinct
LONG_BODY = (600, 1200)
SHORT_BODY = (120, 340)
SHORT_SHARE = 0.12  # plain articles that are short enough to be shown whole

HEADINGS = ("简介 ", "背景 ", "概述 ")
HEADING_ARTICLES = 3  # derived articles per shared heading
OPENING_GROUPS = 3  # seed openings reused by derived articles
OPENING_ARTICLES = 2  # derived articles per reused opening
DIFFUSION_ARTICLES = 3

# Blog-series preambles, each shared by a family of articles. The variants of
# one family differ by a few words: what a site-wide preamble change looks like.
BOILERPLATES: tuple[tuple[str, ...], ...] = (
    (
        "【学习笔记】本文是大模型与生成模型系列笔记中的一篇,内容整理自论文原文、官方博客、"
        "公开课程以及社区里的讨论,主要用于个人学习和复习,文中的理解难免有偏差或错误,"
        "欢迎在评论区指出,转载请注明出处并附上原文链接。",
        "【学习笔记】本文是大模型与生成模型系列笔记中的一篇,内容整理自论文原文、官方博客、"
        "公开课程以及社区里的讨论,主要用于个人学习和复习,文中的理解难免有偏差或错误,"
        "欢迎私信或在评论区指出,转载请注明出处并附上原文链接。",
        "【学习笔记】本文是大模型与生成模型系列笔记(2025修订版)中的一篇,内容整理自论文原文、"
        "官方博客、公开课程以及社区里的讨论,主要用于个人学习和复习,文中的理解难免有偏差或错误,"
        "欢迎在评论区指出,转载请注明出处。",
    ),
    (
        "声明:本文为原创文章,首发于个人博客与公众号「算法工程笔记」,未经授权禁止转载;"
        "如需转载请联系作者获得授权,并在文章开头注明作者和原文出处,谢谢支持。",
        "声明:本文为原创文章,首发于个人博客与公众号「算法工程笔记」,未经授权禁止任何形式的转载;"
        "如需转载请联系作者获得授权,并在文章开头注明作者和原文出处,谢谢支持。",
        "声明:本文为原创文章,同步发布于个人博客、知乎与公众号「算法工程笔记」,未经授权禁止转载;"
        "如需转载请联系作者,并在文章开头注明作者和原文出处。",
    ),
)
BOILERPLATE_SHORT = 0.5  # family members that are short posts, mostly preamble
PREAMBLE_SHARE = (0.4, 0.58)  # of a short post's shown text

SYNONYMS = (
    ("方法", "方式"),
    ("使用", "采用"),
    ("问题", "难题"),
    ("简单", "简便"),
    ("提出", "给出"),
    ("主要", "核心"),
    ("可以", "能够"),
    ("需要", "必须"),
    ("实现", "完成"),
    ("非常", "十分"),
    ("比较", "相对"),
    ("因为", "由于"),
    ("所以", "因此"),
    ("但是", "不过"),
    ("然后", "接着"),
    ("最后", "最终"),
    ("目前", "当前"),
    ("例如", "比如"),
    ("重要", "关键"),
    ("提升", "提高"),
    ("显著", "明显"),
    ("发布", "推出"),
    ("介绍", "讲解"),
    ("通常", "一般"),
    ("特别", "尤其"),
    ("巨大", "庞大"),
    ("模型", "网络"),
    ("训练", "学习"),
)

CLAUSES = (
    ",这一点在后文还会详细说明",
    ",而且实现起来并不复杂",
    ",这也是它被广泛使用的原因之一",
    ",具体细节可以参考原论文",
    ",实验结果也验证了这一点",
    ",这在工程上非常常见",
    ",需要特别注意这一点",
    ",后续的很多工作都沿用了这个思路",
)

APPENDED_SENTENCES = (
    "更多细节可以参考原论文的附录部分。",
    "完整的代码已经整理到文末的仓库链接中,欢迎自取。",
    "下一篇文章将继续讨论具体的训练技巧和实验设置。",
    "本文会持续更新,如有新的进展会第一时间补充。",
    "感兴趣的读者可以自己动手实现一遍,加深理解。",
    "以上就是本文的全部内容,感谢阅读。",
    "2026年1月更新:补充了部分实验结果和参考文献。",
)

CATEGORIES = ("NLP", "NLP", "CV", "LLM", "AIGC")

# Edits an article can receive. "width", "whitespace" and "ellipsis" normalise
# to the same text, so their lines are true repeats. "boilerplate" is
# site-wide: it changes the preamble of every article of the family at once.
EDIT_WEIGHTS: dict[str, float] = {
    "typo": 3.0,
    "punctuation": 2.0,
    "width": 1.5,
    "whitespace": 0.6,
    "ellipsis": 0.5,
    "word": 2.0,
    "clause_insert": 1.2,
    "clause_delete": 1.2,
    "append": 1.5,
    "recut_shorter": 0.8,
    "recut_longer": 0.8,
    "boilerplate": 0.6,
    "revert": 0.8,
}
EDIT_KINDS = tuple(EDIT_WEIGHTS)
# Edits that pile up between two sightings: ordinary saves of an author.
STACKABLE = tuple(k for k in EDIT_KINDS if k not in ("boilerplate", "revert", "ellipsis"))
# A label's "edit": the one edit's kind, or "stacked" (2-3 edits between two
# sightings on the listing), or "away" (1-3 edits while off the listing).
EDIT_TYPES = (*EDIT_KINDS, "stacked", "away")

# ---------------------------------------------------------------------------
# Stream kinds: phenomena of real listings, switched on one at a time with
# --kind (see the module doc). None is on by default.

STREAM_KINDS = ("series", "sitewide", "recut", "long", "siblings", "insert")
KIND_NEEDS = {"sitewide": ("series",)}  # a series' preamble change needs the series
# Edits only the kinds make ("edit" of a label); pinned posts get ordinary ones.
KIND_EDIT_TYPES = ("sitewide", "version_fix", "insert_section", "rewrite_opening")
LONG_DUMPS = 300  # --dumps default when `long` is on: pinned posts seen hundreds of times

# series: (title, preamble length range in characters, listing cuts). A preamble
# stays under 40% of what the listing shows, as the near-miss groups' promise needs.
SERIES = (
    ("大模型周刊", (100, 130), LISTING_LIMITS),
    ("生成模型与多模态前沿双周报", (160, 200), (500,)),
)
SERIES_CADENCE = (2, 3, 3, 4, 5)  # dumps between two issues of one series
SERIES_MAX_ISSUES = 40  # longer streams space the issues out
SITEWIDE_GAP = (10, 25)  # dumps between two preamble changes of one series
# recut: each cut post is shown at its usual cut times a factor in RECUT_RANGE,
# drawn per post and dump, never past MAX_SHOWN; a post that shares a preamble
# is never shown with less than preamble / PREFIX_SHARE characters (the promise,
# see the module doc).
RECUT_RANGE = (0.6, 1.4)
PREFIX_SHARE = 0.45
RECUT_LOWEST = min(SHORTER_LIMITS) - 4  # the shortest listing cut an edit can set
RECUT_STEP = 40  # characters between two cuts a kind checks when it builds or edits
PINNED = 3  # long: pinned posts; the first is never edited
PINNED_EDIT_GAP = (0.1, 0.2)  # of the stream's dumps, between two edits of a pinned post
PINNED_EDIT_KINDS = (
    "typo",
    "punctuation",
    "word",
    "clause_insert",
    "clause_delete",
    "append",
    "recut_longer",
    "recut_shorter",
)
INSERT_PROBABILITY = 0.3  # per dump: one listed post gets an insert or opening edit
INSERT_SHARE = (0.2, 0.4)  # of the shown length
INSERT_AT = (0.15, 0.5)  # the unchanged opening, as a share of the shown length
OPENING_SHARE = 0.35  # a rewritten first sentence is at most this share of what is shown

# siblings: release notes from one template. Numeric fields are drawn per post;
# of the word fields, a post changes one or two from the first (base) value.
SIBLING_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "name": "node",
        "text": (
            "Node v{v} ({line}) {date}, Version {v} '{codename}' ({line}), @{releaser}. "
            "This is a {kind} release. Notable Changes: The following CVEs are {verb} in this "
            "release: CVE-2023-{cve1} (High), CVE-2023-{cve2} (Medium) and CVE-2023-{cve3} (Low). "
            "{dep} has been updated to {depver}, and npm has been updated to {npm}. More "
            "detailed information on each of the vulnerabilities can be found in the {month} "
            "2023 Security Releases blog post. Commits: deps: update {dep} to {depver} "
            "(Node.js GitHub Bot) #{pr1}; deps: upgrade npm to {npm} (npm team) #{pr2}; "
            "src: {verb2} the permission model for worker threads (Rafael Gonzaga) #{pr3}; "
            "test: fix flaky test-http2-large-write on {os} (Joyee Cheung) #{pr4}."
        ),
        # release lines: (line word, major version, codename)
        "lines": (("Current", 21, "Iron"), ("LTS", 20, "Hydrogen")),
        "words": {
            "releaser": ("RafaelGSS", "targos", "juanarbol"),
            "kind": ("security", "feature"),
            "verb": ("fixed", "addressed"),
            "dep": ("OpenSSL", "libuv", "undici"),
            "verb2": ("harden", "refactor"),
            "os": ("Windows", "macOS", "AIX"),
        },
        "limit": 350,
    },
    {
        "name": "xinghe",
        "text": (
            "星河推理框架 v{v} 版本发布说明({line}版),发布日期:{date}。本次为{kind}版本,"
            "建议所有 v{major}.x 用户尽快升级。主要变更:1. 修复了多卡训练时 {op} 算子{bug}的问题"
            "(#{pr1});2. {verb}了 KV Cache 的显存占用,长序列推理吞吐提升约 {pct}%(#{pr2});"
            "3. 依赖更新:CUDA 最低版本调整为 {cuda},PyTorch 最低版本调整为 {torch};"
            "4. 新增 {feature} 模型的量化部署示例,并补充了分布式推理的使用文档(#{pr3});"
            "5. 调度器支持按请求优先级抢占,默认关闭,可通过配置项开启。已知问题:在 {os} "
            "上从源码编译时可能出现链接错误,临时解决方法见 #{pr4}。完整变更记录请参阅 "
            "CHANGELOG,感谢 {n} 位贡献者在本版本中的提交与反馈。"
        ),
        "lines": (("稳定", 2, ""), ("预览", 3, "")),
        "words": {
            "kind": ("修复", "功能"),
            "op": ("LayerNorm", "Softmax", "RoPE"),
            "bug": ("精度下降", "偶发崩溃", "显存泄漏"),
            "verb": ("优化", "降低"),
            "feature": ("Qwen", "Llama", "DeepSeek"),
            "os": ("Windows", "macOS"),
        },
        "limit": 500,
    },
)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August")
SIBLING_GAP = (16, 40)  # dumps between two releases of one template (bounds)


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _WHITESPACE.sub(" ", text).strip()
    return _TRAILING_CUT.sub("", text)


def compact(normalized: str) -> str:
    """Lower-cased letters, digits and CJK characters only (feedd/core/text.py's compact)."""
    return _NOT_ALNUM.sub("", normalized.lower())


def was_cut(text: str) -> bool:
    """The listing cut this raw text short: it ends with an ellipsis (after NFKC)."""
    return bool(_TRAILING_CUT.search(unicodedata.normalize("NFKC", text)))


def shingles(text: str, n: int = 4) -> frozenset[str]:
    text = normalize(text)
    return frozenset(text[i : i + n] for i in range(max(len(text) - n + 1, 1)))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    common = len(a & b)
    union = len(a) + len(b) - common
    return common / union if union else 1.0


def containment(a: frozenset[str], b: frozenset[str]) -> float:
    smaller = min(len(a), len(b))
    return len(a & b) / smaller if smaller else 1.0


@functools.lru_cache(maxsize=1 << 16)
def _grams(normalized: str) -> frozenset[str]:
    n = 4
    return frozenset(normalized[i : i + n] for i in range(max(len(normalized) - n + 1, 1)))


_normalized = functools.lru_cache(maxsize=1 << 16)(normalize)


def overlap(a: str, b: str) -> float:
    """Share of the shorter text's 4-grams found in the other's same-length opening.

    Both are shown texts; a listing cuts them at different lengths, so the
    shorter one is held against an opening of the longer one (15% slack).
    Values below 0.3 are upper bounds (every limit used here is higher).
    """
    a, b = _normalized(a), _normalized(b)
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    grams = _grams(short)
    anywhere = len(grams & _grams(long_)) / len(grams)
    if anywhere < 0.3:
        return anywhere
    window = long_[: int(len(short) * (1 + _ALIGN_SLACK)) + 4]
    return len(grams & _grams(window)) / len(grams)


def is_noise(line: str) -> bool:
    """The seeds' noise: a short category word, a date or a pager, never Chinese."""
    stripped = line.strip()
    return not stripped or (
        len(stripped) <= 24 and not _CJK.search(stripped) and bool(_SEED_NOISE.match(stripped))
    )


@dataclass(frozen=True)
class State:
    """An article's text and how the listing shows it: at most ``limit`` characters."""

    body: str
    limit: int
    ellipsis: str = "..."
    boilerplate: tuple[int, int] | None = None  # (family, variant) of the preamble in body
    more: bool = False  # the body is itself cut: a seed line whose rest is unknown

    def is_cut(self) -> bool:
        return self.more or len(self.body) > self.limit

    def shown(self) -> str:
        return self.body[: self.limit] + self.ellipsis if self.is_cut() else self.body

    def visible_end(self) -> int:
        return min(len(self.body), self.limit)


@dataclass(frozen=True)
class Likeness:
    """4-gram sets that tell, while building, whether two articles read alike.

    Jaccard over whole bodies alone misses a long article that opens with most
    of a short one, so the opening and the containment of the shorter text
    count too. Only what a listing can ever show (MAX_SHOWN) is compared.
    """

    seen: frozenset[str]
    head: frozenset[str]  # what a listing cut at 350 characters would show
    shown: str

    @classmethod
    def of(cls, state: State) -> Likeness:
        body = normalize(state.body)
        return cls(shingles(body[:MAX_SHOWN]), shingles(body[:350]), state.shown())

    def too_alike(self, other: Likeness, near_miss: bool) -> bool:
        if near_miss:  # built to share an opening: only the promise's measure, with margin
            return overlap(self.shown, other.shown) >= _GROUP_OVERLAP
        return (
            jaccard(self.head, other.head) >= _BUILD_JACCARD
            or jaccard(self.seen, other.seen) >= _BUILD_JACCARD
            or containment(self.seen, other.seen) >= _BUILD_CONTAINED
            or overlap(self.shown, other.shown) >= _BUILD_CONTAINED
        )


@dataclass(eq=False)
class Article:
    key: str  # pool name, stable for a seed: s07 is the 8th distinct seed item
    state: State
    source: str  # "seed" | "derived"
    groups: tuple[str, ...] = ()
    aid: str = ""  # true article id, given in order of first appearance
    history: list[State] = field(default_factory=list)
    edits: int = 0
    pending: list[str] = field(default_factory=list)  # edits not yet shown
    away: bool = False  # some pending edit happened while off the listing
    last_shown: int = -1  # index of the last dump that showed it
    prefix_chars: int = 0  # a series issue: the length of the preamble it shares

    def near_miss_with(self, other: Article) -> bool:
        return any(g in other.groups for g in self.groups if g.startswith(NEAR_MISS_GROUPS))

    def exempt_with(self, other: Article) -> bool:
        """Siblings of one template: told apart by their version numbers, not by overlap."""
        return any(g in other.groups for g in self.groups if g.startswith(EXEMPT_GROUPS))

    def texts(self) -> list[str]:
        """Every text this article has shown, and will show next."""
        out = [s.shown() for s in self.history]
        if not self.history or self.history[-1] != self.state:
            out.append(self.state.shown())
        return out


NEAR_MISS_GROUPS = ("boilerplate:", "opening:", "series:")
# Groups whose members are outside the promise (see the module doc, "siblings").
EXEMPT_GROUPS = ("siblings:",)


@dataclass(frozen=True)
class Line:
    number: int
    article: Article | None  # None for noise
    text: str
    edit: str | None  # a kind, "stacked" or "away"
    edits: tuple[str, ...] = ()


@dataclass
class Dump:
    name: str
    lines: list[Line]
    final_newline: bool
    resaved: bool = False

    def content(self) -> bytes:
        text = "\n".join([*HEADER_LINES, *(line.text for line in self.lines)])
        return (text + ("\n" if self.final_newline else "")).encode("utf-8")


# ---------------------------------------------------------------------------
# Article pool


def read_seed_items(seed_dir: Path) -> list[str]:
    """Distinct item lines of the seed dumps, in order of first appearance."""
    files = sorted(seed_dir.glob("*.txt"))
    if not files:
        raise SystemExit(f"no seed dumps (*.txt) in {seed_dir}; pass --seeds DIR")
    items: list[str] = []
    for path in files:
        lines = path.read_text(encoding="utf-8").split("\n")[len(HEADER_LINES) :]
        for line in lines:
            line = line.rstrip("\r")
            if not is_noise(line) and line not in items:
                items.append(line)
    return items


def seed_state(line: str) -> State:
    """A seed line as the listing shows it: cut at its length, or whole."""
    if line.endswith("..."):
        body = line[:-3]
        return State(body, len(body), more=True)
    return State(line, max(len(line), 350))


def split_sentences(state: State) -> list[str]:
    visible = state.body[: state.visible_end()]
    parts = [p for p in _SENTENCE_END.split(visible) if p]
    if state.is_cut() and parts and not re.search(r"[。！？!?]$", parts[-1]):
        parts.pop()  # the listing cut it mid-sentence
    return [p for p in parts if len(p) >= 12]


def _topic_of(line: str) -> str | None:
    lowered = line.lower()
    if "normalizing flow" in lowered or "nice:" in lowered:
        return "topic:normalizing-flow"
    if any(word in lowered for word in ("ddpm", "扩散", "diffusion", "score based", "sde")):
        return "topic:diffusion"
    return None


def _seed_groups(line: str) -> tuple[str, ...]:
    groups = [f"heading:{h.strip()}" for h in HEADINGS if line.startswith(h)]
    topic = _topic_of(line)
    if topic:
        groups.append(topic)
    return tuple(groups)


Key = tuple[int, int]  # (seed index, sentence index)


class Splicer:
    """Builds texts from runs of sentences of different seed items."""

    def __init__(self, rng: random.Random, seeds: Sequence[Article]) -> None:
        self.rng = rng
        self.sentences = [split_sentences(a.state) for a in seeds]
        self.topics = [_topic_of(a.state.body) for a in seeds]
        self.uses: Counter[Key] = Counter()
        # How many articles may show one seed sentence. Kept low, and raised
        # only when a large pool cannot be built otherwise.
        self.max_uses = 3
        self._keys: list[Key] = []  # showable sentences of the last splice

    def _text(self, keys: Iterable[Key], joiner: str) -> str:
        return joiner.join(self.sentences[s][i] for s, i in keys)

    def _run(self, source: int, allow_first: bool) -> list[Key]:
        count = len(self.sentences[source])
        first = 0 if allow_first else 1
        if count <= first:
            return []
        start = self.rng.randrange(first, count)
        # An opening sentence alone: with its continuation it would make the
        # new article read as an edit of the seed it came from. A longer run
        # would hold too much of its seed's text.
        length = 1 if start == 0 else self.rng.randint(1, 3)
        run = [(source, start)]
        chars = len(self.sentences[source][start])
        for i in range(start + 1, min(start + length, count)):
            chars += len(self.sentences[source][i])
            if chars > MAX_RUN_CHARS:
                break
            run.append((source, i))
        return run

    def _fresh(self, run: list[Key]) -> bool:
        return bool(run) and all(self.uses[key] < self.max_uses for key in run)

    def splice(
        self,
        prefix: str,
        *,
        length: tuple[int, int],
        topic: str | None = None,
        allow_first: bool = True,
        exclude: Sequence[int] = (),
        showable: int = MAX_SHOWN,
    ) -> str | None:
        """prefix + sentences of 2+ seeds, about ``length`` characters long.

        Whatever a listing could show (the first ``showable`` characters) uses
        sentences few other articles show; the hidden rest may reuse any.
        """
        sources = [
            i
            for i, t in enumerate(self.topics)
            if (topic is None or t == topic) and len(self.sentences[i]) > 1 and i not in exclude
        ]
        if len(sources) < 2:
            return None
        target = self.rng.randint(*length)
        joiner = self.rng.choice((" ", ""))
        order = self.rng.sample(sources, len(sources))
        runs: list[list[Key]] = []
        text = prefix
        for source in order:
            if len(text) >= min(target, showable):
                break
            run = self._run(source, allow_first and not runs and not prefix)
            if not self._fresh(run):
                continue
            runs.append(run)
            text += (joiner if text and text != prefix else "") + self._text(run, joiner)
        if len(runs) < 2 and not prefix:
            return None
        if len(text) > length[1] and length[1] <= showable:
            # A short text shown whole: end it at the last clause that fits.
            ends = [m.end() for m in _CLAUSE_END.finditer(text, 0, length[1] + 1)]
            ends = [e for e in ends if e >= max(length[0], len(prefix) + 12)]
            if not ends:
                return None
            text = text[: ends[-1]].rstrip(",，;；:： ")
            if not text.endswith(("。", "！", "？", "!", "?")):
                text += "。"
        if len(text) > length[1] or len(text) < min(length[0], showable):
            return None
        self._keys = [key for run in runs for key in run]
        # The hidden tail: never shown, so any sentence of another source will do.
        spare = [s for s in sources if all(s != run[0][0] for run in runs)]
        while len(text) < target and spare:
            run = self._run(self.rng.choice(spare), allow_first=False)
            if run:
                text += joiner + self._text(run, joiner)
        return text[: length[1]] if len(text) > length[1] else text

    def accept(self) -> None:
        self.uses.update(self._keys)


def _limit(rng: random.Random) -> int:
    return rng.choice(LISTING_LIMITS)


class PoolBuilder:
    def __init__(self, rng: random.Random, seed_items: Sequence[str]) -> None:
        self.rng = rng
        self.seeds = [
            Article(f"s{i:02d}", seed_state(line), "seed", _seed_groups(line))
            for i, line in enumerate(seed_items)
        ]
        self.splicer = Splicer(rng, self.seeds)
        self.pool: list[Article] = []
        self.likeness: list[Likeness] = []

    def _fits(self, candidate: Article) -> bool:
        likeness = Likeness.of(candidate.state)
        return not any(
            likeness.too_alike(other, candidate.near_miss_with(article))
            for article, other in zip(self.pool, self.likeness, strict=True)
            if not candidate.exempt_with(article)
        )

    def add(self, article: Article) -> bool:
        if not self._fits(article):
            return False
        self.splicer.accept()
        self.pool.append(article)
        self.likeness.append(Likeness.of(article.state))
        return True

    def derive(self, count: int, make: Callable[[str], Article | None]) -> int:
        made = 0
        for max_uses in range(3, 12):
            self.splicer.max_uses = max_uses
            for _attempt in range((count - made) * 30 + 50):
                if made == count:
                    return made
                article = make(f"d{len(self.pool) - len(self.seeds):03d}")
                if article is not None and self.add(article):
                    made += 1
        return made

    def seed_articles(self) -> None:
        """The seed items, lengthened past their cut so that a longer re-cut shows more."""
        for index, seed in enumerate(self.seeds):
            state = seed.state
            if state.is_cut():
                for max_uses in range(3, 12):
                    self.splicer.max_uses = max_uses
                    shown = len(state.body)
                    tail = self.splicer.splice(
                        " ",
                        length=(max(LONG_BODY[0] - shown, 100), LONG_BODY[1] - shown),
                        allow_first=False,
                        exclude=(index,),
                        showable=MAX_SHOWN - shown,
                    )
                    grown_state = replace(state, body=state.body + (tail or ""), more=False)
                    grown = replace(seed, state=grown_state)
                    if tail and self._fits(grown):
                        seed = grown
                        break
            # A seed is kept even when no tail fits: it is real, and shown as read.
            self.splicer._keys = []
            self.pool.append(seed)
            self.likeness.append(Likeness.of(seed.state))

    def plain(
        self, prefix: str, topic: str | None, groups: tuple[str, ...], short: bool = False
    ) -> Callable:
        def make(key: str) -> Article | None:
            body = self.splicer.splice(
                prefix,
                length=SHORT_BODY if short else LONG_BODY,
                topic=topic,
                allow_first=not prefix,
            )
            if body is None:
                return None
            return Article(key, State(body, _limit(self.rng)), "derived", groups)

        return make

    def opening(self, seed_index: int) -> Callable:
        """Articles that open with a seed's heading and first sentence, then differ."""
        seed = self.seeds[seed_index]
        first = split_sentences(seed.state)[0]
        group = f"opening:{seed.key}"

        def make(key: str) -> Article | None:
            short = self.rng.random() < 0.5
            body = self.splicer.splice(
                first + " ",
                length=(len(first) + 60, len(first) + 150) if short else LONG_BODY,
                allow_first=False,
                exclude=(seed_index,),
            )
            if body is None:
                return None
            return Article(key, State(body, _limit(self.rng)), "derived", (group,))

        return make

    def boilerplate(self, family: int) -> Callable:
        """A family's posts: the preamble, then a body; short ones are mostly preamble."""
        preamble = BOILERPLATES[family][0]
        group = f"boilerplate:{family}"

        def make(key: str) -> Article | None:
            # Short posts: the preamble is 40-58% of the shown text, the
            # nearest a different article comes to an update of this one.
            # Half are shown whole, half are long posts the listing cuts short.
            lengths = (
                int(len(preamble) / PREAMBLE_SHARE[1]),
                int(len(preamble) / PREAMBLE_SHARE[0]),
            )
            roll = self.rng.random()
            if roll < BOILERPLATE_SHORT / 2:
                body = self.splicer.splice(preamble, length=lengths, allow_first=False)
                limit = 350
            else:
                body = self.splicer.splice(preamble, length=LONG_BODY, allow_first=False)
                short = roll < BOILERPLATE_SHORT
                limit = self.rng.randint(*lengths) if short else _limit(self.rng)
            if body is None:
                return None
            return Article(key, State(body, limit, boilerplate=(family, 0)), "derived", (group,))

        return make


def build_pool(
    rng: random.Random, seed_items: Sequence[str], n_articles: int, hard: bool = True
) -> list[Article]:
    return _build_pool(rng, seed_items, n_articles, hard).pool


def _build_pool(
    rng: random.Random, seed_items: Sequence[str], n_articles: int, hard: bool = True
) -> PoolBuilder:
    builder = PoolBuilder(rng, seed_items)
    builder.seed_articles()
    if hard:
        for heading in HEADINGS:
            make = builder.plain(heading, None, (f"heading:{heading.strip()}",))
            builder.derive(HEADING_ARTICLES, make)
        openers = [
            i
            for i, s in enumerate(builder.seeds)
            if len(split_sentences(s.state)) > 2 and 30 <= len(split_sentences(s.state)[0]) <= 90
        ]
        for index in rng.sample(openers, min(OPENING_GROUPS, len(openers))):
            builder.derive(OPENING_ARTICLES, builder.opening(index))
        family_size = max(4, n_articles // 20)
        for family in range(len(BOILERPLATES)):
            builder.derive(family_size, builder.boilerplate(family))
        builder.derive(
            DIFFUSION_ARTICLES, builder.plain("", "topic:diffusion", ("topic:diffusion",))
        )
    wanted = max(n_articles, len(builder.pool)) - len(builder.pool)
    shorts = round(wanted * SHORT_SHARE)
    builder.derive(shorts, builder.plain("", None, (), short=True))
    builder.derive(wanted - shorts, builder.plain("", None, ()))
    if len(builder.pool) < n_articles:
        raise SystemExit(
            f"could only build {len(builder.pool)} distinct articles; ask for fewer (--articles)"
        )
    return builder


def select_articles(rng: random.Random, pool: list[Article], n_articles: int) -> list[Article]:
    """Pick the stream's articles, hard negatives first, in order of entry."""
    by_group: dict[str, list[Article]] = {}
    for article in pool:
        for group in article.groups:
            by_group.setdefault(group, []).append(article)
    hard: list[Article] = []
    # Round-robin so a small stream still holds pairs from several groups.
    queues = [list(by_group[g]) for g in sorted(by_group)]
    while any(queues):
        for queue in queues:
            if queue:
                article = queue.pop(0)
                if article not in hard:
                    hard.append(article)
    chosen = hard[:n_articles]
    rest = [a for a in pool if a not in chosen]
    rng.shuffle(rest)
    chosen += rest[: n_articles - len(chosen)]

    # Members of a group enter close together (in pairs), as a listing about one
    # subject would, so the near-miss is on screen at the same time.
    units: list[list[Article]] = []
    placed: list[Article] = []
    for group in sorted(by_group):
        members = [a for a in by_group[group] if a in chosen and a not in placed]
        rng.shuffle(members)
        for i in range(0, len(members), 2):
            units.append(members[i : i + 2])
        placed += members
    units += [[a] for a in chosen if a not in placed]
    rng.shuffle(units)
    return [a for unit in units for a in unit]


# ---------------------------------------------------------------------------
# Edits: each takes a state and returns a changed one, or None when it does not
# apply. Every change lands in the visible part of the text.


def _cjk_positions(text: str, end: int) -> list[int]:
    return [i for i in range(min(end, len(text))) if _CJK.match(text[i])]


def _near(rng: random.Random, options: Sequence[int]) -> int:
    return rng.choice(options) + rng.randint(-4, 4)


class Editor:
    def __init__(self, rng: random.Random, alphabet: Sequence[str]) -> None:
        self.rng = rng
        self.alphabet = alphabet

    def apply(self, kind: str, state: State, history: Sequence[State]) -> State | None:
        if kind == "revert":
            return self.edit_revert(state, history)
        method: Callable[[State], State | None] = getattr(self, f"edit_{kind}")
        return method(state)

    def edit_typo(self, s: State) -> State | None:
        positions = _cjk_positions(s.body, s.visible_end() - 3)
        if not positions:
            return None
        p = self.rng.choice(positions)
        body = s.body
        op = self.rng.choice(("substitute", "substitute", "swap", "delete", "double"))
        if op == "substitute":
            n = self.rng.randint(1, 3)
            chars = list(body[p : p + n])
            for i, ch in enumerate(chars):
                if _CJK.match(ch):
                    chars[i] = self.rng.choice([c for c in self.alphabet[:200] if c != ch])
            new = body[:p] + "".join(chars) + body[p + n :]
        elif op == "swap":
            new = body[:p] + body[p + 1] + body[p] + body[p + 2 :]
        elif op == "delete":
            new = body[:p] + body[p + 1 :]
        else:
            new = body[:p] + body[p] + body[p:]
        return replace(s, body=new) if new != body else None

    def edit_punctuation(self, s: State) -> State | None:
        end = s.visible_end() - 1
        body = s.body
        options: list[tuple[int, int, str]] = []  # (start, stop, replacement)
        for i in range(end):
            ch = body[i]
            if ch == "。":
                options.append((i, i + 1, self.rng.choice(("！", ";"))))
            elif ch == ",":
                options.append((i, i + 1, self.rng.choice((";", "、", ""))))
            elif ch in "“”":
                options.append((i, i + 1, "「" if ch == "“" else "」"))
        cjk = [i for i in _cjk_positions(body, end) if i > 0 and _CJK.match(body[i - 1])]
        if cjk:
            i = self.rng.choice(cjk)
            options.append((i, i, ","))
        if not options:
            return None
        start, stop, repl = self.rng.choice(options)
        return replace(s, body=body[:start] + repl + body[stop:])

    def edit_width(self, s: State) -> State | None:
        end = s.visible_end()
        body = s.body
        wide = [m for m in re.finditer(r"[\uff01-\uff5e]+", body[:end])]
        narrow = [m for m in re.finditer(r"[A-Za-z0-9(),:]+", body[:end])]
        if wide and (not narrow or self.rng.random() < 0.5):
            m = self.rng.choice(wide)
            repl = "".join(chr(ord(c) - 0xFEE0) for c in m.group())
        elif narrow:
            m = self.rng.choice(narrow)
            repl = "".join(chr(ord(c) + 0xFEE0) for c in m.group())
        else:
            return None
        return replace(s, body=body[: m.start()] + repl + body[m.end() :])

    def edit_whitespace(self, s: State) -> State | None:
        spaces = [i for i in range(s.visible_end() - 1) if s.body[i] == " "]
        if not spaces:
            return None
        i = self.rng.choice(spaces)
        repl = self.rng.choice(("  ", "\u3000", " \u3000"))
        # A longer run of spaces must not push visible text past the cut, or
        # the edit would change the words shown and no longer normalise equal.
        limit = s.limit + len(repl) - 1
        return replace(s, body=s.body[:i] + repl + s.body[i + 1 :], limit=limit)

    def edit_ellipsis(self, s: State) -> State | None:
        if not s.is_cut():
            return None
        return replace(s, ellipsis="…" if s.ellipsis == "..." else "...")

    def edit_word(self, s: State) -> State | None:
        visible = s.body[: s.visible_end()]
        options: list[tuple[int, str, str]] = []
        for a, b in SYNONYMS:
            for old, new in ((a, b), (b, a)):
                for m in re.finditer(old, visible):
                    options.append((m.start(), old, new))
        if not options:
            return None
        start, old, new = self.rng.choice(sorted(options))
        return replace(s, body=s.body[:start] + new + s.body[start + len(old) :])

    def edit_clause_delete(self, s: State) -> State | None:
        visible = s.body[: s.visible_end()]
        options = list(re.finditer(r"[,，][^,，。；;！？!?\s]{3,30}(?=[,，。；;！？!?])", visible))
        if not options:
            return None
        m = self.rng.choice(options)
        return replace(s, body=s.body[: m.start()] + s.body[m.end() :])

    def edit_clause_insert(self, s: State) -> State | None:
        end = s.visible_end() - 2
        points = [i for i in range(1, end) if s.body[i] == "。" and _CJK.match(s.body[i - 1])]
        points = points or [i for i in range(1, end) if s.body[i] == ","]
        clauses = [c for c in CLAUSES if c not in s.body]
        if not points or not clauses:
            return None
        i = self.rng.choice(points)
        return replace(s, body=s.body[:i] + self.rng.choice(clauses) + s.body[i:])

    def edit_append(self, s: State) -> State | None:
        sentences = [t for t in APPENDED_SENTENCES if t not in s.body]
        if s.is_cut() or not sentences:
            return None
        joiner = "" if s.body.endswith(("。", "!", "！")) else " "
        return replace(s, body=s.body + joiner + self.rng.choice(sentences))

    def edit_recut_shorter(self, s: State) -> State | None:
        options = [n for n in SHORTER_LIMITS if n <= s.visible_end() - 20]
        return replace(s, limit=_near(self.rng, options)) if options else None

    def edit_recut_longer(self, s: State) -> State | None:
        options = [n for n in LONGER_LIMITS if n >= s.limit + 20]
        if not s.is_cut() or not options:
            return None
        return replace(s, limit=_near(self.rng, options))

    def edit_boilerplate(self, s: State) -> State | None:
        if s.boilerplate is None:
            return None
        family, variant = s.boilerplate
        old = BOILERPLATES[family][variant]
        if old not in s.body[: s.visible_end()]:
            return None  # an earlier edit touched the preamble itself
        others = [i for i in range(len(BOILERPLATES[family])) if i != variant]
        new = self.rng.choice(others)
        body = s.body.replace(old, BOILERPLATES[family][new], 1)
        return replace(s, body=body, boilerplate=(family, new))

    def edit_revert(self, s: State, history: Sequence[State]) -> State | None:
        current = normalize(s.shown())
        older = [st for st in history if normalize(st.shown()) != current]
        if not older:
            return None
        # Mostly an undo of the last change; sometimes back to an earlier text.
        return older[-1] if self.rng.random() < 0.7 else self.rng.choice(older)


# ---------------------------------------------------------------------------
# The stream


@dataclass
class StreamSettings:
    dumps: int = 150
    articles: int = 150
    listing_sizes: tuple[int, ...] = (12, 13, 13, 14)
    resave_probability: float = 0.07
    resurface_probability: float = 0.1  # an old article comes back unchanged
    edits_per_dump: tuple[tuple[int, int], ...] = ((0, 25), (1, 40), (2, 25), (3, 10))
    stack_probability: float = 0.25  # an edit on the listing is 2-3 edits
    away_probability: float = 0.15  # an off-listing article is edited and comes back
    bump_probability: float = 0.3  # an edited article moves to the top
    chain_probability: float = 0.25  # edit an article that was edited before
    max_edits: int = 8
    noise_probability: float = 0.35
    pager_probability: float = 0.2
    hard_negatives: bool = True
    kinds: tuple[str, ...] = ()  # stream kinds (STREAM_KINDS) on top of the default stream

    @classmethod
    def easy(cls, dumps: int, articles: int) -> StreamSettings:
        """One edit at a time, on the listing only, no built near-misses."""
        return cls(
            dumps=dumps,
            articles=articles,
            stack_probability=0.0,
            away_probability=0.0,
            hard_negatives=False,
        )


class Stream:
    def __init__(
        self,
        rng: random.Random,
        entering: list[Article],
        editor: Editor,
        settings: StreamSettings,
    ) -> None:
        self.rng = rng
        self.articles = list(entering)
        self.pending = list(entering)
        self.editor = editor
        self.settings = settings
        self.feed: list[Article] = []  # every article that entered, newest first
        self.unused = [*EDIT_KINDS, "stacked"]  # to cover them all, even in short streams
        self.rejected = 0  # edits that would have broken the promise
        self._grams_cache: dict[int, tuple[list[str], frozenset[str], int]] = {}

    def enter(self, count: int) -> None:
        for _ in range(min(count, len(self.pending))):
            self.feed.insert(0, self.pending.pop(0))

    def _bump(self, article: Article) -> None:
        self.feed.remove(article)
        self.feed.insert(0, article)

    def resurface(self, listing_size: int) -> None:
        gone = self.feed[listing_size + 1 : listing_size + 40]
        if gone:
            self._bump(self.rng.choice(gone))

    def _grams_of(self, article: Article) -> tuple[list[str], frozenset[str], int]:
        """An article's texts, the union of their 4-grams and the smallest 4-gram count."""
        texts = article.texts()
        cached = self._grams_cache.get(id(article))
        if cached is None or cached[0] != texts:
            sets = [_grams(_normalized(t)) for t in texts]
            cached = (texts, frozenset().union(*sets), min(len(g) for g in sets))
            self._grams_cache[id(article)] = cached
        return cached

    def _keeps_promise(self, article: Article, state: State) -> bool:
        text = state.shown()
        grams = _grams(_normalized(text))
        for other in self.articles:
            if other is article or article.exempt_with(other):
                continue
            texts, union, least = self._grams_of(other)
            # overlap() <= shared 4-grams / the shorter text's 4-grams: when even
            # all of other's texts together share too few, none can break the promise.
            if len(grams & union) < MAX_PAIR_OVERLAP * min(len(grams), least) - 1:
                continue
            if any(overlap(text, seen) >= MAX_PAIR_OVERLAP for seen in texts):
                self.rejected += 1
                return False
        return True

    def _edited(self, article: Article, kinds: Sequence[str]) -> State | None:
        state = article.state
        for kind in kinds:
            new = self.editor.apply(kind, state, article.history)
            if new is None or new.shown() == state.shown():
                return None
            state = new
        if state.shown() == article.state.shown() or not self._keeps_promise(article, state):
            return None
        return state

    def _commit(self, article: Article, state: State, kinds: Sequence[str], away: bool) -> None:
        article.state = state
        article.edits += len(kinds)
        article.pending += kinds
        article.away = article.away or away
        for kind in (*kinds, "stacked" if len(kinds) > 1 else ""):
            if kind in self.unused:
                self.unused.remove(kind)

    def _kinds(self, stacked: bool, first: str) -> list[str]:
        if not stacked:
            return [first]
        count = self.rng.choice((2, 2, 3))
        weights = [EDIT_WEIGHTS[k] for k in STACKABLE]
        kinds = [first] if first in STACKABLE else []
        while len(kinds) < count:
            kind = self.rng.choices(STACKABLE, weights=weights)[0]
            if kind not in kinds:
                kinds.append(kind)
        return kinds

    def _order(self) -> list[str]:
        weighted = self.rng.choices(EDIT_KINDS, weights=[EDIT_WEIGHTS[k] for k in EDIT_KINDS])
        # Cover every edit kind as soon as some article allows it, so even a
        # short stream holds each one.
        unused = [k for k in self.unused if k in EDIT_KINDS]
        self.rng.shuffle(unused)
        return [*unused, *weighted]

    def edit(self, listing: list[Article], count: int) -> None:
        settings = self.settings
        touched: list[Article] = []
        for _ in range(count):
            forced = settings.stack_probability > 0 and "stacked" in self.unused
            stacked = forced or self.rng.random() < settings.stack_probability
            for first in self._order():
                # Only shown articles change: an edit before the first sighting is invisible.
                candidates = [
                    a
                    for a in listing
                    # One change per article and dump: a site-wide preamble
                    # change or an away edit may already have touched it.
                    if a.history
                    and not a.pending
                    and a not in touched
                    and a.edits < settings.max_edits
                ]
                self.rng.shuffle(candidates)
                if self.rng.random() < settings.chain_probability:
                    candidates.sort(key=lambda a: a.edits == 0)
                for article in candidates:
                    if first == "boilerplate":
                        if self._site_wide(article):
                            touched.append(article)
                            break
                        continue
                    kinds = self._kinds(stacked, first)
                    state = self._edited(article, kinds)
                    if state is None:
                        continue
                    self._commit(article, state, kinds, away=False)
                    touched.append(article)
                    break
                else:
                    continue
                break
        for article in touched:
            if self.rng.random() < settings.bump_probability:
                self._bump(article)

    def _site_wide(self, article: Article) -> bool:
        """The family's preamble changes everywhere at once, seen or not."""
        new = self.editor.edit_boilerplate(article.state)
        if new is None or new.boilerplate is None or article.state.boilerplate is None:
            return False
        old_variant = article.state.boilerplate
        family = BOILERPLATES[old_variant[0]]
        old, repl = family[old_variant[1]], family[new.boilerplate[1]]
        changes: list[tuple[Article, State]] = []
        for member in self.articles:
            s = member.state
            if s.boilerplate != old_variant or old not in s.body[: s.visible_end()]:
                continue
            state = replace(s, body=s.body.replace(old, repl, 1), boilerplate=new.boilerplate)
            if not self._keeps_promise(member, state):
                return False
            changes.append((member, state))
        for member, state in changes:
            if member.history:
                self._commit(member, state, ["boilerplate"], away=False)
            else:
                member.state = state  # not shown yet: its first sighting shows the new preamble
        return True

    def away_edit(self, listing_size: int, dump: int) -> None:
        """An article off the listing is edited, 1-3 times, and so comes back on top."""
        gone = [
            a
            for a in self.feed[listing_size : listing_size + 80]
            if a.history and a.last_shown < dump - 1  # not in the last dump either
        ]
        self.rng.shuffle(gone)
        for article in gone:
            if article.edits >= self.settings.max_edits:
                continue
            count = self.rng.choice((1, 1, 2, 2, 3))
            first = self.rng.choices(STACKABLE, weights=[EDIT_WEIGHTS[k] for k in STACKABLE])[0]
            kinds = self._kinds(count > 1, first)[:count]
            state = self._edited(article, kinds)
            if state is None:
                continue
            self._commit(article, state, kinds, away=True)
            self._bump(article)
            return


# ---------------------------------------------------------------------------
# Stream kinds (--kind): phenomena on top of the default stream


def parse_kinds(names: Iterable[str]) -> tuple[str, ...]:
    """--kind values (STREAM_KINDS or "all") with what each needs, in STREAM_KINDS order."""
    wanted: list[str] = []
    for name in names:
        if name == "all":
            wanted += STREAM_KINDS
        elif name in STREAM_KINDS:
            wanted += [name, *KIND_NEEDS.get(name, ())]
        else:
            known = ", ".join((*STREAM_KINDS, "all"))
            raise ValueError(f"unknown stream kind {name!r} (known: {known})")
    return tuple(k for k in STREAM_KINDS if k in wanted)


def version_typo(rng: random.Random, version: str, taken: Iterable[str]) -> str | None:
    """A typo inside a version number: a dot dropped, a digit doubled, two digits swapped."""
    parts = version.split(".")
    options = [
        ".".join([*parts[:i], parts[i] + parts[i + 1], *parts[i + 2 :]])
        for i in range(len(parts) - 1)
    ]
    options += [version[:i] + ch + version[i:] for i, ch in enumerate(version) if ch.isdigit()]
    options += [
        version[:i] + version[i + 1] + version[i] + version[i + 2 :]
        for i in range(len(version) - 1)
        if version[i].isdigit() and version[i + 1].isdigit() and version[i] != version[i + 1]
    ]
    taken = set(taken) | {version}
    options = sorted(set(options) - taken)
    return rng.choice(options) if options else None


def recut_range(article: Article) -> tuple[int, int]:
    """The shortest and longest cut a recut stream shows this (cut) article at."""
    state = article.state
    prefix = article.prefix_chars
    if state.boilerplate is not None:
        family, variant = state.boilerplate
        prefix = max(prefix, len(BOILERPLATES[family][variant]))
    floor = max(int(state.limit * RECUT_RANGE[0]), int(prefix / PREFIX_SHARE))
    top = min(int(state.limit * RECUT_RANGE[1]), MAX_SHOWN)
    return min(floor, top), top


def recut(state: State, cut: int) -> str:
    """The state's text cut at about ``cut`` characters, as a recut listing shows it."""
    body = state.body
    # Cut after a letter, digit or CJK character with more of them after it:
    # two different cuts of one text then always differ in compact form.
    while 0 < cut < len(body) and not body[cut - 1].isalnum():
        cut -= 1
    if cut >= len(body) or not any(ch.isalnum() for ch in body[cut:]):
        return state.shown() if state.more else body  # the whole text fits
    return body[:cut] + state.ellipsis


@dataclass(eq=False)
class Series:
    """A family of issues: one preamble, which differs only in the issue number."""

    index: int
    title: str
    text: str = ""  # the preamble after its header; a site-wide change edits one word
    issues: list[tuple[int, Article]] = field(default_factory=list)  # (number, article)
    swapped: list[int] = field(default_factory=list)  # positions site-wide changes used

    def preamble(self, number: int, text: str | None = None) -> str:
        return f"《{self.title}》第 {number} 期 {self.text if text is None else text}"


class KindStream:
    """What the --kind phenomena add to the default stream (see the module doc).

    Its own articles are built after the default pool, and every draw of its own
    comes from two generators of its own (``"<seed>:kinds"`` and, for the
    re-cut lengths, ``"<seed>:recut"``): the default stream's generator makes
    the same draws up to the first dump. ``recut`` adds no article and no
    change, so a recut stream is the default stream with other cut lengths.
    """

    def __init__(
        self,
        seed: int,
        settings: StreamSettings,
        builder: PoolBuilder,
        stream: Stream,
        alphabet: Sequence[str],
    ) -> None:
        self.kinds = settings.kinds
        self.dumps = settings.dumps
        self.stream = stream
        self.rng = random.Random(f"{seed}:kinds")
        self.cut_rng = random.Random(f"{seed}:recut")
        self.editor = Editor(self.rng, alphabet)
        self.sentences = [t for sentences in builder.splicer.sentences for t in sentences]
        self.articles: list[Article] = []  # every article a kind added
        self.entries: list[tuple[int, Article]] = []  # (dump, article): enters at the top
        self.changes: list[tuple[int, str, Any]] = []  # (dump, change, what it applies to)
        self.series: list[Series] = []
        self.pinned: list[Article] = []  # on top of every listing, once entered
        self.pinned_due: list[tuple[int, Article]] = []
        self.max_uses = 3
        # recut: what each article has shown (texts, their 4-gram union, fewest 4-grams)
        self._shown: dict[int, tuple[tuple[str, ...], frozenset[str], int]] = {}
        self._cut_cache: dict[tuple[State, int], tuple[list[str], frozenset[str], int, str]] = {}
        saved = builder.rng, builder.splicer.rng, builder.splicer.max_uses
        builder.rng = builder.splicer.rng = self.rng
        try:
            if "series" in self.kinds:
                for index in range(len(SERIES)):
                    self._build_series(builder, index)
            if "siblings" in self.kinds:
                for template in SIBLING_TEMPLATES:
                    self._build_siblings(builder, template)
            if "long" in self.kinds:
                self._build_pinned(builder)
        finally:
            builder.rng, builder.splicer.rng, builder.splicer.max_uses = saved
        self.entries.sort(key=lambda entry: entry[0])
        self.changes.sort(key=lambda change: change[0])
        stream.articles += self.articles

    # -- building ------------------------------------------------------------

    def _derive(
        self, builder: PoolBuilder, make: Callable[[str], Article | None], key: str
    ) -> Article | None:
        """One article; like PoolBuilder.derive, sentences are shown by more articles
        only when fresh ones run out (and the level reached is kept for the next)."""
        for max_uses in range(self.max_uses, 12):
            builder.splicer.max_uses = self.max_uses = max_uses
            for _attempt in range(30):
                article = make(key)
                if article is not None and builder.add(article):
                    return article
        return None

    def _build_series(self, builder: PoolBuilder, index: int) -> None:
        rng = self.rng
        title, (lo, hi), limits = SERIES[index]
        first = rng.randrange(100, 160) if index == 0 else rng.randrange(20, 60)
        series = Series(index, title)
        header = len(series.preamble(first, ""))
        text: str | None = None
        for max_uses in range(3, 12):
            builder.splicer.max_uses = max_uses
            for _attempt in range(60):
                text = builder.splicer.splice(
                    "", length=(lo - header, hi - header), allow_first=False
                )
                # A word a site-wide change can swap (SYNONYMS) must be in it.
                if text and any(word in text for pair in SYNONYMS for word in pair):
                    break
                text = None
            if text:
                break
        if text is None:
            raise SystemExit(f"could not build the preamble of series {title}")
        sources = sorted({source for source, _ in builder.splicer._keys})
        builder.splicer.accept()
        series.text = text
        spread = max(1.0, self.dumps / (SERIES_MAX_ISSUES * 3.4))  # 3.4: the mean cadence
        due, dump = [], 1 + rng.randrange(3)
        while dump < self.dumps:
            due.append(dump)
            dump += round(rng.choice(SERIES_CADENCE) * spread)
        group = (f"series:{index}",)
        for k, dump in enumerate(due):
            prefix = series.preamble(first + k)

            def make(key: str, prefix: str = prefix) -> Article | None:
                body = builder.splicer.splice(
                    prefix, length=LONG_BODY, allow_first=False, exclude=sources
                )
                if body is None:
                    return None
                state = State(body, rng.choice(limits))
                article = Article(key, state, "series", group, prefix_chars=len(prefix))
                others = [issue for _, issue in series.issues]
                return article if self._apart_when_recut(article, others) else None

            article = self._derive(builder, make, f"k{index}{k:03d}")
            if article is None:
                break  # the seeds ran out of sentences: a shorter series
            series.issues.append((first + k, article))
            self.articles.append(article)
            self.entries.append((dump, article))
        self.series.append(series)
        if "sitewide" in self.kinds:
            dump = rng.randint(*SITEWIDE_GAP)
            while dump < self.dumps:
                self.changes.append((dump, "sitewide", series))
                dump += rng.randint(*SITEWIDE_GAP)

    def _apart_when_recut(self, article: Article, others: Iterable[Article]) -> bool:
        """The near-miss margin to these articles at every cut a recut listing may show.

        overlap() holds the shorter text against an opening of the longer one,
        so each cut of one side (every RECUT_STEP characters, whatever its
        listing cut becomes) is held against the other's longest text; an
        opening of that text holds fewer of its 4-grams.
        """
        if "recut" not in self.kinds:
            return True
        mine = self._cuts(article.state, article.prefix_chars)
        for other in others:
            if other is article or article.exempt_with(other):
                continue
            theirs = self._cuts(other.state, other.prefix_chars)
            shared = len(mine[1] & theirs[1])
            if shared < _GROUP_OVERLAP * min(mine[2], theirs[2]) - 1:
                continue  # too few 4-grams in common for any cut to come close
            for cuts, longest in ((mine[0], theirs[3]), (theirs[0], mine[3])):
                if any(overlap(cut, longest) >= _GROUP_OVERLAP for cut in cuts):
                    return False
        return True

    def _cuts(self, state: State, prefix: int) -> tuple[list[str], frozenset[str], int, str]:
        """(every cut, the longest text's 4-grams, the shortest cut's 4-gram count, the longest)."""
        key = (state, prefix)
        cached = self._cut_cache.get(key)
        if cached is None:
            if state.boilerplate is not None:
                family, variant = state.boilerplate
                prefix = max(prefix, len(BOILERPLATES[family][variant]))
            low = max(int(RECUT_LOWEST * RECUT_RANGE[0]), int(prefix / PREFIX_SHARE))
            longest = recut(state, MAX_SHOWN)
            cuts = [recut(state, c) for c in range(low, MAX_SHOWN, RECUT_STEP)] + [longest]
            cached = (
                cuts,
                _grams(_normalized(longest)),
                min(len(_grams(_normalized(c))) for c in cuts),
                longest,
            )
            self._cut_cache[key] = cached
        return cached

    def _sibling_text(self, template: dict[str, Any], release: dict[str, Any]) -> str:
        rng = self.rng
        words = {key: options[0] for key, options in template["words"].items()}
        for key in rng.sample(sorted(words), rng.randint(1, 2)):
            words[key] = rng.choice(template["words"][key][1:])
        day: date = release["day"]
        numbers = {
            "date": day.isoformat(),
            "month": MONTHS[day.month - 1],
            "cve1": rng.randrange(30000, 39999),
            "cve2": rng.randrange(30000, 39999),
            "cve3": rng.randrange(30000, 39999),
            "depver": f"3.0.{rng.randrange(8, 16)}",
            "npm": f"9.{rng.randrange(5, 9)}.{rng.randrange(0, 5)}",
            "pr1": rng.randrange(47000, 50000),
            "pr2": rng.randrange(47000, 50000),
            "pr3": rng.randrange(47000, 50000),
            "pr4": rng.randrange(47000, 50000),
            "pct": rng.randrange(8, 36),
            "cuda": f"12.{rng.randrange(0, 5)}",
            "torch": f"2.{rng.randrange(1, 5)}.{rng.randrange(0, 3)}",
            "n": rng.randrange(12, 61),
        }
        text: str = template["text"].format(
            v=release["version"],
            line=release["line"],
            codename=release["codename"],
            major=release["major"],
            **words,
            **numbers,
        )
        return text

    def _build_siblings(self, builder: PoolBuilder, template: dict[str, Any]) -> None:
        """Releases of one template: pairs published together, single ones far apart."""
        rng = self.rng
        index = SIBLING_TEMPLATES.index(template)
        group = (f"siblings:{template['name']}",)
        versions = {
            line: [major, rng.randrange(2, 9), rng.randrange(0, 4)]
            for line, major, _ in template["lines"]
        }
        gap = max(SIBLING_GAP[0], min(SIBLING_GAP[1], self.dumps // 5))
        dump = max(2, self.dumps // 12) + index * (gap // 2)
        day = date(2023, 3, 1) + timedelta(days=rng.randrange(60))
        together = True
        releases: list[dict[str, Any]] = []
        while dump < self.dumps:
            for line, major, codename in template["lines"] if together else template["lines"][:1]:
                v = versions[line]
                if rng.random() < 0.5:
                    v[2] += 1
                else:
                    v[1], v[2] = v[1] + 1, 0
                version = ".".join(map(str, v))
                releases.append(
                    {"dump": dump, "line": line, "major": major, "codename": codename}
                    | {"version": version, "day": day}
                )
            together = not together
            day += timedelta(days=rng.randrange(10, 30))
            dump += gap + rng.randrange(-3, 4)
        taken = [r["version"] for r in releases]
        for k, release in enumerate(releases):
            text = self._sibling_text(template, release)
            fix: tuple[str, str] | None = None
            if rng.random() < 0.35:
                # First shown with a typo in the title's version, fixed a few dumps later.
                typo = version_typo(rng, release["version"], taken)
                if typo is not None:
                    fix = (f"v{typo}", f"v{release['version']}")
                    text = text.replace(fix[1], fix[0], 1)
            article = Article(f"r{index}{k:03d}", State(text, template["limit"]), "siblings", group)
            builder.splicer._keys = []
            if not builder.add(article):
                continue
            self.articles.append(article)
            self.entries.append((release["dump"], article))
            if fix is not None:
                self.changes.append(
                    (release["dump"] + rng.randint(1, 3), "version_fix", (article, *fix))
                )

    def _build_pinned(self, builder: PoolBuilder) -> None:
        make = builder.plain("", None, ("long:pinned",))
        for i in range(PINNED):
            article = self._derive(builder, make, f"p{i}")
            if article is None:
                break
            article.source = "pinned"
            self.articles.append(article)
            start = 1 + i // 2
            self.pinned_due.append((start, article))
            if i == 0:
                continue  # one pinned post never changes

            def gap() -> int:
                return max(8, int(self.dumps * self.rng.uniform(*PINNED_EDIT_GAP)))

            dump = start + gap()
            while dump < self.dumps:
                self.changes.append((dump, "pinned_edit", article))
                dump += gap()

    # -- the stream ----------------------------------------------------------

    def step(self, dump: int, size: int) -> None:
        """Before a dump's ordinary edits: entries, scheduled changes, inserts."""
        stream = self.stream
        while self.entries and self.entries[0][0] <= dump:
            stream.feed.insert(0, self.entries.pop(0)[1])
        while self.pinned_due and self.pinned_due[0][0] <= dump:
            self.pinned.append(self.pinned_due.pop(0)[1])
        later: list[tuple[int, str, Any]] = []
        while self.changes and self.changes[0][0] <= dump:
            change = self.changes.pop(0)
            done = getattr(self, f"_{change[1]}")(change[2], size)
            if not done:
                later.append((dump + 1, change[1], change[2]))
        self.changes = sorted(later + self.changes, key=lambda change: change[0])
        if "insert" in self.kinds and self.rng.random() < INSERT_PROBABILITY:
            self._insert_edit(stream.feed[:size])

    def _sitewide(self, series: Series, size: int) -> bool:
        """One word of the series' preamble changes in every issue at once."""
        listing = self.stream.feed[:size]
        if sum(1 for _, a in series.issues if a in listing) < 2:
            return False  # wait until the listing shows some issues
        options: list[tuple[bool, int, str, str]] = []
        for a, b in SYNONYMS:
            for old, new in ((a, b), (b, a)):
                for m in re.finditer(re.escape(old), series.text):
                    options.append((m.start() in series.swapped, m.start(), old, new))
        if not options:
            return True
        options.sort()
        _, start, old, new = self.rng.choice([o for o in options if not o[0]] or options)
        text = series.text[:start] + new + series.text[start + len(old) :]
        # The word in its context: an edit elsewhere in an issue's preamble does
        # not keep the change out, an edit right there does.
        lo, hi = max(0, start - 8), start + len(old) + 8
        before, after = series.text[lo:hi], text[lo : hi + len(new) - len(old)]
        for number, article in series.issues:
            state = article.state
            reach = len(series.preamble(number)) + 40
            at = state.body.find(before, 0, reach)
            if at < 0:
                continue  # an edit touched this issue's preamble right there
            body = state.body[:at] + after + state.body[at + len(before) :]
            state = replace(state, body=body)
            article.prefix_chars = len(series.preamble(number, text))
            if article.history:
                self.stream._commit(article, state, ["sitewide"], away=False)
            else:
                article.state = state  # not shown yet: it enters with the new preamble
        series.text = text
        series.swapped.append(start)
        return True

    def _version_fix(self, what: tuple[Article, str, str], size: int) -> bool:
        article, typo, fixed = what
        if not article.history or article.pending:
            return False
        if typo in article.state.body:
            state = replace(article.state, body=article.state.body.replace(typo, fixed, 1))
            self.stream._commit(article, state, ["version_fix"], away=False)
        return True

    def _pinned_edit(self, article: Article, size: int) -> bool:
        if not article.history or article.pending:
            return False
        kinds = list(PINNED_EDIT_KINDS)
        self.rng.shuffle(kinds)
        for kind in kinds:
            state = self.editor.apply(kind, article.state, article.history)
            if state is None or state.shown() == article.state.shown():
                continue
            if self._edit_keeps_promise(article, state):
                self.stream._commit(article, state, [kind], away=False)
                break
        return True

    def _edit_keeps_promise(self, article: Article, state: State) -> bool:
        """Stream._keeps_promise, and with recut: also against the texts shown so far
        and at every cut the listing may show either article at."""
        if not self.stream._keeps_promise(article, state):
            return False
        if "recut" not in self.kinds:
            return True
        edited = replace(article, state=state)
        shortest = recut(state, recut_range(edited)[0])
        if not (self._apart(article, state.shown()) and self._apart(article, shortest)):
            return False
        # The article's cuts to come, against every other article's cuts to come.
        others = [a for a in self.stream.articles if a is not article]
        return self._apart_when_recut(edited, others)

    def _insert_edit(self, listing: Sequence[Article]) -> None:
        settings = self.stream.settings
        candidates = [
            a for a in listing if a.history and not a.pending and a.edits < settings.max_edits
        ]
        self.rng.shuffle(candidates)
        for article in candidates:
            ops = ["insert_section", "rewrite_opening"]
            self.rng.shuffle(ops)
            for op in ops:
                state = getattr(self, f"_{op}")(article.state)
                if state is None or state.shown() == article.state.shown():
                    continue
                if not self._edit_keeps_promise(article, state):
                    continue
                self.stream._commit(article, state, [op], away=False)
                if self.rng.random() < settings.bump_probability:
                    self.stream._bump(article)
                return

    def _section(self, low: int, high: int, avoid: str) -> str | None:
        """Sentences of the seeds, low to high characters in all."""
        text = ""
        for _attempt in range(80):
            sentence = self.rng.choice(self.sentences)
            if sentence in avoid or sentence in text or len(text) + len(sentence) > high:
                continue
            text += sentence
            if len(text) >= low:
                return text
        return None

    def _insert_section(self, state: State) -> State | None:
        """A section inserted after an unchanged opening; the cut stays where it was."""
        if not state.is_cut() or state.more:
            return None
        shown = state.limit
        low, high = int(shown * INSERT_AT[0]), int(shown * INSERT_AT[1])
        points = [m.end() for m in re.finditer(r"[。！？!?]", state.body[:high]) if m.end() >= low]
        if not points:
            return None
        at = self.rng.choice(points)
        size = shown * self.rng.uniform(*INSERT_SHARE)
        low = int(max(shown * INSERT_SHARE[0], size * 0.85))
        high = int(min(shown * INSERT_SHARE[1], size * 1.15))
        section = self._section(low, high, state.body)
        if section is None:
            return None
        return replace(state, body=state.body[:at] + section + state.body[at:])

    def _rewrite_opening(self, state: State) -> State | None:
        """The first sentence rewritten: another of about its length in its place."""
        visible = state.body[: state.visible_end()]
        m = re.search(r"[。！？!?]", visible)
        if m is None or not 12 <= m.end() <= OPENING_SHARE * len(visible):
            return None
        first = visible[: m.end()]
        options = [
            t
            for t in self.sentences
            if 0.7 * len(first) <= len(t) <= 1.3 * len(first) and t not in state.body
        ]
        if not options:
            return None
        return replace(state, body=self.rng.choice(options) + state.body[m.end() :])

    def shown(self, article: Article) -> str:
        """The line a dump shows for this article (recut: another cut in every dump)."""
        state = article.state
        if "recut" not in self.kinds:
            return state.shown()
        if not state.is_cut():
            text = state.shown()  # short posts shown whole stay whole
        else:
            floor, top = recut_range(article)
            cut = min(max(floor, round(state.limit * self.cut_rng.uniform(*RECUT_RANGE))), top)
            # Longer cuts, then the usual one, when a cut would come too close to
            # a text another article has shown (a shorter text is easier to contain).
            step = max(1, state.limit // 10)
            options = [recut(state, c) for c in (*range(cut, top + 1, step), top)]
            text = next((t for t in options if self._apart(article, t)), state.shown())
        self._record(article, text)
        return text

    def _record(self, article: Article, text: str) -> None:
        texts, union, least = self._shown.get(id(article), ((), frozenset(), 1 << 30))
        if text in texts:
            return
        grams = _grams(_normalized(text))
        self._shown[id(article)] = ((*texts, text), union | grams, min(least, len(grams)))

    def _apart(self, article: Article, text: str) -> bool:
        """The promise, against every text another article has shown (but its siblings)."""
        grams = _grams(_normalized(text))
        for other in self.stream.articles:
            seen = self._shown.get(id(other))
            if seen is None or other is article or article.exempt_with(other):
                continue
            texts, union, least = seen
            # overlap() <= shared 4-grams / the shorter text's: skip what cannot reach it.
            if len(grams & union) < MAX_PAIR_OVERLAP * min(len(grams), least) - 1:
                continue
            if any(overlap(text, t) >= MAX_PAIR_OVERLAP for t in texts):
                return False
        return True


def _noise_lines(rng: random.Random, settings: StreamSettings, items: int) -> dict[int, list[str]]:
    """Noise to insert before item index i (i == items: after the last item)."""
    noise: dict[int, list[str]] = {}
    if items < 2:
        return noise
    if rng.random() < settings.noise_probability:
        day = date(2026, 1, 1) + timedelta(days=rng.randrange(60))
        block = rng.choice(
            ([rng.choice(CATEGORIES), day.isoformat()], [rng.choice(CATEGORIES)], [day.isoformat()])
        )
        noise.setdefault(rng.randrange(1, items), []).extend(block)
    if rng.random() < settings.pager_probability:
        at = items if rng.random() < 0.8 else rng.randrange(1, items)
        noise.setdefault(at, []).append(rng.choice(("1 2", "1 2", "1 2 3")))
    return noise


def _label_of(article: Article) -> tuple[str | None, tuple[str, ...]]:
    kinds = tuple(article.pending)
    if not kinds:
        return None, ()
    if article.away:
        return "away", kinds
    return (kinds[0] if len(kinds) == 1 else "stacked"), kinds


def generate(
    seed: int, settings: StreamSettings, seed_dir: Path = DEFAULT_SEEDS
) -> tuple[list[Dump], list[dict[str, object]], list[Article]]:
    """Build the dumps and their labels; touches no file except the seeds."""
    rng = random.Random(seed)
    seed_items = read_seed_items(seed_dir)
    counts = Counter(ch for line in seed_items for ch in line if _CJK.match(ch))
    alphabet = [ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    builder = _build_pool(rng, seed_items, settings.articles, settings.hard_negatives)
    entering = select_articles(rng, builder.pool, settings.articles)
    _check_distinct(entering)
    stream = Stream(rng, entering, Editor(rng, alphabet), settings)
    extra = KindStream(seed, settings, builder, stream, alphabet) if settings.kinds else None
    width = max(3, len(str(settings.dumps - 1)))

    dumps: list[Dump] = []
    for d in range(settings.dumps):
        name = f"{d:0{width}d}_{rng.getrandbits(64):016x}.txt"
        if d > 0 and rng.random() < settings.resave_probability:
            previous = dumps[-1]
            dumps.append(Dump(name, previous.lines, previous.final_newline, resaved=True))
            for line in previous.lines:
                if line.article is not None:
                    line.article.last_shown = d
            continue
        size = rng.choice(settings.listing_sizes)
        if d == 0:
            stream.enter(size)
        else:
            # Spread the remaining articles over the remaining dumps.
            left = settings.dumps - d
            rate = len(stream.pending) / left
            stream.enter(min(int(rate) + (rng.random() < rate - int(rate)), 4))
            if rng.random() < settings.resurface_probability:
                stream.resurface(size)
            if rng.random() < settings.away_probability or (
                settings.away_probability and d == settings.dumps // 3 and not _any_away(dumps)
            ):
                stream.away_edit(size, d)
            if extra is not None:
                extra.step(d, size)
            weights = [w for _, w in settings.edits_per_dump]
            edits = rng.choices([n for n, _ in settings.edits_per_dump], weights=weights)[0]
            stream.edit(stream.feed[:size], edits)
        listing = stream.feed[:size]
        if extra is not None:
            listing = [*extra.pinned, *listing]
        noise = _noise_lines(rng, settings, len(listing))
        lines: list[Line] = []
        number = len(HEADER_LINES)
        for index in range(len(listing) + 1):
            for text in noise.get(index, []):
                number += 1
                lines.append(Line(number, None, text, None))
            if index == len(listing):
                break
            article = listing[index]
            number += 1
            edit, kinds = _label_of(article)
            text = article.state.shown() if extra is None else extra.shown(article)
            lines.append(Line(number, article, text, edit, kinds))
            if not article.history or article.history[-1] != article.state:
                article.history.append(article.state)
            article.pending = []
            article.away = False
            article.last_shown = d
        dumps.append(Dump(name, lines, rng.random() < 0.5))
    # Ids follow first appearance, top to bottom, so a1 is the first line of
    # the first dump: easier to read next to a system's export.
    seen = 0
    for line in (line for dump in dumps for line in dump.lines):
        if line.article is not None and not line.article.aid:
            seen += 1
            line.article.aid = f"a{seen}"
    return dumps, label(dumps), [*entering, *(extra.articles if extra else ())]


def _any_away(dumps: Sequence[Dump]) -> bool:
    return any(line.edit == "away" for dump in dumps for line in dump.lines)


@dataclass
class _Revision:
    raw: str  # the longest text seen for this revision, as shown
    norm: str
    compact: str
    cut: bool


class Labeller:
    """The ground truth of one line from texts alone (the contract, see the module doc).

    Each article's current revision keeps the longest text seen for it, T.
    A line L of a known article is:

    - ``repeat`` when normalize(L) == normalize(T);
    - ``repeat`` (a re-cut) when compact(L) != compact(T), one is a prefix of the
      other and the shorter one was cut (its raw text ends with an ellipsis);
      when L is the longer, it becomes T (same revision number);
    - ``update`` back to an older revision whose text T' has normalize(T') ==
      normalize(L);
    - else ``update`` to a new revision, whose text is L.
    """

    def __init__(self) -> None:
        self.revisions: dict[str, list[_Revision]] = {}
        self.current: dict[str, int] = {}

    def see(self, article: str, raw: str) -> tuple[str, int, bool]:
        """(kind, revision number, whether it was a re-cut) of this line."""
        norm = normalize(raw)
        line = _Revision(raw, norm, compact(norm), was_cut(raw))
        revisions = self.revisions.get(article)
        if revisions is None:
            self.revisions[article] = [line]
            self.current[article] = 0
            return "new", 1, False
        index = self.current[article]
        stored = revisions[index]
        if norm == stored.norm:
            return "repeat", index + 1, False
        if line.compact != stored.compact and (
            line.compact.startswith(stored.compact) or stored.compact.startswith(line.compact)
        ):
            longer = len(line.compact) > len(stored.compact)
            if (stored if longer else line).cut:
                if longer:
                    revisions[index] = line
                return "repeat", index + 1, True
        for other, revision in enumerate(revisions):
            if other != index and revision.norm == norm:
                self.current[article] = other
                return "update", other + 1, False
        revisions.append(line)
        self.current[article] = len(revisions) - 1
        return "update", len(revisions), False


def label(dumps: Sequence[Dump]) -> list[dict[str, object]]:
    """Ground truth per item line, from the shown texts alone (Labeller)."""
    labeller = Labeller()
    labels: list[dict[str, object]] = []
    for dump in dumps:
        for line in dump.lines:
            if line.article is None:
                continue
            kind, revision, recut = labeller.see(line.article.aid, line.text)
            labels.append(
                {
                    "dump": dump.name,
                    "line": line.number,
                    "article": line.article.aid,
                    "kind": kind,
                    "revision": revision,
                    "recut": recut,
                    "edit": None if dump.resaved else line.edit,
                    "edits": [] if dump.resaved else list(line.edits),
                }
            )
    return labels


def _check_distinct(articles: Sequence[Article]) -> None:
    """The promise, on the texts the articles enter with (edits check it as they go)."""
    texts = [(a.key, a.state.shown()) for a in articles]
    for i, (name_a, text_a) in enumerate(texts):
        for name_b, text_b in texts[i + 1 :]:
            if overlap(text_a, text_b) >= MAX_PAIR_OVERLAP:
                raise AssertionError(f"{name_a} and {name_b} are too alike")


def summary(
    dumps: Sequence[Dump], labels: Iterable[dict[str, object]], stream_kinds: Sequence[str] = ()
) -> str:
    labels = list(labels)
    kinds = Counter(str(row["kind"]) for row in labels)
    edits = Counter(str(row["edit"]) for row in labels if row["edit"])
    reverts = count_reverts(labels)
    noise = sum(1 for d in dumps for line in d.lines if line.article is None)
    articles = len({str(row["article"]) for row in labels})
    cut = sum(
        1 for d in dumps for line in d.lines if line.article and line.text.endswith(("...", "…"))
    )
    items = sum(1 for d in dumps for line in d.lines if line.article)
    parts = [
        f"dumps={len(dumps)}",
        f"resaved={sum(d.resaved for d in dumps)}",
        f"item_lines={len(labels)}",
        f"cut_lines={cut / items:.0%}" if items else "cut_lines=-",
        f"noise_lines={noise}",
        f"articles={articles}",
        *(f"{k}={kinds[k]}" for k in ("new", "repeat", "update")),
        f"update_to_older_revision={reverts}",
        f"recut_repeats={sum(1 for row in labels if row.get('recut'))}",
        "edits: " + " ".join(f"{k}={edits[k]}" for k in EDIT_TYPES),
    ]
    if stream_kinds:
        parts.insert(0, f"kinds={'+'.join(stream_kinds)}")
        parts.append(" ".join(f"{k}={edits[k]}" for k in KIND_EDIT_TYPES))
    return " ".join(parts)


def count_reverts(labels: Sequence[dict[str, object]]) -> int:
    highest: dict[str, int] = {}
    reverts = 0
    for row in labels:
        aid, revision = str(row["article"]), int(str(row["revision"]))
        if row["kind"] == "update" and revision <= highest.get(aid, 0):
            reverts += 1
        highest[aid] = max(highest.get(aid, 0), revision)
    return reverts


def write(
    out: Path,
    dumps: Sequence[Dump],
    labels: Sequence[dict[str, object]],
    articles: Sequence[Article],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stale = [p for p in out.glob("*.txt") if re.fullmatch(r"\d+_[0-9a-f]{16}\.txt", p.name)]
    if stale:
        raise SystemExit(f"{out} already holds dumps ({stale[0].name}); use an empty folder")
    for dump in dumps:
        (out / dump.name).write_bytes(dump.content())
    with open(out / "labels.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for row in labels:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    revisions: Counter[str] = Counter()
    for row in labels:
        aid = str(row["article"])
        revisions[aid] = max(revisions[aid], int(str(row["revision"])))
    with open(out / "articles.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for article in sorted(articles, key=lambda a: int(a.aid[1:]) if a.aid else 1 << 30):
            if not article.aid:
                continue  # never entered the listing: the stream ended first
            row = {
                "article": article.aid,
                "source": article.source,
                "pool_key": article.key,
                "groups": list(article.groups),
                "revisions": revisions[article.aid],
                "edits": article.edits,
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def stream_settings(
    dumps: int, articles: int, easy: bool = False, kinds: Sequence[str] = ()
) -> StreamSettings:
    """The settings of a stream: the default one, or --easy, with these kinds on top."""
    base = StreamSettings.easy(dumps, articles) if easy else StreamSettings(dumps, articles)
    return replace(base, kinds=parse_kinds(kinds))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for dumps and labels")
    parser.add_argument(
        "--dumps",
        type=int,
        help=f"dumps (default {StreamSettings.dumps}; {LONG_DUMPS} with the long kind)",
    )
    parser.add_argument("--articles", type=int, default=StreamSettings.articles)
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS, help="seed dumps folder")
    parser.add_argument(
        "--easy",
        action="store_true",
        help="the first benchmark's stream: single edits on the listing, no built near-misses",
    )
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        choices=(*STREAM_KINDS, "all"),
        help="a stream kind on top of the default stream (repeatable; all: every kind)",
    )
    args = parser.parse_args(argv)
    kinds = parse_kinds(args.kind)
    if args.dumps is None:
        args.dumps = LONG_DUMPS if "long" in kinds else StreamSettings.dumps
    if args.dumps < 1 or args.articles < 2:
        parser.error("need at least 1 dump and 2 articles")
    settings = stream_settings(args.dumps, args.articles, args.easy, kinds)
    dumps, labels, articles = generate(args.seed, settings, args.seeds)
    write(args.out, dumps, labels, articles)
    print(summary(dumps, labels, kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
