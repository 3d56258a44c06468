"""Generate a labelled stream of dump files for the detection benchmark.

    python bench/detection/generate.py --seed 1 --out /tmp/corpus [--dumps 150] [--articles 150]

writes ``NNN_<16 hex>.txt`` dumps, ``labels.jsonl`` (one object per item line: the
true article, kind, revision and the edit that produced the text) and
``articles.jsonl`` (the true articles and the hard-negative groups they belong to).

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

Ground truth: a line is "new" at an article's first sighting, "repeat" when its
normalised text equals the article's most recently shown one, else "update"
(whose revision is an older one's number when the text goes back to it). Edits
that only change width, spacing or the ellipsis are therefore repeats.
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


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _WHITESPACE.sub(" ", text).strip()
    return _TRAILING_CUT.sub("", text)


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

    def near_miss_with(self, other: Article) -> bool:
        return any(g in other.groups for g in self.groups if g.startswith(NEAR_MISS_GROUPS))

    def texts(self) -> list[str]:
        """Every text this article has shown, and will show next."""
        out = [s.shown() for s in self.history]
        if not self.history or self.history[-1] != self.state:
            out.append(self.state.shown())
        return out


NEAR_MISS_GROUPS = ("boilerplate:", "opening:")


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
    return builder.pool


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

    def _keeps_promise(self, article: Article, state: State) -> bool:
        text = state.shown()
        for other in self.articles:
            if other is article:
                continue
            if any(overlap(text, seen) >= MAX_PAIR_OVERLAP for seen in other.texts()):
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
    pool = build_pool(rng, seed_items, settings.articles, settings.hard_negatives)
    entering = select_articles(rng, pool, settings.articles)
    _check_distinct(entering)
    stream = Stream(rng, entering, Editor(rng, alphabet), settings)
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
            weights = [w for _, w in settings.edits_per_dump]
            edits = rng.choices([n for n, _ in settings.edits_per_dump], weights=weights)[0]
            stream.edit(stream.feed[:size], edits)
        listing = stream.feed[:size]
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
            lines.append(Line(number, article, article.state.shown(), edit, kinds))
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
    return dumps, label(dumps), entering


def _any_away(dumps: Sequence[Dump]) -> bool:
    return any(line.edit == "away" for dump in dumps for line in dump.lines)


def label(dumps: Sequence[Dump]) -> list[dict[str, object]]:
    """Ground truth per item line, from normalised texts alone (see module doc)."""
    revisions: dict[str, list[str]] = {}
    latest: dict[str, str] = {}
    labels: list[dict[str, object]] = []
    for dump in dumps:
        for line in dump.lines:
            if line.article is None:
                continue
            aid = line.article.aid
            text = normalize(line.text)
            seen = revisions.setdefault(aid, [])
            if not seen:
                kind = "new"
            elif text == latest[aid]:
                kind = "repeat"
            else:
                kind = "update"
            if text not in seen:
                seen.append(text)
            latest[aid] = text
            labels.append(
                {
                    "dump": dump.name,
                    "line": line.number,
                    "article": aid,
                    "kind": kind,
                    "revision": seen.index(text) + 1,
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


def summary(dumps: Sequence[Dump], labels: Iterable[dict[str, object]]) -> str:
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
        "edits: " + " ".join(f"{k}={edits[k]}" for k in EDIT_TYPES),
    ]
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
    with open(out / "articles.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for article in sorted(articles, key=lambda a: int(a.aid[1:]) if a.aid else 1 << 30):
            if not article.aid:
                continue  # never entered the listing: the stream ended first
            row = {
                "article": article.aid,
                "source": article.source,
                "pool_key": article.key,
                "groups": list(article.groups),
                "revisions": len({normalize(s.shown()) for s in article.history}),
                "edits": article.edits,
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for dumps and labels")
    parser.add_argument("--dumps", type=int, default=StreamSettings.dumps)
    parser.add_argument("--articles", type=int, default=StreamSettings.articles)
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS, help="seed dumps folder")
    parser.add_argument(
        "--easy",
        action="store_true",
        help="the first benchmark's stream: single edits on the listing, no built near-misses",
    )
    args = parser.parse_args(argv)
    if args.dumps < 1 or args.articles < 2:
        parser.error("need at least 1 dump and 2 articles")
    settings = (
        StreamSettings.easy(args.dumps, args.articles)
        if args.easy
        else StreamSettings(dumps=args.dumps, articles=args.articles)
    )
    dumps, labels, articles = generate(args.seed, settings, args.seeds)
    write(args.out, dumps, labels, articles)
    print(summary(dumps, labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
