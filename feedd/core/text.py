"""Text normalisation shared by fingerprinting, matching and titles.

Three forms of an item's text exist:

* the *raw* text, stored exactly as read;
* the *normalised* text (NFKC, whitespace collapsed, trailing ellipsis dropped),
  which decides whether two sightings show "the same text";
* the *compact* text (normalised, lower-cased, letters and digits only), which
  feeds the fingerprints and the verification shingles, so that punctuation
  and spacing never move a fingerprint.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Entries of each per-text cache of the core (text keys, shingles, segments,
# verification forms). A listing shows the same few hundred texts in dump
# after dump, so a few thousand entries catch nearly every hit; each cached
# text costs ~20 KB over all the caches, and at 8,192 entries they held
# ~140 MB, most of a backfill's peak RSS (docs/performance.md).
CACHED_TEXTS = 2048

_WHITESPACE = re.compile(r"\s+")
# After NFKC, "…" has become "...". A listing cuts text at arbitrary points, so
# the ellipsis marks the cut, not content, and trailing dots vanish with it.
_TRAILING_CUT = re.compile(r"(?:\s*\.{2,})+\s*$")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def normalize(text: str) -> str:
    """NFKC, one space for any whitespace run, trailing '...'/'…' removed."""
    # str.split() and rstrip() do what the regexes _WHITESPACE and
    # _TRAILING_CUT say, several times faster; this runs on every line.
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    while True:
        cut = text.rstrip(".")
        if len(text) - len(cut) < 2:
            return text
        text = cut.rstrip()


def was_cut(text: str) -> bool:
    """True when the listing cut this text short (it ends with an ellipsis)."""
    # Only the end matters; NFKC of a long text is the costly part.
    return bool(_TRAILING_CUT.search(unicodedata.normalize("NFKC", text.rstrip()[-16:])))


_NOT_ALNUM = re.compile(r"[\W_]+")


def compact(normalized: str) -> str:
    """Lower-cased letters, digits and CJK characters only."""
    return _NOT_ALNUM.sub("", normalized.lower())


def hash64(text: str) -> int:
    """A stable signed 64-bit hash (fits a BIGINT column on every engine)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def to_signed64(value: int) -> int:
    """Map an unsigned 64-bit fingerprint onto the signed range of BIGINT."""
    return value - (1 << 64) if value >= (1 << 63) else value


def to_unsigned64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def hex64(value: int) -> str:
    return f"{to_unsigned64(value):016x}"


def xml_safe(text: str) -> str:
    """Drop characters that XML 1.0 cannot carry (controls, surrogates, U+FFFE/F)."""
    return _XML_INVALID.sub("", text)
