"""The dump parser: formats it must tolerate, files it must reject, any bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedd.core.parse import parse_dump
from feedd.errors import InvalidDump
from tests.support import dump_bytes, seed_files

ITEM = "简介 作为一个自编码器,VQVAE的一个明显特征是它编码出的编码向量是离散的。" * 3


def test_all_seeds_parse_with_noise_lines_set_apart() -> None:
    parsed = [parse_dump(f.read_bytes()) for f in seed_files()]
    assert [len(p.items) for p in parsed] == [12, 12, 12, 12, 12]
    noise = [(n.text, n.kind) for p in parsed for n in p.noise]
    assert noise == [("1 2", "pagination"), ("NLP", "category"), ("2026-01-11", "date")]
    item = parsed[3].items[-1]
    assert (item.line, item.category, item.date) == (17, "NLP", "2026-01-11")
    assert all(i.category is None for i in parsed[3].items[:-1])


@pytest.mark.parametrize(
    "data",
    [
        dump_bytes(ITEM).replace(b"\n", b"\r\n"),
        b"\xef\xbb\xbf" + dump_bytes(ITEM),
        dump_bytes(ITEM + "   \t"),
        dump_bytes(ITEM, final_newline=False),
        dump_bytes(ITEM).replace(b"LATEST UPDATES", b"LATEST UPDATES  "),
    ],
    ids=["crlf", "bom", "trailing-spaces", "no-final-newline", "header-trailing-space"],
)
def test_tolerated_variants(data: bytes) -> None:
    parsed = parse_dump(data)
    assert [(i.line, i.text.rstrip()) for i in parsed.items] == [(4, ITEM)]


def test_gb18030_is_detected_and_decoded() -> None:
    text = dump_bytes(ITEM).decode()
    parsed = parse_dump(text.encode("gb18030"))
    assert parsed.encoding == "gb18030"
    assert parsed.items[0].text == ITEM


def test_utf16_with_bom_is_decoded() -> None:
    parsed = parse_dump(dump_bytes(ITEM).decode().encode("utf-16"))
    assert parsed.encoding == "utf-16" and parsed.items[0].text == ITEM


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "binary"),
        (dump_bytes(ITEM) + b"\x00\x00", "NUL"),
        (b"hello world\nthis is not a dump\n", "no dump header"),
        (dump_bytes(ITEM).replace("编码".encode(), b"\xff\xfe\xfd"), "cannot decode"),
        ("INCOMING TRANSMISSION\n\nLATEST UPDATES\nÀÉÎ".encode("latin-1"), "cannot decode"),
        (
            dump_bytes("정부는 반도체 산업을 지원하기 위해 새로운 세제 혜택을 마련하겠다고 말했다.")
            .decode()
            .encode("euc_kr"),
            "looks like Korean (EUC-KR/CP949), not a Chinese listing; convert it to UTF-8",
        ),
    ],
    ids=["empty", "blank", "png", "nul", "no-header", "invalid-utf8", "latin1", "euc-kr"],
)
def test_rejections_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidDump) as excinfo:
        parse_dump(data)
    assert reason in excinfo.value.reason


def test_header_only_is_a_dump_without_items() -> None:
    parsed = parse_dump(b"INCOMING TRANSMISSION\n\nLATEST UPDATES\n")
    assert parsed.items == ()


def test_control_characters_stay_in_the_item() -> None:
    parsed = parse_dump(dump_bytes(ITEM + "\x1b[31m\x0b" + ITEM))
    assert parsed.items[0].text == ITEM + "\x1b[31m\x0b" + ITEM


def test_line_separators_inside_items_do_not_shift_line_numbers() -> None:
    parsed = parse_dump(dump_bytes(ITEM + "\u2028" + ITEM, ITEM + "\x1c" + ITEM))
    assert [i.line for i in parsed.items] == [4, 5]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_or_are_rejected_with_a_reason(data: bytes) -> None:
    try:
        parsed = parse_dump(data)
    except InvalidDump as exc:
        assert exc.reason
    else:
        assert all(i.line >= 1 for i in parsed.items)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(min_size=1, max_size=200).filter(lambda s: not {"\n", "\x00"} & set(s)), max_size=20
    )
)
def test_any_text_after_a_header_parses(lines: list[str]) -> None:
    parsed = parse_dump(dump_bytes(*lines))
    numbers = [i.line for i in parsed.items] + [n.line for n in parsed.noise]
    assert len(numbers) == len(set(numbers))
    assert all(4 <= n <= 3 + len(lines) for n in numbers)
