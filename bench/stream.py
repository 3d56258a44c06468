"""A deterministic stream of dumps at scale, for the performance benchmarks.

    python bench/stream.py --lines 1000                    # a summary of the stream, as JSON
    python bench/stream.py --lines 5000 --out /tmp/dumps   # also write NNNNNN_<hex>.txt files

A listing of ``--listing`` item lines (default 14) is scraped again and again:
each new dump adds one or two new articles at the top (mean 1.25) and drops
the oldest from the bottom, so an article stays about 11 dumps (between 7 and
14); neighbours swap places now and then; and ``--edit-rate`` (1.5%) of the
sightings of an article already shown are small edits (typo, word swap, clause
inserted or dropped, sentence appended, cut moved), after which the edited
text repeats. Category, date and pager lines appear as in the seed dumps.

Article texts are spliced from runs of sentences of the seed dumps
(``shared/seeds``), about 300 to 900 characters, cut at 350 characters plus
"..." when longer, as the seed listing does. The seeds hold only 232
sentences, and a million lines need about 90,000 articles, so splicing alone
would have distinct articles share long runs of text, and so share segment
hashes and simhash bands, far more than real listings do. So 30% of the
letters of a new article are swapped for others drawn with the seeds'
character frequencies, and each carries a unique series number: the texts read
as garbled Chinese, but their length, character classes, punctuation and
feature counts are the seeds', and distinct articles are as unlike as real
ones (simhash at least ~16 bits apart; about 0.3 of 24 winnowed segment hashes
shared with any other article).

Everything is drawn from ``random.Random(seed)`` and the seed files in name
order, so a seed always gives the same bytes; texts are made only when an
article enters the listing, so a million lines cost a few seconds and a few
megabytes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEEDS = REPO_ROOT.parent / "shared" / "seeds"
if not DEFAULT_SEEDS.is_dir():  # a checkout with shared/ inside rather than beside it
    DEFAULT_SEEDS = REPO_ROOT / "shared" / "seeds"
HEADER = "INCOMING TRANSMISSION\n\nLATEST UPDATES\n"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
DUMP_INTERVAL = timedelta(minutes=10)

CUT_AT = 350  # the seed listing shows 350 characters, then "..."
SCRAMBLE = 0.3  # share of letters swapped in a new article (see the module docstring)
_SENTENCE_END = re.compile(r"(?<=[。！？!?])\s*")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_SEED_NOISE = re.compile(r"^(\S{1,12}|\d{4}-\d{2}-\d{2}|\d+( \d+)*)$")

CATEGORIES = ("NLP", "NLP", "CV", "LLM", "AIGC", "RL")
PAGERS = ("1 2 3 4 5 6 7 8 9", "1 2 3", "1 2")  # also noise to the textbook parser
PREFIXES = ("", "", "", "💡 ", "简介 ", "技术分析 ", "背景 ", "【笔记】")
SYNONYMS = (
    ("方法", "方式"),
    ("使用", "采用"),
    ("问题", "难题"),
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
    ("例如", "比如"),
    ("重要", "关键"),
    ("模型", "网络"),
    ("训练", "学习"),
    ("通过", "借助"),
    ("进行", "开展"),
)
CLAUSES = (
    ",这一点在后文还会详细说明",
    ",而且实现起来并不复杂",
    ",具体细节可以参考原论文",
    ",实验结果也验证了这一点",
    ",后续的很多工作都沿用了这个思路",
)
APPENDED = (
    "更多细节可以参考原论文的附录部分。",
    "完整的代码已经整理到文末的仓库链接中。",
    "本文会持续更新,如有新的进展会第一时间补充。",
    "以上就是本文的全部内容,感谢阅读。",
)
SERIES = ("系列第{n}篇", "第{n}期", "笔记{n}", "No.{n}", "读书会第{n}讲")


@dataclass(frozen=True)
class StreamSettings:
    lines: int = 1_000_000  # item lines in the whole stream
    seed: int = 1
    listing: int = 14  # item lines per dump
    edit_rate: float = 0.015  # share of sightings of a shown article that are edits
    two_new: float = 0.25  # share of dumps that bring two new articles instead of one
    swap_rate: float = 0.05  # share of dumps in which two neighbours swap places
    noise_rate: float = 0.08  # chance of a category (and of a date) line before an item
    seeds: Path = DEFAULT_SEEDS


@dataclass(frozen=True)
class Dump:
    seq: int
    name: str
    observed_at: datetime
    data: bytes
    items: int  # item lines
    new: int  # articles first shown in this dump
    edits: int  # lines showing an edited text for the first time


@dataclass
class _Article:
    number: int
    body: str  # the whole text; the listing shows a prefix of it
    cut: bool  # shown as body[:CUT_AT] + "..."

    def shown(self) -> str:
        return self.body[:CUT_AT] + "..." if self.cut else self.body


def is_noise(line: str) -> bool:
    stripped = line.strip()
    return not stripped or (
        len(stripped) <= 24 and not _CJK.search(stripped) and bool(_SEED_NOISE.match(stripped))
    )


def seed_sentences(seed_dir: Path) -> list[list[str]]:
    """Per distinct seed item, its sentences of 12 characters or more (a cut one dropped)."""
    files = sorted(seed_dir.glob("*.txt"))
    if not files:
        raise SystemExit(f"stream: no seed dumps (*.txt) in {seed_dir}")
    seen: dict[str, None] = {}
    for path in files:
        for line in path.read_text(encoding="utf-8").split("\n")[3:]:
            line = line.rstrip("\r")
            if not is_noise(line):
                seen.setdefault(line, None)
    out = []
    for item in seen:
        cut = item.endswith("...")
        body = item[:-3] if cut else item
        parts = [p for p in _SENTENCE_END.split(body) if p]
        if cut and parts and not re.search(r"[。！？!?]$", parts[-1]):
            parts.pop()
        parts = [p for p in parts if len(p) >= 12]
        if parts:
            out.append(parts)
    return out


class TextMaker:
    """Distinct article bodies from the seed sentences, as unlike each other as real ones."""

    def __init__(self, rng: random.Random, sentences: Sequence[Sequence[str]]) -> None:
        self.rng = rng
        self.sources = [list(s) for s in sentences]
        chars = [ch for s in sentences for x in s for ch in x]
        # Replacement characters are drawn with the seeds' frequencies, so the
        # text keeps the character statistics the fingerprints see.
        self.cjk = [ch for ch in chars if _CJK.match(ch)]
        self.latin = [ch for ch in chars if ch.isascii() and ch.isalpha()]
        self.alphabet = sorted(set(self.cjk))

    def scramble(self, text: str) -> str:
        """Swap SCRAMBLE of the letters: no two articles share long runs of text."""
        rng = self.rng
        out = list(text)
        for i in rng.sample(range(len(out)), int(len(out) * SCRAMBLE)):
            ch = out[i]
            if ch >= "\u4e00" and ch <= "\u9fff":
                out[i] = rng.choice(self.cjk)
            elif ch.isascii() and ch.isalpha():
                out[i] = rng.choice(self.latin)
        return "".join(out)

    def body(self, number: int) -> str:
        rng = self.rng
        target = rng.randint(300, 900)
        picked = rng.sample(range(len(self.sources)), rng.randint(2, 4))
        sentences: list[str] = []
        while sum(map(len, sentences)) < target:
            source = self.sources[picked.pop() if picked else rng.randrange(len(self.sources))]
            start = rng.randrange(len(source))
            sentences += source[start : start + rng.randint(1, 3)]
        series = rng.choice(SERIES).format(n=number)
        sentences.insert(min(1, len(sentences)), f"({series})")
        text = rng.choice(PREFIXES) + rng.choice((" ", "")).join(sentences)
        # What lies past the cut is never shown; keep a margin for edits only.
        return self.scramble(text[: CUT_AT + 120])

    def edit(self, body: str, cut: bool) -> tuple[str, bool]:
        """A small edit of what the listing shows: (new body, cut)."""
        rng = self.rng
        visible = min(len(body), CUT_AT) if cut else len(body)
        kind = rng.choice(("typo", "typo", "word", "clause", "drop", "append", "recut"))
        if kind == "append" and not cut:
            return body + rng.choice(APPENDED), cut
        if kind == "recut" and cut:
            return body[: max(120, visible - rng.randint(10, 60))], True
        if kind == "word":
            for a, b in rng.sample(SYNONYMS, len(SYNONYMS)):
                i = body.find(a, 0, visible)
                if i >= 0:
                    return body[:i] + b + body[i + len(a) :], cut
        if kind in ("clause", "drop"):
            ends = [m.start() for m in re.finditer(r"[,，。]", body[:visible])]
            if len(ends) >= 2:
                i = rng.choice(ends[:-1])
                if kind == "clause":
                    return body[:i] + rng.choice(CLAUSES) + body[i:], cut
                j = ends[ends.index(i) + 1]
                return body[:i] + body[j:], cut
        spots = [i for i in range(visible) if _CJK.match(body[i])] or list(range(visible))
        i = rng.choice(spots)
        return body[:i] + rng.choice(self.alphabet) + body[i + 1 :], cut


@dataclass
class _State:
    articles: list[_Article] = field(default_factory=list)
    made: int = 0


def dumps(settings: StreamSettings | None = None) -> Iterator[Dump]:
    """The dumps of the stream, lazily, until ``settings.lines`` item lines are out."""
    s = settings or StreamSettings()
    rng = random.Random(s.seed)
    maker = TextMaker(rng, seed_sentences(s.seeds))
    state = _State()

    def new_article() -> _Article:
        state.made += 1
        body = maker.body(state.made)
        return _Article(state.made, body, len(body) > CUT_AT + 3)

    # The listing as the first dump finds it: full, and all new.
    listing = [new_article() for _ in range(s.listing)]
    fresh = {a.number for a in listing}
    written = 0
    seq = 0
    while written < s.lines:
        edits = 0
        if seq > 0:
            arriving = 2 if rng.random() < s.two_new else 1
            listing = [new_article() for _ in range(arriving)] + listing
            fresh = {a.number for a in listing[:arriving]}
            del listing[s.listing :]
            if rng.random() < s.swap_rate and len(listing) > 2:
                i = rng.randrange(len(listing) - 1)
                listing[i], listing[i + 1] = listing[i + 1], listing[i]
            for article in listing:
                if article.number not in fresh and rng.random() < s.edit_rate:
                    article.body, article.cut = maker.edit(article.body, article.cut)
                    edits += 1
        shown = listing[: s.lines - written]
        lines: list[str] = []
        for article in shown:
            if rng.random() < s.noise_rate:
                lines.append(rng.choice(CATEGORIES))
            if rng.random() < s.noise_rate:
                lines.append((EPOCH + DUMP_INTERVAL * seq).date().isoformat())
            lines.append(article.shown())
        if rng.random() < 0.3:
            lines.append(rng.choice(PAGERS))
        data = (HEADER + "\n".join(lines) + "\n").encode("utf-8")
        yield Dump(
            seq=seq,
            name=f"{seq:06d}_{rng.getrandbits(64):016x}.txt",
            observed_at=EPOCH + DUMP_INTERVAL * seq,
            data=data,
            items=len(shown),
            new=sum(1 for a in shown if a.number in fresh),
            edits=edits,
        )
        written += len(shown)
        seq += 1


def write_dump(folder: Path, dump: Dump, *, atomic: bool = True) -> Path:
    """Write one dump as a file dated at its observed time; atomic: via a .part rename."""
    target = folder / dump.name
    part = folder / f"{dump.name}.part" if atomic else target
    part.write_bytes(dump.data)
    stamp = dump.observed_at.timestamp()
    os.utime(part, (stamp, stamp))
    if atomic:
        os.replace(part, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the benchmark dump stream.")
    parser.add_argument("--lines", type=int, default=10_000, help="item lines in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=Path, default=DEFAULT_SEEDS, help="seed dump folder")
    parser.add_argument("--edit-rate", type=float, default=StreamSettings.edit_rate)
    parser.add_argument("--out", type=Path, help="write the dumps as files into this folder")
    args = parser.parse_args(argv)
    settings = StreamSettings(
        lines=args.lines, seed=args.seed, seeds=args.seeds, edit_rate=args.edit_rate
    )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    totals = {"dumps": 0, "items": 0, "new": 0, "edits": 0, "bytes": 0}
    for dump in dumps(settings):
        if args.out:
            write_dump(args.out, dump)
        totals["dumps"] += 1
        totals["items"] += dump.items
        totals["new"] += dump.new
        totals["edits"] += dump.edits
        totals["bytes"] += len(dump.data)
    print(json.dumps(totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
