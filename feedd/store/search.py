"""Full-text search over articles' current texts, for Chinese too.

What is indexed: the text of every revision, by trigrams of characters, which
need no word segmentation (Chinese has no spaces):

- SQLite: the FTS5 table ``revisions_fts`` (``tokenize='trigram'``, which
  folds case), contentless (rowid = revision id), holding each text followed
  by ``SENTINEL``; ``revisions_fts_vocab`` lists its trigrams. ``IngestTx``
  writes it with every write of a revision's text, in the dump's transaction.
- PostgreSQL: a GIN index ``gin_trgm_ops`` (pg_trgm) on ``revisions.text``,
  and a GIN index on ``feedd_grams(text)``, the text's characters and pairs of
  characters, lowercased (for words of one or two characters, which have no
  trigram); both kept by PostgreSQL itself.

Migration 0004 creates the trigram indexes, 0005 the index of pairs, and each
fills its own from the stored history. Which revision is current is decided
at query time (``articles.current_revision``), so restoring an old revision
needs no index write.

What a query means: its whitespace-separated terms must all occur, as
substrings, in the article's current text (case-insensitively for Latin
letters).

- A term of three characters or more is a phrase of trigrams: an index lookup.
- A shorter term ("模型", two characters, is a common Chinese word) has no
  trigram of its own, but on SQLite every occurrence begins one (that is what
  the sentinel after each text is for): the trigrams that start with it are
  read from the vocabulary, and the texts holding any of them are the
  candidates, checked with LIKE. When those are many (a common word), a LIKE
  scan of the current texts in listing order fills a page sooner, and is used
  instead. On PostgreSQL the index of pairs finds the candidates, checked
  with LIKE.
- On PostgreSQL a term of any length that ANALYZE counted in more than
  DENSE_DOCS texts (its character, or each of its pairs: ``estimated_docs``)
  is such a scan too, and every search is planned for its own words (a
  generic plan read the whole trigram index for a two-character word).
  The index's hits are read whole, then sorted: a rare word costs its hits.

This module is pure: it turns a query into terms and the engines' syntax.
"""

from __future__ import annotations

from dataclasses import dataclass

from feedd.errors import InvalidQuery

# Shorter terms have no trigram: FTS5 matches nothing for them and pg_trgm
# extracts nothing (see above).
MIN_INDEXED_CHARS = 3
# More terms than this is not a search a person types; it also keeps the SQL
# expression far from SQLite's depth limit (1,000).
MAX_TERMS = 16
# Appended to every text in the SQLite index: each occurrence of a term of one
# or two characters then begins a trigram, even at the end of the text.
# Migration 0004 writes it as char(65535, 65535).
SENTINEL = "\uffff\uffff"
# A short term whose trigrams are more than this many is looked up by a scan,
# as is one whose trigrams are in more than DENSE_DOCS texts (SQLite), or any
# term ANALYZE counted in more than DENSE_DOCS texts (PostgreSQL): such a term
# is common, and a scan in listing order finds a page of it within a few
# hundred texts, while the index's hits would be thousands to sort (about
# 7 µs each on PostgreSQL). bench/search.py measured both paths.
MAX_PREFIX_TERMS = 256
DENSE_DOCS = 5000


@dataclass(frozen=True)
class Terms:
    indexed: tuple[str, ...]  # three characters or more: a phrase of trigrams
    short: tuple[str, ...]  # one or two characters


def parse(query: str) -> Terms | None:
    """The terms of a query; None when it can match nothing (no terms, or a
    character no stored text holds: NUL, a lone surrogate).

    Raises InvalidQuery for more than MAX_TERMS distinct terms.
    """
    if "\x00" in query:  # dumps holding NUL are rejected, so no text has one
        return None
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no decoded text holds one
        return None
    terms = list(dict.fromkeys(query.split()))
    if not terms:
        return None
    if len(terms) > MAX_TERMS:
        raise InvalidQuery(f"a search takes at most {MAX_TERMS} words; this one has {len(terms)}")
    return Terms(
        # A term holding the sentinel's character could match across a text's end.
        indexed=tuple(t for t in terms if len(t) >= MIN_INDEXED_CHARS and "\uffff" not in t),
        short=tuple(t for t in terms if len(t) < MIN_INDEXED_CHARS or "\uffff" in t),
    )


def rarest_grams(term: str) -> tuple[str, ...]:
    """The elements of feedd_grams (PostgreSQL) whose counts bound how many
    texts hold ``term``: its one character, or its pairs of characters,
    lowercased (Python's lowercasing, not the database's: this only steers
    the plan, never what a search finds)."""
    low = term.lower()
    if len(low) < 2:
        return (low,)
    return tuple(low[i : i + 2] for i in range(len(low) - 1))


def estimated_docs(term: str, docs: dict[str, float]) -> float:
    """At most how many texts hold ``term``, from the counts of the commonest
    grams (``docs``; a gram missing from it is rarer than all of them: 0).
    A bound: the pairs of a rare word can each be common."""
    return min(docs.get(gram, 0.0) for gram in rarest_grams(term))


def prefix_range(term: str) -> tuple[str, str] | None:
    """The range of index terms (trigrams, case-folded) that begin with a
    short ``term``: [low, high). None when the index cannot be asked: a letter
    whose case FTS5 may fold otherwise than here, or the sentinel's character."""
    if len(term) >= MIN_INDEXED_CHARS or "\uffff" in term:
        return None
    if not all(c.isascii() or c.lower() == c == c.upper() for c in term):
        return None
    low = term.lower()  # FTS5 folds ASCII case like this
    after = ord(low[-1]) + 1
    if after == 0xD800:  # surrogates are no characters: skip them
        after = 0xE000
    if after > 0x10FFFF:
        return None
    return low, low[:-1] + chr(after)


def fts5_match(phrases: tuple[str, ...], alternatives: list[list[str]]) -> str:
    """An FTS5 query: every phrase, and one trigram of each list of
    alternatives. Each is quoted, so nothing in it is syntax."""

    def quoted(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    parts = [quoted(p) for p in phrases]
    parts += ["(" + " OR ".join(quoted(t) for t in group) + ")" for group in alternatives]
    return " AND ".join(parts)


def like_pattern(term: str) -> str:
    r"""``%term%`` with LIKE's wildcards escaped, for ``ESCAPE '\'``."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def unsupported_message(detail: object) -> str:
    import sqlite3

    return (
        f"this SQLite ({sqlite3.sqlite_version}) cannot do full-text search: it needs FTS5 "
        f"with the trigram tokenizer (SQLite 3.34 or later, built with FTS5): {detail}; "
        "use a Python whose sqlite3 has it, or PostgreSQL"
    )
