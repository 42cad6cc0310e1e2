"""Facts of the campaign, from the provincial notice (琼质强省办〔2022〕8号)."""

from __future__ import annotations

THEME = "推动质量变革创新 促进质量强国建设"

# 附件 2: the slogans of the 2022 national Quality Month.
SLOGANS = (
    "深入实施质量提升行动 大力推进质量强国建设",
    "服务新发展格局 助推高质量发展",
    "培育经济发展新优势 促进质量强国建设",
    "坚持质量第一 建设质量强国",
    "让质量强国深入人心 让质量提升扎实推进",
    "走质量效益型发展道路 打造区域质量发展新优势",
    "提升产品、工程和服务质量 推动经济高质量发展",
    "建设质量强国 共享美好生活",
    "优化营商环境 建设质量强国",
    "加强全面质量管理 促进质量变革创新",
    "打造中国精品 畅享中国品牌",
    "弘扬工匠精神 推动品质革命",
    "夯实质量基础 提升服务效能",
    "质量发展 利民惠民",
    "人人创造质量 人人享受质量",
)

# 附件 3: the 21 co-hosting units. An event's organizer is one of them or free text.
ORGANIZERS = (
    "省市场监督管理局",
    "省发展和改革委员会",
    "省教育厅",
    "省科学技术厅",
    "省工业和信息化厅",
    "省公安厅",
    "省自然资源和规划厅",
    "省生态环境厅",
    "省住房和城乡建设厅",
    "省交通运输厅",
    "省水务厅",
    "省农业农村厅",
    "省商务厅",
    "省旅游和文化广电体育厅",
    "省卫生健康委员会",
    "人民银行海口中心支行",
    "省国有资产监督管理委员会",
    "海口海关",
    "省供销合作联社",
    "省总工会",
    "省工商业联合会",
)

# Hainan's 市县: 4 prefecture-level cities, 5 county-level cities, 4 counties and
# 6 autonomous counties.
COUNTIES = (
    "海口市",
    "三亚市",
    "三沙市",
    "儋州市",
    "五指山市",
    "琼海市",
    "文昌市",
    "万宁市",
    "东方市",
    "定安县",
    "屯昌县",
    "澄迈县",
    "临高县",
    "白沙黎族自治县",
    "昌江黎族自治县",
    "乐东黎族自治县",
    "陵水黎族自治县",
    "保亭黎族苗族自治县",
    "琼中黎族苗族自治县",
)

# The five-into venues, and 其他 for markets, stalls and the like.
VENUE_TYPES = ("机关", "企业", "乡镇", "社区", "学校", "其他")
VENUE_TYPE_ALIASES = {
    "government": "机关",
    "enterprise": "企业",
    "company": "企业",
    "township": "乡镇",
    "community": "社区",
    "school": "学校",
    "other": "其他",
}


def county_named(text: str) -> str | None:
    """The full county name for `海口`, `海口市`, `白沙` or `白沙县`; None if not in Hainan."""
    text = text.strip()
    if text in COUNTIES:
        return text
    stem = text.removesuffix("市").removesuffix("县")
    matches = [c for c in COUNTIES if c.startswith(stem)] if len(stem) >= 2 else []
    return matches[0] if len(matches) == 1 else None


def venue_type_named(text: str) -> str | None:
    text = text.strip()
    if text in VENUE_TYPES:
        return text
    return VENUE_TYPE_ALIASES.get(text.lower())


def slogan_for(key: str) -> str:
    """A slogan chosen by key, so each poster keeps its own slogan from print to print."""
    return SLOGANS[sum(key.encode("utf-8")) % len(SLOGANS)]
