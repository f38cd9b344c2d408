"""The forbidden-terms list a community has until an operator sets its own.

Absolute claims: Article 9(3) of the PRC Advertising Law forbids "国家级", "最高级", "最佳"
and the like in advertisements, and market regulators read that broadly (the "极限词" lists:
the 最 series, 第一 / 唯一, 级 / 极, 首 / 独家, false authority). Every term here is a
phrase of two or more characters, matched as a whole: a lone "最" or "一" never flags, so
"最近" (recently) or "一起" (together) pass. Where a short word is as often ordinary
speech as a claim, its claim compounds are listed instead of the word itself: "最好" is
mostly "had better", "第一次" is "the first time", "唯一的" is "the only", "最新" is "the
newest" (a fact), so the list has "第一品牌", "全网第一", "全网唯一", "最佳" ... but not
"第一", "唯一", "最好" alone. An operator who wants them adds them.

Personal data: patterns, not phrases (`match: pattern`); see `checker.PATTERNS`.
"""

from __future__ import annotations

from services.content.compliance.checker import Term

ABSOLUTE_CLAIM = "absolute_claim"
MISLEADING_PROMOTION = "misleading_promotion"
PERSONAL_DATA = "personal_data"

_ABSOLUTE_CLAIMS = (
    # 最 series
    "最佳", "最优", "最优秀", "最强", "最高级", "最高端", "最顶级", "最低价", "最便宜", "最先进",
    "最受欢迎", "最畅销", "最权威", "史上最", "全网最", "全网最低", "全国最", "全球最", "世界最",
    # 第一 / 唯一 series
    "第一品牌", "全网第一", "全国第一", "中国第一", "世界第一", "全球第一", "行业第一", "国内第一",
    "销量第一", "排名第一", "no.1", "top1", "独一无二", "全网唯一", "全国唯一", "国内唯一",
    "世界唯一", "唯一指定",
    # 级 / 极 series
    "国家级", "世界级", "全球级", "宇宙级", "顶级", "顶尖", "极品", "终极", "至尊",
    # 首 / 独家 series
    "首个", "首家", "首款", "首选", "全网首发", "全国首发", "独家", "全网独家",
    # false authority and certainty
    "国家免检", "质量免检", "驰名商标", "特供", "专供", "史无前例", "前无古人", "遥遥领先",
    "世界领先", "百分之百", "100%", "万能", "无敌",
)  # fmt: skip

_MISLEADING_PROMOTIONS = (
    "点击领奖", "恭喜获奖", "全民免单", "万人疯抢", "再不抢就没了", "不会更便宜了", "仅此一次",
    "最后一波",
)  # fmt: skip

DEFAULT_TERMS: tuple[Term, ...] = (
    *(Term(t, ABSOLUTE_CLAIM) for t in _ABSOLUTE_CLAIMS),
    *(Term(t, MISLEADING_PROMOTION) for t in _MISLEADING_PROMOTIONS),
    Term("cn_mobile", PERSONAL_DATA, "pattern"),
    Term("cn_resident_id", PERSONAL_DATA, "pattern"),
)
