"""Decoding by plausibility: Chinese reads as before, other languages are refused by name.

GB18030 decodes almost any bytes. Korean EUC-KR in particular puts its syllables
where GB2312 keeps its most common hanzi, and was published as mojibake.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from feedd.app import App, build
from feedd.config import load_config
from feedd.core.encoding import decode
from feedd.core.parse import parse_dump
from feedd.errors import InvalidDump
from tests.support import dump_bytes, seed_files

# Real sentences in the style of a listing: news and software updates.
KOREAN = [
    "서울시는 오늘 내년도 예산안을 발표하고, 대중교통 요금을 동결하기로 했다고 밝혔다.",
    "정부는 반도체 산업을 지원하기 위해 새로운 세제 혜택을 마련하겠다고 말했습니다.",
    "이번 업데이트에서는 검색 속도가 크게 개선되었으며, 사용자 인터페이스도 새롭게 바뀌었다.",
    "기상청에 따르면 이번 주말에는 전국에 비가 내리고 기온이 크게 떨어질 것으로 예상된다.",
    "파이썬은 배우기 쉽고 강력한 프로그래밍 언어로, 많은 개발자들이 데이터 분석에 사용하고 있다.",
    "새 학기를 맞아 학생들과 선생님들이 학교 운동장에 모여 입학식을 열었다.",
]
JAPANESE = [
    "東京都は今日、来年度の予算案を発表し、公共交通機関の運賃を据え置くことを明らかにした。",
    "気象庁によると、今週末は全国的に雨が降り、気温が大きく下がる見込みです。",
    "今回のアップデートでは検索の速度が大幅に改善され、ユーザーインターフェースも新しくなりました。",
    "新学期を迎え、生徒と先生たちが校庭に集まって入学式が行われた。",
]
WESTERN = [
    "La mairie a présenté ce matin son budget pour l'année prochaine : les tarifs seront gelés.",
    "Die Bundesregierung kündigte an, die Förderung für erneuerbare Energien zu erhöhen.",
    "El Ayuntamiento anunció que la próxima semana comenzarán las obras en la estación.",
    "Le café crème coûte désormais 2,50 € ; les clients âgés bénéficient d'une réduction.",
]


def _dump(lines: list[str], encoding: str) -> bytes:
    return dump_bytes(*lines).decode("utf-8").encode(encoding)


CASES = [
    ("Korean (EUC-KR/CP949)", "euc_kr", KOREAN[:1]),
    ("Korean (EUC-KR/CP949)", "euc_kr", KOREAN),
    ("Korean (EUC-KR/CP949)", "cp949", KOREAN[1:2]),
    ("Korean (EUC-KR/CP949)", "cp949", KOREAN + ["똠방각하 펲시콜라 뷁"]),  # UHC-only syllables
    ("Japanese (Shift-JIS)", "shift_jis", JAPANESE[:1]),
    ("Japanese (Shift-JIS)", "cp932", JAPANESE),
    ("Japanese (EUC-JP)", "euc_jp", JAPANESE[1:2]),
    ("Japanese (EUC-JP)", "euc_jp", JAPANESE),
    ("Western European text (Windows-1252/Latin-1)", "cp1252", WESTERN[:1]),
    ("Western European text (Windows-1252/Latin-1)", "cp1252", WESTERN),
    ("Western European text (Windows-1252/Latin-1)", "latin-1", WESTERN[:3]),
]


@pytest.mark.parametrize(
    ("language", "encoding", "lines"),
    CASES,
    ids=[f"{enc}-{len(lines)}" for _, enc, lines in CASES],
)
def test_other_languages_are_refused_by_name(
    language: str, encoding: str, lines: list[str]
) -> None:
    data = _dump(lines, encoding)
    with pytest.raises(InvalidDump) as excinfo:
        decode(data)
    assert excinfo.value.reason.startswith("cannot decode: not UTF-8 (")
    assert excinfo.value.reason.endswith(
        f"; it looks like {language}, not a Chinese listing; convert it to UTF-8"
    )


def test_korean_reads_as_plausible_gb18030_and_is_still_refused() -> None:
    """The bug: every Korean syllable of EUC-KR is a common GB2312 hanzi."""
    data = _dump(KOREAN, "euc_kr")
    mojibake = data.decode("gb18030")  # strict: no error
    assert "辑匡矫绰" in mojibake
    with pytest.raises(InvalidDump, match=r"looks like Korean \(EUC-KR/CP949\)"):
        parse_dump(data)


def test_the_same_languages_in_utf8_are_read_as_they_are() -> None:
    for lines in (KOREAN, JAPANESE, WESTERN):
        parsed = parse_dump(dump_bytes(*lines))
        assert parsed.encoding == "utf-8"
        assert [i.text for i in parsed.items] == lines


def _without_encoding(data: bytes) -> object:
    parsed = parse_dump(data)
    return replace(parsed, encoding="")


@pytest.mark.parametrize("seed", seed_files(), ids=lambda p: p.name[:3])
def test_chinese_seeds_read_the_same_in_every_encoding(seed: Path) -> None:
    raw = seed.read_bytes()
    text = raw.decode("utf-8")
    copies = [
        ("gb18030", text.encode("gb18030")),
        ("utf-16", text.encode("utf-16")),
        ("utf-16", codecs.BOM_UTF16_BE + text.encode("utf-16-be")),
        ("utf-8-sig", codecs.BOM_UTF8 + raw),
    ]
    expected = _without_encoding(raw)
    for encoding, data in copies:
        assert parse_dump(data).encoding == encoding
        assert _without_encoding(data) == expected


@pytest.mark.parametrize(
    "text",
    [
        # Both read as Hangul in CP949 (every hanzi is on a GB2312 row that KS X 1001
        # fills with syllables), but not as common Korean: Chinese wins, as before.
        "参考链接 * W3草案：http://www.w3.org/TR/page-visibility/",
        "哈" * 300,
        "简介 作为一个自编码器,VQVAE的一个明显特征是它编码出的编码向量是离散的。",
    ],
    ids=["short-all-hangul-rows", "one-hanzi-300-times", "item"],
)
def test_chinese_that_cp949_could_also_decode_stays_chinese(text: str) -> None:
    data = dump_bytes(text).decode("utf-8").encode("gb18030")
    parsed = parse_dump(data)
    assert (parsed.encoding, parsed.items[0].text) == ("gb18030", text)


def test_a_60_mb_gb18030_dump_is_judged_whole() -> None:
    """Plausibility counts every character (numpy), not a sample: mojibake after
    60 MB of good Chinese is still refused."""
    good = dump_bytes(*[i.text for f in seed_files() for i in parse_dump(f.read_bytes()).items])
    body = good.decode("utf-8").encode("gb18030")
    repeat = 60 * 2**20 // len(body)
    text, encoding = decode(body * repeat)
    assert encoding == "gb18030" and len(text) > 20 * 2**20
    latin1 = "àé".encode("latin-1") * (len(body) * repeat // 10)  # 10% of the file
    with pytest.raises(InvalidDump, match="GB18030 gives implausible text"):
        decode(body * repeat + latin1)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = build(
        load_config(
            None,
            env={},
            overrides={
                "database.url": f"sqlite:///{tmp_path / 'feedd.db'}",
                "feed.output_dir": str(tmp_path / "public"),
            },
        )
    )
    yield app
    app.close()


def test_a_korean_dump_file_is_rejected_with_its_reason_and_publishes_nothing(
    app: App, tmp_path: Path
) -> None:
    korean = tmp_path / "000_korean.txt"
    korean.write_bytes(_dump(KOREAN, "cp949"))
    seed = tmp_path / "001_seed.txt"
    seed.write_bytes(seed_files()[0].read_text(encoding="utf-8").encode("gb18030"))
    rejected, ingested = app.ingester.ingest_paths([korean, seed])
    assert rejected.status == "rejected"
    assert "looks like Korean (EUC-KR/CP949), not a Chinese listing" in (rejected.reason or "")
    assert (ingested.status, ingested.encoding, ingested.new) == ("ingested", "gb18030", 12)
    [row] = app.store.dumps(status="rejected")
    assert row.name == korean.name and row.error == rejected.reason
    assert len(list(app.store.export())) == 12
