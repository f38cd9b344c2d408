# ruff: noqa: RUF001  (Chinese text is written with full-width punctuation)
"""The compliance checker as plain functions: phrases (not characters), mainland mobile
numbers and resident ID numbers whose MOD 11-2 checksum holds, offsets into each field."""

from __future__ import annotations

from services.content.compliance.checker import Flag, Term, check, check_field, is_resident_id, resident_id_check
from services.content.compliance.defaults import DEFAULT_TERMS

VALID_ID = "11010519491231002X"  # the GB 11643 sample: check character X (10)
BAD_CHECKSUM = "110105194912310021"  # one check digit off
VALID_ID_LOWER_X = "44030419900307123x"


def found(text: str, terms: list[Term] | tuple[Term, ...] = DEFAULT_TERMS) -> list[tuple[str, str]]:
    """(term, matched text) for every flag in a body."""
    return [(f.term, text[f.start : f.end]) for f in check_field("body", text, terms)]


def test_a_chinese_promotion_is_flagged_term_by_term_with_offsets() -> None:
    title = "国家级好礼限时送"
    body = (
        "双十一特惠！全网最低价，第一品牌，最近大家一起来体验。"
        f"咨询请致电 138-1234-5678，报名需填身份证 {VALID_ID}，"
        f"旧表格里的 {BAD_CHECKSUM} 作废。"
    )
    flags = check(title, body, DEFAULT_TERMS)
    assert flags[0] == Flag("国家级", "absolute_claim", "phrase", "title", 0, 3)
    seen = [(f.field, f.term, f.category, (title if f.field == "title" else body)[f.start : f.end]) for f in flags]
    assert seen == [
        ("title", "国家级", "absolute_claim", "国家级"),
        ("body", "全网最低", "absolute_claim", "全网最低"),  # longest find wins: not also 全网最
        ("body", "第一品牌", "absolute_claim", "第一品牌"),
        ("body", "cn_mobile", "personal_data", "138-1234-5678"),
        ("body", "cn_resident_id", "personal_data", VALID_ID),
    ]
    assert all(f.match == ("pattern" if f.category == "personal_data" else "phrase") for f in flags)
    # 最近 (recently), 一起 (together): ordinary words sharing a character with a claim.
    assert not any(body[f.start : f.end] in ("最近", "一起") for f in flags)


def test_phrases_match_whole_and_single_characters_never_flag() -> None:
    ordinary = "最近我们第一次见面，这是唯一的办法，你最好早点来，一起吃饭。"
    assert found(ordinary) == []
    assert found("这是我们做过最佳的一期") == [("最佳", "最佳")]
    lone = [Term("最", "absolute_claim"), Term("第一", "absolute_claim")]
    assert found("最近第一次", lone) == [("第一", "第一")]  # the lone 最 is never a term
    # Case and full width do not hide a phrase, and offsets are the original's.
    assert found("销量ＮＯ．１，Top1 好物") == [("no.1", "ＮＯ．１"), ("top1", "Top1")]
    # Nested terms: one flag for the longest at the leftmost place.
    assert found("史上最低，全网最低价") == [("史上最", "史上最"), ("全网最低", "全网最低")]


def test_mainland_mobile_numbers() -> None:
    text = "电话13812345678或 +86 139 1234 5678，座机010-12345678，编号12345678901，订单2013812345678"
    assert found(text) == [("cn_mobile", "13812345678"), ("cn_mobile", "+86 139 1234 5678")]
    assert found("８６１３９１２３４５６７８") == [("cn_mobile", "８６１３９１２３４５６７８")]  # full width
    assert found("12812345678 and 138123456789") == []  # no 12x prefix; 12 digits is no phone


def test_resident_id_numbers_need_a_valid_checksum_and_date() -> None:
    assert resident_id_check(VALID_ID[:17]) == "x"
    assert is_resident_id(VALID_ID)
    assert is_resident_id(VALID_ID_LOWER_X)
    assert not is_resident_id(BAD_CHECKSUM)
    month_13 = "11010519491331002" + resident_id_check("11010519491331002")  # checksum holds, no such date
    assert not is_resident_id(month_13)
    text = f"甲 {VALID_ID}，乙 {BAD_CHECKSUM}，丙 {VALID_ID_LOWER_X}，丁 {month_13}，戊 {VALID_ID}1"
    assert found(text) == [("cn_resident_id", VALID_ID), ("cn_resident_id", VALID_ID_LOWER_X)]


def test_an_operator_list_replaces_the_defaults() -> None:
    terms = [Term("包治百病", "medical_claim"), Term("cn_resident_id", "personal_data", "pattern")]
    body = f"全网最低，包治百病，13812345678，{VALID_ID}"
    assert found(body, terms) == [("包治百病", "包治百病"), ("cn_resident_id", VALID_ID)]
    assert check("", "", DEFAULT_TERMS) == []
    assert found(body, []) == []
