"""The mistakes office staff actually make writing a form, and the exact Chinese they read.

Each row is one mistake from issue 13 or from watching staff type on a Chinese keyboard:
the TOML they wrote and every message `quality-forms check` (and the workshop) shows.
"""

import re
import tomllib
from pathlib import Path

import pytest

from server.forms import FormError, load_form
from server.tomlfile import MESSAGES, TomlFileError, parse_toml, translate

HEAD = 'title = "电梯安全小测验"\nkind = "general"\n'
BUILDING = """
[[fields]]
name = "building"
type = "choice"
label = "您住的楼有电梯吗？"
options = [{ value = "yes", label = "有" }, { value = "no", label = "没有" }]
"""
SATISFACTION = """
[[fields]]
name = "satisfaction"
type = "rating"
label = "您对电梯维保满意吗？"
"""


def follow_up(show_if: str) -> str:
    return f'\n[[fields]]\nname = "why"\ntype = "text"\nlabel = "为什么？"\nshow_if = {show_if}\n'


MISTAKES = [
    # Chinese quotes typed with a Chinese keyboard (issue 13: "Invalid value (at line 1, column 9)")
    ("title = “电梯安全小测验”\n", ['第 1 行用了中文引号 “ ”，请改成英文引号 "']),
    (
        HEAD + BUILDING.replace('label = "您住的楼有电梯吗？"', "label = “您住的楼有电梯吗？”"),
        ['第 7 行用了中文引号 “ ”，请改成英文引号 "'],
    ),
    ('title = "电梯安全小测验”\nkind = "general"\n', ['第 1 行用了中文引号 “ ”，请改成英文引号 "']),
    ("title = ‘电梯安全小测验’\n", ["第 1 行用了中文引号 ‘ ’，请改成英文引号 '"]),
    # Chinese comma between options, Chinese equals sign, Chinese colon
    (HEAD + BUILDING.replace("}, {", "}， {"), ["第 8 行用了中文逗号「，」，请改成英文逗号「,」"]),
    ('title ＝ "电梯安全小测验"\n', ["第 1 行用了中文等号「＝」，请改成英文等号「=」"]),
    (
        "title：“电梯安全小测验”\n",
        ['第 1 行用了中文冒号「：」，请改成英文等号「=」；用了中文引号 “ ”，请改成英文引号 "'],
    ),
    # full-width brackets and spaces
    (HEAD + "［［fields］］\n", ["第 3 行用了中文方括号「［ ］」，请改成英文方括号「[ ]」"]),
    (HEAD + "【【fields】】\n", ["第 3 行用了中文方括号「【 】」，请改成英文方括号「[ ]」"]),
    ('title\u3000= "电梯安全小测验"\n', ["第 1 行用了全角空格，请改成普通空格（先切换到英文输入法）"]),
    # Chinese quotes inside English ones are the text's own: the real mistake is named
    (
        'title = "“放心消费”"\nkind = "general"\ndescription = 电梯\n',
        [
            '第 3 行「description = 电梯」：值写错了：文字要用英文引号括起来，如 title = "质量月"；数字、true/false、日期不加引号'
        ],
    ),
    # other TOML slips, in Chinese with the line
    (
        HEAD + "[[fields]]\nname = why\n",
        [
            '第 4 行「name = why」：值写错了：文字要用英文引号括起来，如 title = "质量月"；数字、true/false、日期不加引号'
        ],
    ),
    (HEAD + 'kind = "general"\n', ['第 3 行「kind = "general"」：同一个设置项写了两次']),
    (
        HEAD + 'description = "多行\n文字"\n',
        [
            '第 3 行「description = "多行」：引号没有配对：文字少了结尾的英文引号「"」（要换行的文字请用三个引号 """ 括起来）'
        ],
    ),
    (
        HEAD + "opens = 2026-09-31\n",
        ["第 3 行「opens = 2026-09-31」：日期或时间写错了，应如 2022-09-01 或 2022-09-01T08:00:00"],
    ),
    (HEAD + "[[fields]\n", ["第 3 行「[[fields]」：表头后面缺少「]]」，如 [[fields]]"]),
    (HEAD + 'options = ["有", "没有"\n', ["文件末尾：方括号 [ ] 没有配对：列表少了「]」，或两项之间少了英文逗号「,」"]),
    # show_if with Chinese quotes (issue 13: "无法识别第 12 个字符起的内容")
    (
        HEAD + BUILDING + follow_up("'building == “没有”'"),
        ["字段 'why': show_if 'building == “没有”'：用了中文引号 “ ”，请改成英文引号 \""],
    ),
    (
        HEAD + BUILDING + follow_up("'building ＝＝ \"no\"'"),
        ["字段 'why': show_if 'building ＝＝ \"no\"'：用了中文等号「＝」，比较相等请写两个英文等号「==」"],
    ),
    (
        HEAD + BUILDING + follow_up("'building = \"no\"'"),
        ["字段 'why': show_if 'building = \"no\"'：比较相等要写两个等号「==」"],
    ),
    (
        HEAD + BUILDING + SATISFACTION + follow_up("'（satisfaction <= 2）'"),
        ["字段 'why': show_if '（satisfaction <= 2）'：用了中文括号「（ ）」，请改成英文括号「( )」"],
    ),
    (
        HEAD + BUILDING + SATISFACTION + follow_up("'building == \"no\"，satisfaction <= 2'"),
        [
            "字段 'why': show_if 'building == \"no\"，satisfaction <= 2'：用了中文逗号「，」：几个条件之间请用 and 或 or 连接"
        ],
    ),
    # a value of the wrong kind: what it should be, in words staff know
    (
        HEAD + '[[fields]]\nname = "who"\ntype = "text"\nlabel = "您的单位"\nrequired = "yes"\n',
        ["字段 'who': required 应为 true 或 false（不加引号）"],
    ),
    (
        HEAD + '[[fields]]\nname = "how"\ntype = "rating"\nlabel = "满意吗？"\nlabels = "很差、差、一般、好、很好"\n',
        ["字段 'how': labels 应为列表（用方括号 [ ] 括起来）"],
    ),
    # a value typed without quotes
    (
        HEAD + BUILDING + follow_up("'building == 没有'"),
        ["字段 'why': show_if 'building == 没有'：文字要用英文双引号括起来：没有 应写成 \"没有\""],
    ),
    (
        HEAD + BUILDING + follow_up("'building == no'"),
        ["字段 'why': show_if 'building == no'：文字要用英文双引号括起来：no 应写成 \"no\""],
    ),
    (
        HEAD + BUILDING + follow_up("'\"no\" in building'"),
        [
            "字段 'why': show_if '\"no\" in building'：in 只能用于多选题（multi），'building' 是 choice，请写 building == \"no\""
        ],
    ),
    # a typo'd field name, key, type or option value: the nearest one is suggested
    (
        HEAD + SATISFACTION + follow_up("'satisfation <= 2'"),
        ["字段 'why': show_if 'satisfation <= 2'：没有名为 'satisfation' 的字段，是不是 'satisfaction'？"],
    ),
    (
        HEAD + BUILDING + follow_up("'building == \"noo\"'"),
        [
            "字段 'why': show_if 'building == \"noo\"'：'noo' 不是 'building' 的选项，是不是 'no'？（可用：yes（有）、no（没有））"
        ],
    ),
    (
        HEAD + follow_up("'building == \"no\"'"),
        ["字段 'why': show_if 'building == \"no\"'：前面没有名为 'building' 的字段（show_if 只能用本题前面的字段）"],
    ),
    (
        HEAD + '[[fields]]\nname = "who"\ntype = "text"\nlable = "您的单位"\n',
        ["字段 'who': text 类型没有 'lable' 这个设置项，是不是 'label'？", "字段 'who': 缺少 label（题目文字）"],
    ),
    (
        HEAD + '[[fields]]\nname = "who"\ntype = "text"\nlabel = "您的单位"\noptions = ["a"]\n',
        ["字段 'who': text 类型没有 'options' 这个设置项（choice、multi 才有）"],
    ),
    (
        HEAD + '[[fields]]\nname = "who"\ntype = "choise"\nlabel = "您的单位"\n',
        ["字段 'who': 未知的类型 type = 'choise'，是不是 'choice'？"],
    ),
    (
        HEAD + '[[field]]\nname = "who"\ntype = "text"\nlabel = "您的单位"\n',
        ["未知的设置项 'field'，是不是 'fields'？", "至少要有一个 [[fields]]"],
    ),
    (
        'titel = "电梯安全小测验"\nkind = "general"\n[[fields]]\nname = "who"\ntype = "text"\nlabel = "您的单位"\n',
        ["未知的设置项 'titel'，是不是 'title'？", "缺少 title（必填文字）"],
    ),
    (
        'title = "电梯安全小测验"\nkind = "genral"\n[[fields]]\nname = "who"\ntype = "text"\nlabel = "您的单位"\n',
        [
            "kind 必须是 five-into / township-event / consumer-survey / general / event-report 之一，而不是 'genral'，是不是 'general'？"
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), MISTAKES, ids=[f"mistake-{n}" for n in range(1, len(MISTAKES) + 1)])
def test_each_real_mistake_gets_its_exact_chinese_message(tmp_path, text, expected):
    path = tmp_path / "elevator-quiz.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormError) as caught:
        load_form(path)
    assert [message.removeprefix(f"{path}: ") for message in caught.value.messages] == expected


def test_show_if_takes_an_options_label_and_stores_its_value(tmp_path):
    path = tmp_path / "elevator-quiz.toml"
    path.write_text(HEAD + BUILDING + follow_up("'building == \"没有\"'"), encoding="utf-8")
    written_with_label = load_form(path)
    path.write_text(HEAD + BUILDING + follow_up("'building == \"no\"'"), encoding="utf-8")
    written_with_value = load_form(path)
    assert written_with_label.field("why").show_if == 'building == "no"'
    assert written_with_label == written_with_value  # one definition, one version


def test_a_label_in_a_multi_condition_is_stored_as_its_value(tmp_path):
    path = tmp_path / "survey.toml"
    path.write_text(
        HEAD
        + '[[fields]]\nname = "concerns"\ntype = "multi"\nlabel = "关心什么？"\n'
        + 'options = [{ value = "food", label = "食品" }, { value = "lift", label = "电梯" }]\n'
        + follow_up('\'"电梯" in concerns and not "食品" in concerns\''),
        encoding="utf-8",
    )
    assert load_form(path).field("why").show_if == '"lift" in concerns and not "food" in concerns'


def test_chinese_punctuation_inside_english_quotes_is_text(tmp_path):
    path = tmp_path / "survey.toml"
    path.write_text(
        HEAD
        + BUILDING.replace("您住的楼有电梯吗？", "您住的楼有“电梯”吗，（含货梯）？")
        + follow_up("'building == \"“有”\"'"),
        encoding="utf-8",
    )
    with pytest.raises(FormError) as caught:
        load_form(path)  # the quotes are part of the value, which no option has
    assert caught.value.messages == [
        f"{path}: 字段 'why': show_if 'building == \"“有”\"'：'“有”' 不是 'building' 的选项，是不是 '有'？（可用：yes（有）、no（没有））"
    ]


def test_a_toml_error_carries_its_line_for_the_workshop():
    with pytest.raises(TomlFileError) as caught:
        parse_toml(HEAD + "\n\n[[fields]]\nname = “why”\n")
    assert (caught.value.line, caught.value.message) == (6, '第 6 行用了中文引号 “ ”，请改成英文引号 "')


def _tomllib_reasons() -> list[str]:
    """Every message the installed tomllib can raise, with a sample for what it quotes."""
    source = (Path(tomllib.__file__).parent / "_parser.py").read_text(encoding="utf-8")
    found = re.findall(r'suffixed_err\(\s*src,\s*\w+,\s*(f?)"((?:[^"\\]|\\.)*)"', source)
    assert len(found) >= 20, "tomllib's messages could not be found: the test must not pass empty"
    reasons = []
    for is_format, text in found:
        text = text.replace("\\\\", "\\")
        reasons.append(re.sub(r"\{[^}]*\}", "'x'", text) if is_format else text)
    return sorted(set(reasons))


@pytest.mark.parametrize("reason", _tomllib_reasons())
def test_every_tomllib_message_is_translated(reason):
    chinese = translate(reason)
    assert not chinese.startswith("TOML 格式错误"), f"no translation for {reason!r}"
    assert not re.search(r"[A-Za-z]{4,}", chinese.replace("title", "").replace("true/false", "").replace("fields", ""))


def test_the_translation_table_has_no_unused_rows():
    reasons = _tomllib_reasons()
    used = {pattern for pattern, _ in MESSAGES if any(re.fullmatch(pattern, r) for r in reasons)}
    # `Invalid number` and `Cannot append…` are raised by newer Pythons' tomllib; the newline row
    # is `Illegal character {char!r}` for the commonest character, a string left open
    newer = {r"Invalid number", r"Cannot append to a non-array (.+)", r"Illegal character '\\n'"}
    assert {pattern for pattern, _ in MESSAGES} - used <= newer
