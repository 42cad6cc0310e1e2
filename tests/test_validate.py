"""Validation as pure functions: what a phone posts -> clean answers or Chinese errors."""

import pytest

from server.forms import load_form
from server.validate import Malformed, validate
from tests.conftest import TEST_FORMS

FORM = load_form(TEST_FORMS / "all-types.toml")
BASE = {"unit": ["质监局"]}


def check(**posted):
    data = dict(BASE)
    data.update({k: v if isinstance(v, list) else [v] for k, v in posted.items()})
    return validate(FORM, data)


@pytest.mark.parametrize(
    ("name", "sent", "stored"),
    [
        ("unit", "  海口市市场监管局  ", "海口市市场监管局"),
        ("people", "25", 25),
        ("people", "２５", 25),  # full-width digits from a Chinese keyboard
        ("people", "+3", 3),
        ("spend", "3.5", 3.5),
        ("spend", "1,200", 1200.0),
        ("spend", ".5", 0.5),
        ("held_on", "2022-09-15", "2022-09-15"),
        ("held_on", "2022/9/5", "2022-09-05"),
        ("held_on", "2022年9月5日", "2022-09-05"),
        ("mobile", "138 1234 5678", "13812345678"),
        ("mobile", "+86-138-1234-5678", "13812345678"),
        ("mail", "li.lei@example.cn", "li.lei@example.cn"),
        ("mail", "li＠example.cn", "li@example.cn"),
        ("venue", "school", "school"),
        ("satisfaction", "4", 4),
        ("agree", "yes", True),
        ("topics", ["油品", "食品", "食品"], ["食品", "油品"]),  # definition order, once each
    ],
)
def test_good_answers_are_cleaned(name, sent, stored):
    extra = {"_consent": "yes"} if name == "mobile" else {}
    outcome = check(**{name: sent}, **extra)
    assert outcome.errors == {}
    assert outcome.answers[name] == stored


@pytest.mark.parametrize(
    ("name", "sent", "error"),
    [
        ("unit", "", "此项为必填"),
        ("unit", "局", "至少填写 2 个字（现在是 1 个）"),
        ("unit", "市场监督管理局质量发展科", "最多填写 10 个字（现在是 12 个）"),
        ("unit", "质监\x00局", "包含无法识别的控制字符，请删去后再提交"),
        ("people", "abc", "请填写整数，如 25"),
        ("people", "2.5", "请填写整数，如 25"),
        ("people", "0", "请填写 1 到 500 之间的数"),
        ("people", "1e3", "请填写整数，如 25"),
        ("spend", "NaN", "请填写数字，如 3.5"),
        ("spend", "inf", "请填写数字，如 3.5"),
        ("spend", "1e309", "请填写数字，如 3.5"),
        ("spend", "9" * 400, "数字太大了，请检查"),
        ("spend", "-1", "请填写 0 到 10000 之间的数"),
        ("held_on", "2022-02-30", "请填写正确的日期，如 2022-09-15"),
        ("held_on", "2022-08-31", "日期不能早于 2022-09-01"),
        ("held_on", "2022-11-01", "日期不能晚于 2022-10-31"),
        ("mobile", "12345678901", "请填写 11 位手机号码，如 13812345678"),
        ("mobile", "1381234567", "请填写 11 位手机号码，如 13812345678"),
        ("mail", "not-an-email", "请填写正确的电子邮箱，如 name@example.com"),
        ("venue", "market", "请从给出的选项中选择"),
        ("venue", "other", "选了“其他”，请填写具体内容"),
        ("satisfaction", "6", "请选择 1 到 5 之间的分数"),
        ("satisfaction", "0", "请选择 1 到 5 之间的分数"),
        ("satisfaction", "٣", "请选择 1 到 5 之间的分数"),
        ("topics", ["食品", "假药"], "请从给出的选项中选择"),
    ],
)
def test_bad_answers_get_a_chinese_message_on_their_question(name, sent, error):
    outcome = check(**{name: sent})
    assert outcome.errors == {name: error}
    assert name not in outcome.answers


def test_other_text_is_kept_with_its_choice():
    outcome = check(venue="other", venue_other="农贸市场")
    assert outcome.answers["venue"] == "other"
    assert outcome.answers["venue_other"] == "农贸市场"


def test_typing_into_other_without_ticking_it_means_other():
    assert check(venue_other="农贸市场").answers["venue"] == "other"
    assert check(topics=["食品"], topics_other="玩具").answers["topics"] == ["食品", "other"]


def test_other_text_with_another_choice_asks_which_one():
    assert check(venue="school", venue_other="农贸市场").errors == {
        "venue": "您选了“学校”，又填写了“其他”内容，请只保留一项"
    }


def test_max_choices_counts_other_too():
    outcome = check(topics=["食品", "电梯", "油品", "other"], topics_other="玩具")
    assert outcome.errors == {"topics": "最多选择 3 项（现在选了 4 项）"}


def test_hidden_question_is_not_required_and_its_answer_is_discarded():
    outcome = check(satisfaction="5", venue="school", why="这句话不该保存")
    assert outcome.errors == {}
    assert "why" not in outcome.answers


def test_shown_question_is_required():
    assert check(satisfaction="1", venue="school").errors == {"why": "此项为必填"}
    assert check(satisfaction="1", venue="school", why="讲解太快").answers["why"] == "讲解太快"


def test_multi_condition_shows_follow_up():
    assert "elevator_issue" not in check(topics=["食品"], elevator_issue="x").answers
    assert check(topics=["电梯"], elevator_issue="困人").answers["elevator_issue"] == "困人"


def test_personal_answers_need_consent_to_the_privacy_notice():
    assert check(name="张三").errors == {"_consent": "填写了个人信息，请先阅读并勾选同意个人信息说明"}
    assert check(name="张三", _consent="yes").answers["name"] == "张三"
    assert check().errors == {}  # no personal answer: no consent needed


def test_unanswered_optional_questions_are_left_out():
    assert check().answers == {"unit": "质监局"}


def test_two_values_for_a_single_answer_question_are_malformed():
    with pytest.raises(Malformed):
        check(venue=["school", "community"])
