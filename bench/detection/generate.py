"""Generate a labelled stream of dump files for the detection benchmark.

    python bench/detection/generate.py --seed 1 --out /tmp/corpus [--dumps 60] [--articles 80]

writes ``NNN_<16 hex>.txt`` dumps, ``labels.jsonl`` (one object per item line: the
true article, kind, revision and the edit that produced the text) and
``articles.jsonl`` (the true articles and the hard-negative groups they belong to).

Everything is drawn from ``random.Random(seed)`` and the seed dumps, so the same
seed and seed folder give byte-identical output. No set is ever iterated while
drawing: string hashing is salted per process and would change the order.

Article texts are real: the distinct item lines of the seed dumps, plus articles
spliced from sentences of 2-4 different seed items. A spliced article is kept
only when, against every other article, the character 4-gram Jaccard of the
bodies and of the first 350 characters stays below 0.35 and the containment of
the shorter body below 0.45; every pair in a stream is checked below 0.5.

Ground truth: a line is "new" at an article's first sighting, "repeat" when its
normalised text equals the article's most recently shown one, else "update"
(whose revision is an older one's number when the text goes back to it). Edits
that only change width, spacing or the ellipsis are therefore repeats.
"""

from __future__ import annotations

import argparse
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

MAX_PAIR_JACCARD = 0.5  # the benchmark's promise: distinct articles stay below this
# Margins kept while splicing, so that edits cannot push a pair across the promise.
_BUILD_JACCARD = 0.35
_BUILD_CONTAINED = 0.45

HEADINGS = ("简介 ", "背景 ", "概述 ")
HEADING_ARTICLES = 3  # derived articles per shared heading
BOILERPLATE_ARTICLES = 5
DIFFUSION_ARTICLES = 3

# A blog-series preamble shared by several articles. The variants differ by a
# few words, which is what a "boilerplate changed" edit looks like in practice.
BOILERPLATES = (
    "【学习笔记】本文是大模型与生成模型系列笔记中的一篇,内容整理自论文原文、官方博客、"
    "公开课程以及社区里的讨论,主要用于个人学习和复习,文中的理解难免有偏差或错误,"
    "欢迎在评论区指出,转载请注明出处并附上原文链接。",
    "【学习笔记】本文是大模型与生成模型系列笔记中的一篇,内容整理自论文原文、官方博客、"
    "公开课程以及社区里的讨论,主要用于个人学习和复习,文中的理解难免有偏差或错误,"
    "欢迎私信或在评论区指出,转载请注明出处并附上原文链接。",
    "【学习笔记】本文是大模型与生成模型系列笔记(2025修订版)中的一篇,内容整理自论文原文、"
    "官方博客、公开课程以及社区里的讨论,主要用于个人学习和复习,文中的理解难免有偏差或错误,"
    "欢迎在评论区指出,转载请注明出处。",
)

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

# Edits an article can receive between two dumps. "width", "whitespace" and
# "ellipsis" normalise to the same text, so their lines are true repeats.
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
    "recut": 1.2,
    "boilerplate": 1.5,
    "revert": 0.8,
}
EDIT_TYPES = tuple(EDIT_WEIGHTS)


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _WHITESPACE.sub(" ", text).strip()
    return _TRAILING_CUT.sub("", text)


def shingles(text: str, n: int = 4) -> frozenset[str]:
    text = normalize(text)
    return frozenset(text[i : i + n] for i in range(max(len(text) - n + 1, 1)))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def containment(a: frozenset[str], b: frozenset[str]) -> float:
    smaller = min(len(a), len(b))
    return len(a & b) / smaller if smaller else 1.0


@dataclass(frozen=True)
class Likeness:
    """4-gram sets that tell whether two articles read as the same text.

    Jaccard over whole bodies alone misses a long article that opens with most
    of a short one: a listing that cuts both at 350 characters shows near-equal
    texts. So the opening and the containment of the shorter text count too.
    """

    body: frozenset[str]
    head: frozenset[str]  # what a listing cut at 350 characters would show

    @classmethod
    def of(cls, state: State) -> Likeness:
        return cls(shingles(state.body), shingles(normalize(state.body)[:350]))

    def too_alike(self, other: Likeness, limit: float, contained_limit: float) -> bool:
        return (
            jaccard(self.head, other.head) >= limit
            or jaccard(self.body, other.body) >= limit
            or containment(self.body, other.body) >= contained_limit
        )


def is_noise(line: str) -> bool:
    """The seeds' noise: a short category word, a date or a pager, never Chinese."""
    stripped = line.strip()
    return not stripped or (
        len(stripped) <= 24 and not _CJK.search(stripped) and bool(_SEED_NOISE.match(stripped))
    )


@dataclass(frozen=True)
class State:
    """What the listing shows of an article: a prefix of ``body``, maybe cut."""

    body: str
    cut: int | None  # None: shown whole; else body[:cut] + ellipsis
    ellipsis: str = "..."
    boilerplate: int | None = None  # index into BOILERPLATES of the preamble in body

    def shown(self) -> str:
        return self.body if self.cut is None else self.body[: self.cut] + self.ellipsis

    def visible_end(self) -> int:
        return len(self.body) if self.cut is None else min(self.cut, len(self.body))


@dataclass(eq=False)
class Article:
    key: str  # pool name, stable for a seed: s07 is the 8th distinct seed item
    state: State
    source: str  # "seed" | "derived"
    groups: tuple[str, ...] = ()
    aid: str = ""  # true article id, given in order of first appearance
    history: list[State] = field(default_factory=list)
    edits: int = 0
    pending_edit: str | None = None  # shown on the next fresh dump's line


@dataclass(frozen=True)
class Line:
    number: int
    article: Article | None  # None for noise
    text: str
    edit: str | None


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
    if line.endswith("..."):
        body = line[:-3]
        return State(body, len(body))
    return State(line, None)


def split_sentences(state: State) -> list[str]:
    parts = [p for p in _SENTENCE_END.split(state.body) if p]
    if state.cut is not None and parts and not re.search(r"[。！？!?]$", parts[-1]):
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


class Splicer:
    """Builds new articles from runs of sentences of different seed items."""

    def __init__(self, rng: random.Random, seeds: Sequence[Article]) -> None:
        self.rng = rng
        self.sentences = [split_sentences(a.state) for a in seeds]
        self.topics = [_topic_of(a.state.body) for a in seeds]
        self.uses: Counter[tuple[int, int]] = Counter()
        # How many articles may share one seed sentence. Kept low, and raised
        # only when a large pool cannot be built otherwise.
        self.max_uses = 3
        self._keys: list[tuple[int, int]] = []  # sentences of the last splice

    def _fresh(self, run: list[tuple[int, int]]) -> bool:
        return bool(run) and all(self.uses[key] < self.max_uses for key in run)

    def _run(self, source: int, allow_first: bool) -> list[tuple[int, int]]:
        count = len(self.sentences[source])
        first = 0 if allow_first else 1
        if count <= first:
            return []
        start = self.rng.randrange(first, count)
        # An opening sentence alone: with its continuation it would make the
        # new article read as an edit of the seed it came from.
        length = 1 if start == 0 else self.rng.randint(1, 3)
        return [(source, i) for i in range(start, min(start + length, count))]

    def splice(self, prefix: str, topic: str | None, allow_first: bool) -> str | None:
        sources = [i for i, t in enumerate(self.topics) if topic is None or t == topic]
        sources = [i for i in sources if len(self.sentences[i]) > 1]
        if len(sources) < 2:
            return None
        target = self.rng.randint(320, 900)
        picked = self.rng.sample(sources, min(len(sources), self.rng.randint(2, 4)))
        runs = [self._run(s, allow_first) for s in picked]
        runs = [r for r in runs if self._fresh(r)]
        if len(runs) < 2:
            return None
        # A seed's first sentence carries its heading, which only reads right
        # at the start of an article.
        if sum(1 for r in runs if r[0][1] == 0) > 1:
            return None
        self.rng.shuffle(runs)
        runs.sort(key=lambda r: r[0][1] != 0)
        joiner = self.rng.choice((" ", ""))
        keys = [key for run in runs for key in run]
        text = prefix + joiner.join(self.sentences[s][i] for s, i in keys)
        spare = [s for s in sources if s not in picked]
        self.rng.shuffle(spare)
        while len(text) < target and spare:
            run = self._run(spare.pop(), allow_first=False)
            if self._fresh(run):
                keys += run
                text += joiner + joiner.join(self.sentences[s][i] for s, i in run)
        if len(text) < 300:
            return None
        self._keys = keys
        return text

    def accept(self, state: State, others: Sequence[Likeness]) -> bool:
        likeness = Likeness.of(state)
        if any(likeness.too_alike(o, _BUILD_JACCARD, _BUILD_CONTAINED) for o in others):
            return False
        self.uses.update(self._keys)
        return True


def _derived_cut(rng: random.Random, body: str) -> int | None:
    if len(body) > 1200 or (len(body) > 520 and rng.random() < 0.5):
        return rng.choice((350, 350, 500))
    if len(body) > 380 and rng.random() < 0.15:
        return 350
    return None


def build_pool(rng: random.Random, seed_items: Sequence[str], n_articles: int) -> list[Article]:
    seeds = [
        Article(f"s{i:02d}", seed_state(line), "seed", _seed_groups(line))
        for i, line in enumerate(seed_items)
    ]
    pool: list[Article] = list(seeds)
    likeness = [Likeness.of(a.state) for a in pool]
    splicer = Splicer(rng, seeds)

    Maker = Callable[[], tuple[str, State | None]]

    def derive(count: int, make: Maker, groups: tuple[str, ...]) -> None:
        made = 0
        for max_uses in range(3, 9):
            splicer.max_uses = max_uses
            for _attempt in range((count - made) * 60 + 100):
                if made == count:
                    return
                key, state = make()
                if state is None:
                    continue
                if not splicer.accept(state, likeness):
                    continue
                pool.append(Article(key, state, "derived", groups))
                likeness.append(Likeness.of(state))
                made += 1

    def plain(prefix: str, topic: str | None, boilerplate: int | None) -> Maker:
        def make() -> tuple[str, State | None]:
            body = splicer.splice(prefix, topic, allow_first=not prefix)
            key = f"d{len(pool) - len(seeds):03d}"
            if body is None:
                return key, None
            return key, State(body, _derived_cut(rng, body), boilerplate=boilerplate)

        return make

    for heading in HEADINGS:
        derive(HEADING_ARTICLES, plain(heading, None, None), (f"heading:{heading.strip()}",))
    derive(BOILERPLATE_ARTICLES, plain(BOILERPLATES[0] + " ", None, 0), ("boilerplate",))
    derive(DIFFUSION_ARTICLES, plain("", "topic:diffusion", None), ("topic:diffusion",))
    wanted = max(n_articles, len(pool))
    derive(wanted - len(pool), plain("", None, None), ())
    if len(pool) < n_articles:
        raise SystemExit(
            f"could only build {len(pool)} distinct articles; ask for fewer (--articles)"
        )
    return pool


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
# Edits: each takes the current state and returns a changed one, or None when
# it does not apply. Every change lands in the visible part of the text.


def _cjk_positions(text: str, end: int) -> list[int]:
    return [i for i in range(min(end, len(text))) if _CJK.match(text[i])]


class Editor:
    def __init__(self, rng: random.Random, alphabet: Sequence[str]) -> None:
        self.rng = rng
        self.alphabet = alphabet

    def apply(self, kind: str, article: Article) -> State | None:
        method: Callable[[Article], State | None] = getattr(self, f"edit_{kind}")
        return method(article)

    def edit_typo(self, article: Article) -> State | None:
        s = article.state
        end = s.visible_end()
        positions = _cjk_positions(s.body, end - 3)
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

    def edit_punctuation(self, article: Article) -> State | None:
        s = article.state
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

    def edit_width(self, article: Article) -> State | None:
        s = article.state
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

    def edit_whitespace(self, article: Article) -> State | None:
        s = article.state
        spaces = [i for i in range(s.visible_end() - 1) if s.body[i] == " "]
        if not spaces:
            return None
        i = self.rng.choice(spaces)
        repl = self.rng.choice(("  ", "\u3000", " \u3000"))
        # A longer run of spaces must not push visible text past the cut, or
        # the edit would change the words shown and no longer normalise equal.
        cut = None if s.cut is None else s.cut + len(repl) - 1
        return replace(s, body=s.body[:i] + repl + s.body[i + 1 :], cut=cut)

    def edit_ellipsis(self, article: Article) -> State | None:
        s = article.state
        if s.cut is None:
            return None
        return replace(s, ellipsis="…" if s.ellipsis == "..." else "...")

    def edit_word(self, article: Article) -> State | None:
        s = article.state
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

    def edit_clause_delete(self, article: Article) -> State | None:
        s = article.state
        visible = s.body[: s.visible_end()]
        options = list(re.finditer(r"[,，][^,，。；;！？!?\s]{3,30}(?=[,，。；;！？!?])", visible))
        if not options:
            return None
        m = self.rng.choice(options)
        return replace(s, body=s.body[: m.start()] + s.body[m.end() :])

    def edit_clause_insert(self, article: Article) -> State | None:
        s = article.state
        end = s.visible_end() - 2
        points = [i for i in range(1, end) if s.body[i] == "。" and _CJK.match(s.body[i - 1])]
        points = points or [i for i in range(1, end) if s.body[i] == ","]
        clauses = [c for c in CLAUSES if c not in s.body]
        if not points or not clauses:
            return None
        i = self.rng.choice(points)
        return replace(s, body=s.body[:i] + self.rng.choice(clauses) + s.body[i:])

    def edit_append(self, article: Article) -> State | None:
        s = article.state
        sentences = [t for t in APPENDED_SENTENCES if t not in s.body]
        if s.cut is not None or not sentences or len(s.body) > 1150:
            return None
        joiner = "" if s.body.endswith(("。", "!", "！")) else " "
        return replace(s, body=s.body + joiner + self.rng.choice(sentences))

    def edit_recut(self, article: Article) -> State | None:
        s = article.state
        longest = min(len(s.body), 1200)
        current = s.visible_end()
        choices = [n for n in range(300, longest - 14) if abs(n - current) >= 15]
        if not choices:
            return None
        return replace(s, cut=self.rng.choice(choices))

    def edit_boilerplate(self, article: Article) -> State | None:
        s = article.state
        if s.boilerplate is None:
            return None
        old = BOILERPLATES[s.boilerplate]
        new_index = self.rng.choice([i for i in range(len(BOILERPLATES)) if i != s.boilerplate])
        if old not in s.body[: s.visible_end()]:
            return None  # an earlier edit touched the preamble itself
        body = s.body.replace(old, BOILERPLATES[new_index], 1)
        return replace(s, body=body, boilerplate=new_index)

    def edit_revert(self, article: Article) -> State | None:
        current = normalize(article.state.shown())
        older = [st for st in article.history if normalize(st.shown()) != current]
        if not older:
            return None
        # Mostly an undo of the last change; sometimes back to an earlier text.
        return older[-1] if self.rng.random() < 0.7 else self.rng.choice(older)


# ---------------------------------------------------------------------------
# The stream


@dataclass
class StreamSettings:
    dumps: int = 60
    articles: int = 80
    listing_sizes: tuple[int, ...] = (12, 13, 13, 14)
    resave_probability: float = 0.07
    resurface_probability: float = 0.1
    edits_per_dump: tuple[tuple[int, int], ...] = ((0, 20), (1, 35), (2, 30), (3, 15))
    bump_probability: float = 0.3  # an edited article moves to the top
    chain_probability: float = 0.25  # edit an article that was edited before
    max_edits: int = 6
    noise_probability: float = 0.35
    pager_probability: float = 0.2


class Stream:
    def __init__(self, rng: random.Random, entering: list[Article], editor: Editor) -> None:
        self.rng = rng
        self.pending = list(entering)
        self.editor = editor
        self.feed: list[Article] = []  # every article that entered, newest first
        self.unused_edits = list(EDIT_TYPES)

    def enter(self, count: int) -> None:
        for _ in range(min(count, len(self.pending))):
            self.feed.insert(0, self.pending.pop(0))

    def resurface(self, listing_size: int) -> None:
        gone = self.feed[listing_size + 1 : listing_size + 40]
        if gone:
            article = self.rng.choice(gone)
            self.feed.remove(article)
            self.feed.insert(0, article)

    def _pick_kind(self) -> list[str]:
        weighted = self.rng.choices(EDIT_TYPES, weights=[EDIT_WEIGHTS[k] for k in EDIT_TYPES])
        # Cover every edit type as soon as some article allows it, so even a
        # short stream holds each one.
        unused = list(self.unused_edits)
        self.rng.shuffle(unused)
        return [*unused, *weighted]

    def edit(self, listing: list[Article], count: int, settings: StreamSettings) -> None:
        touched: list[Article] = []
        for _ in range(count):
            for kind in self._pick_kind():
                # Only shown articles change: an edit before the first sighting is invisible.
                candidates = [
                    a
                    for a in listing
                    if a.history and a not in touched and a.edits < settings.max_edits
                ]
                self.rng.shuffle(candidates)
                if self.rng.random() < settings.chain_probability:
                    candidates.sort(key=lambda a: a.edits == 0)
                for article in candidates:
                    new_state = self.editor.apply(kind, article)
                    if new_state is None or new_state.shown() == article.state.shown():
                        continue
                    article.state = new_state
                    article.edits += 1
                    article.pending_edit = kind
                    touched.append(article)
                    if kind in self.unused_edits:
                        self.unused_edits.remove(kind)
                    break
                else:
                    continue
                break
        for article in touched:
            if self.rng.random() < settings.bump_probability:
                self.feed.remove(article)
                self.feed.insert(0, article)


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


def generate(
    seed: int, settings: StreamSettings, seed_dir: Path = DEFAULT_SEEDS
) -> tuple[list[Dump], list[dict[str, object]], list[Article]]:
    """Build the dumps and their labels; touches no file except the seeds."""
    rng = random.Random(seed)
    seed_items = read_seed_items(seed_dir)
    counts = Counter(ch for line in seed_items for ch in line if _CJK.match(ch))
    alphabet = [ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    pool = build_pool(rng, seed_items, settings.articles)
    entering = select_articles(rng, pool, settings.articles)
    _check_distinct(entering)
    stream = Stream(rng, entering, Editor(rng, alphabet))
    width = max(3, len(str(settings.dumps - 1)))

    dumps: list[Dump] = []
    for d in range(settings.dumps):
        name = f"{d:0{width}d}_{rng.getrandbits(64):016x}.txt"
        if d > 0 and rng.random() < settings.resave_probability:
            previous = dumps[-1]
            dumps.append(Dump(name, previous.lines, previous.final_newline, resaved=True))
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
            weights = [w for _, w in settings.edits_per_dump]
            edits = rng.choices([n for n, _ in settings.edits_per_dump], weights=weights)[0]
            stream.edit(stream.feed[:size], edits, settings)
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
            lines.append(Line(number, article, article.state.shown(), article.pending_edit))
            if not article.history or article.history[-1] != article.state:
                article.history.append(article.state)
            article.pending_edit = None
        dumps.append(Dump(name, lines, rng.random() < 0.5))
    # Ids follow first appearance, top to bottom, so a1 is the first line of
    # the first dump: easier to read next to a system's export.
    seen = 0
    for line in (line for dump in dumps for line in dump.lines):
        if line.article is not None and not line.article.aid:
            seen += 1
            line.article.aid = f"a{seen}"
    return dumps, label(dumps), entering


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
                }
            )
    return labels


def _check_distinct(articles: Sequence[Article]) -> None:
    measured = [(a.key, shingles(a.state.shown()), Likeness.of(a.state)) for a in articles]
    for i, (name_a, shown_a, like_a) in enumerate(measured):
        for name_b, shown_b, like_b in measured[i + 1 :]:
            limit = MAX_PAIR_JACCARD
            if jaccard(shown_a, shown_b) >= limit or like_a.too_alike(like_b, limit, limit):
                raise AssertionError(f"{name_a} and {name_b} are too alike")


def summary(dumps: Sequence[Dump], labels: Iterable[dict[str, object]]) -> str:
    labels = list(labels)
    kinds = Counter(str(row["kind"]) for row in labels)
    edits = Counter(str(row["edit"]) for row in labels if row["edit"])
    reverts = count_reverts(labels)
    noise = sum(1 for d in dumps for line in d.lines if line.article is None)
    articles = len({str(row["article"]) for row in labels})
    parts = [
        f"dumps={len(dumps)}",
        f"resaved={sum(d.resaved for d in dumps)}",
        f"item_lines={len(labels)}",
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
    parser.add_argument("--dumps", type=int, default=60)
    parser.add_argument("--articles", type=int, default=80)
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS, help="seed dumps folder")
    args = parser.parse_args(argv)
    if args.dumps < 1 or args.articles < 2:
        parser.error("need at least 1 dump and 2 articles")
    settings = StreamSettings(dumps=args.dumps, articles=args.articles)
    dumps, labels, articles = generate(args.seed, settings, args.seeds)
    write(args.out, dumps, labels, articles)
    print(summary(dumps, labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
