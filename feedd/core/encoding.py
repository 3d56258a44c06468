"""Decode a dump's bytes, or say why they are not a Chinese listing.

UTF-8, and UTF-16 or UTF-8 with a byte order mark, are read as they are. Other
bytes are tried as GB18030, which Chinese sources often publish. GB18030 decodes
almost any byte string, so its reading is kept only when it is plausibly Chinese
and the same bytes do not read better as Korean. Anything else is refused, with
the language the bytes look like when one fits: feedd publishes Chinese
listings, and a guessed reading of anything else would be published as mojibake.

Every judgement is a share of characters over the whole text, counted with one
numpy pass per reading: a 64 MB dump is judged in about a second
(docs/performance.md, "Decoding").
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from feedd.errors import InvalidDump

Histogram = npt.NDArray[np.int64]  # occurrences of each UTF-16 code unit

# Thresholds, measured on the 2,000 Chinese dumps of shared/corpora (jstutorial and
# iosweekly) encoded as GB18030, the seeds, and Korean, Japanese and Western
# sentences (tests/test_encoding.py); the margins are in docs/performance.md.
CHINESE_CJK_SHARE = 0.9  # hanzi and CJK punctuation among non-ASCII characters
CHINESE_COMMON_SHARE = 0.95  # GB2312 level-1 hanzi among hanzi (seeds: 99.7-100%)
KOREAN_MIN_SYLLABLES = 10  # fewer is too little to tell Korean from Chinese
KOREAN_HANGUL_SHARE = 0.8  # Hangul syllables among CJK letters (Korean: 0.99-1.0)
# Korean's most frequent syllables among its syllables: 0.20-0.46 in Korean
# sentences, at most 0.04 in Chinese GB18030 bytes read as CP949 (median 0.012).
KOREAN_COMMON_SHARE = 0.12
JAPANESE_MIN_KANA = 10
JAPANESE_KANA_SHARE = 0.2  # kana among CJK letters: 0.40-0.76 in Japanese, 0 in Chinese
WESTERN_ACCENTED_SHARE = 0.3  # accented among Latin letters: 0.03-0.15 in Western text
WESTERN_ISOLATED_SHARE = 0.6  # high bytes with no high byte beside them (GB18030: ~0)

# The 26 most frequent syllables of Korean text, in charset-normalizer's frequency
# table (charset_normalizer/constant.py, "Korean").
_KOREAN_COMMON = "이다에의는로하을가고지서한은기으년대사시를리도인스일"

_CHUNK = 1 << 20  # characters encoded at a time: bounds the temporary copies


@dataclass(frozen=True)
class _Language:
    label: str  # as it appears in a refusal: "Korean (EUC-KR/CP949)"
    codec: str


_KOREAN = _Language("Korean (EUC-KR/CP949)", "cp949")
_JAPANESE_SJIS = _Language("Japanese (Shift-JIS)", "cp932")
_JAPANESE_EUC = _Language("Japanese (EUC-JP)", "euc_jp")
_WESTERN = _Language("Western European text (Windows-1252/Latin-1)", "cp1252")


def decode(data: bytes) -> tuple[str, str]:
    """Return (text, encoding) or raise InvalidDump. Never guesses silently."""
    if not data:
        raise InvalidDump("empty file")
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[3:], "utf-8"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = _strict(data, "utf-16")
        if "\x00" in text:
            # No text dump holds NUL, and PostgreSQL text columns cannot store it.
            raise InvalidDump("binary data: the text contains NUL characters")
        return text, "utf-16"
    if b"\x00" in data:
        raise InvalidDump("binary data: the file contains NUL bytes")
    if data.startswith(b"\x89PNG") or data.startswith(b"%PDF") or data.startswith(b"PK\x03\x04"):
        raise InvalidDump("binary data: the file starts with a binary file signature")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        not_utf8 = f"cannot decode: not UTF-8 ({utf8_error.reason} at byte {utf8_error.start})"
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        looks_like, gb18030 = _looks_like(data), "not GB18030"
    else:
        if reads_as_chinese(histogram(text)):
            # Korean EUC-KR puts its syllables where GB2312 has its level-1 hanzi,
            # so Korean passes as Chinese; no other language seen here does.
            if not _reads_as(data, _KOREAN):
                return text, "gb18030"
            looks_like = _KOREAN
        else:
            looks_like = _looks_like(data)
        gb18030 = "GB18030 gives implausible text"
    if looks_like is None:
        raise InvalidDump(f"{not_utf8} and {gb18030}")
    raise InvalidDump(
        f"{not_utf8}; it looks like {looks_like.label}, not a Chinese listing; convert it to UTF-8"
    )


def _strict(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidDump(
            f"cannot decode as {encoding}: {exc.reason} at byte {exc.start}"
        ) from None


def histogram(text: str) -> Histogram:
    """How often each UTF-16 code unit occurs: a character outside the BMP counts
    once among the high surrogates and once among the low ones."""
    counts = np.zeros(0x10000, dtype=np.int64)
    for start in range(0, len(text), _CHUNK):
        units = text[start : start + _CHUNK].encode("utf-16-le", "surrogatepass")
        counts += np.bincount(np.frombuffer(units, dtype="<u2"), minlength=0x10000)
    return counts


def _count(counts: Histogram, *ranges: tuple[int, int]) -> int:
    """Characters in the inclusive code point ranges."""
    return sum(int(counts[low : high + 1].sum()) for low, high in ranges)


_HANZI = (0x4E00, 0x9FFF)
_CJK_PUNCTUATION = ((0x3000, 0x303F), (0xFF00, 0xFFEF))
_HANGUL = (0xAC00, 0xD7A3)
_KANA = (0x3040, 0x30FF)
_IDEOGRAPHS = ((0x3400, 0x4DBF), _HANZI, (0xF900, 0xFAFF))
_JAMO = ((0x1100, 0x11FF), (0x3130, 0x318F))
_LOW_SURROGATES = (0xDC00, 0xDFFF)


def _mask(chars: str) -> npt.NDArray[np.bool_]:
    mask = np.zeros(0x10000, dtype=np.bool_)
    mask[[ord(ch) for ch in chars]] = True
    return mask


def _gb2312_level1() -> str:
    """GB2312 level 1: lead bytes B0-D7, the 3,755 most frequent hanzi."""
    out = []
    for lead in range(0xB0, 0xD8):
        for trail in range(0xA1, 0xFF):
            try:
                out.append(bytes([lead, trail]).decode("gb2312"))
            except UnicodeDecodeError:
                pass  # D7FA-D7FE are unassigned
    return "".join(out)


_LEVEL1 = _mask(_gb2312_level1())
_KOREAN_COMMON_MASK = _mask(_KOREAN_COMMON)


def reads_as_chinese(counts: Histogram) -> bool:
    """Does a GB18030 reading read as Chinese rather than as mojibake?

    Almost any run of high bytes decodes as *some* hanzi. Real Chinese text,
    though, is made of common characters: GB2312 level 1 covers over 99% of it,
    while Latin-1 or random bytes land there well under 90% of the time.
    """
    non_ascii = _count(counts, (0x80, 0xFFFF)) - _count(counts, _LOW_SURROGATES)
    if not non_ascii:
        return True
    hanzi = _count(counts, _HANZI)
    cjk = hanzi + _count(counts, *_CJK_PUNCTUATION)
    if cjk / non_ascii < CHINESE_CJK_SHARE or not hanzi:
        return False
    return int(counts[_LEVEL1].sum()) / hanzi >= CHINESE_COMMON_SHARE


def reads_as_korean(counts: Histogram) -> bool:
    hangul = _count(counts, _HANGUL)
    if hangul < KOREAN_MIN_SYLLABLES:
        return False
    letters = hangul + _count(counts, *_IDEOGRAPHS, _KANA, *_JAMO)
    common = int(counts[_KOREAN_COMMON_MASK].sum())
    return hangul / letters >= KOREAN_HANGUL_SHARE and common / hangul >= KOREAN_COMMON_SHARE


def reads_as_japanese(counts: Histogram) -> bool:
    kana = _count(counts, _KANA)
    if kana < JAPANESE_MIN_KANA:
        return False
    letters = kana + _count(counts, *_IDEOGRAPHS, _HANGUL, *_JAMO)
    return kana / letters >= JAPANESE_KANA_SHARE


def reads_as_western(data: bytes, counts: Histogram) -> bool:
    """Latin text with accents: few accented letters, each alone among ASCII."""
    accented = _count(counts, (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x24F))
    if not accented:
        return False
    latin = accented + _count(counts, (0x41, 0x5A), (0x61, 0x7A))
    high = np.frombuffer(data, dtype=np.uint8) >= 0x80
    beside = np.zeros_like(high)
    beside[1:] |= high[:-1]
    beside[:-1] |= high[1:]
    isolated = int((high & ~beside).sum()) / int(high.sum())
    return accented / latin <= WESTERN_ACCENTED_SHARE and isolated >= WESTERN_ISOLATED_SHARE


def _reads_as(data: bytes, language: _Language) -> bool:
    try:
        text = data.decode(language.codec)
    except UnicodeDecodeError:
        return False
    counts = histogram(text)
    if language is _KOREAN:
        return reads_as_korean(counts)
    if language is _WESTERN:
        return reads_as_western(data, counts)
    return reads_as_japanese(counts)


def _looks_like(data: bytes) -> _Language | None:
    """The language that bytes which are not Chinese look like, if one fits."""
    for language in (_KOREAN, _JAPANESE_SJIS, _JAPANESE_EUC, _WESTERN):
        if _reads_as(data, language):
            return language
    return None
