import os
import time
from pathlib import Path

import pytest

from server.forms import TYPE_KEYS, FormCatalog, FormError, check_forms, load_form
from tests.conftest import BUNDLED_FORMS, TEST_FORMS, make_app_client, run, running_server

HEAD = 'title = "T"\nkind = "general"\n'


def write(tmp_path: Path, body: str, name: str = "f.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, body: str, name: str = "f.toml") -> list[str]:
    with pytest.raises(FormError) as caught:
        load_form(write(tmp_path, body, name))
    return caught.value.messages


def test_fixture_form_loads_with_every_type():
    form = load_form(TEST_FORMS / "all-types.toml")
    assert form.id == "all-types"
    assert {f.type for f in form.fields} == {
        "section", "note", "text", "choice", "integer", "number", "date", "multi",
        "rating", "textarea", "phone", "email", "consent",
    }  # fmt: skip
    assert form.field("unit").max_length == 10
    assert form.field("why").max_length == 2000  # the textarea default
    assert form.field("held_on").min == "2022-09-01"
    assert [o.value for o in form.field("venue").choices] == ["school", "community", "other"]


def test_bundled_forms_are_valid_and_use_every_field_type():
    forms, errors = check_forms(BUNDLED_FORMS)
    assert errors == []
    assert len(forms) >= 3
    used = {f.type for form in forms.values() for f in form.fields}
    # No bundled form needs a `consent` question: the product's own box covers personal answers
    # (tests/forms/all-types.toml has one).
    assert used == set(TYPE_KEYS) - {"consent"}
    assert {form.kind for form in forms.values()} >= {"five-into", "township-event", "consumer-survey"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('kind = "general"\n[[fields]]\nname="a"\ntype="text"\nlabel="A"', "缺少 title"),
        ('title="T"\nkind="party"\n[[fields]]\nname="a"\ntype="text"\nlabel="A"', "kind 必须是"),
        (HEAD + 'colour = "red"\n[[fields]]\nname="a"\ntype="text"\nlabel="A"', "未知的设置项 'colour'"),
        (HEAD, "至少要有一个 [[fields]]"),
        (HEAD + '[[fields]]\nname="a"\ntype="slider"\nlabel="A"', "字段 'a': 未知的类型"),
        (
            HEAD + '[[fields]]\nname="a"\ntype="text"\nlabel="A"\n[[fields]]\nname="a"\ntype="text"\nlabel="B"',
            "字段 'a': name 重复了",
        ),
        (HEAD + '[[fields]]\nname="Bad-Name"\ntype="text"\nlabel="A"', "字段 'Bad-Name': name 必须"),
        (HEAD + '[[fields]]\nname="a"\ntype="text"', "字段 'a': 缺少 label"),
        (HEAD + '[[fields]]\nname="a"\ntype="text"\nlabel="A"\noptions=["x"]', "字段 'a': text 类型没有 'options'"),
        (HEAD + '[[fields]]\nname="a"\ntype="text"\nlabel="A"\nmax_length="ten"', "字段 'a': max_length 应为整数"),
        (HEAD + '[[fields]]\nname="a"\ntype="choice"\nlabel="A"', "字段 'a': options 必须是非空列表"),
        (HEAD + '[[fields]]\nname="a"\ntype="choice"\nlabel="A"\noptions=["x","x"]', "选项 'x' 重复了"),
        (HEAD + '[[fields]]\nname="a"\ntype="choice"\nlabel="A"\noptions=["other"]\nother=true', "不能再用 'other'"),
        (HEAD + '[[fields]]\nname="a"\ntype="rating"\nlabel="A"\nscale=11', "scale 应在 2 到 10 之间"),
        (HEAD + '[[fields]]\nname="a"\ntype="integer"\nlabel="A"\nmin=5\nmax=1', "min 不能大于 max"),
        (HEAD + '[[fields]]\nname="a"\ntype="integer"\nlabel="A"\nmin=1.5', "min 应为整数"),
        (HEAD + '[[fields]]\nname="a"\ntype="date"\nlabel="A"\nmin="2022-13-01"', "min 应为日期"),
        (
            HEAD + '[[fields]]\nname="a"\ntype="multi"\nlabel="A"\noptions=["x"]\nmax_choices=3',
            "max_choices 应在 0 到 1 之间",
        ),
        (HEAD + '[[fields]]\nname="a"\ntype="text"\nlabel="A"\npersonal=true', "必须写 privacy"),
        (
            HEAD + '[[fields]]\nname="a"\ntype="text"\nlabel="A"\nshow_if="b == 1"',
            "字段 'a': show_if 'b == 1'：前面没有名为 'b' 的字段（show_if 只能用本题前面的字段）",
        ),
        (
            HEAD
            + '[[fields]]\nname="a"\ntype="text"\nlabel="A"\n[[fields]]\nname="b"\ntype="text"\nlabel="B"\nshow_if="a = 1"',
            "字段 'b': show_if",
        ),
        (
            HEAD
            + '[[fields]]\nname="a"\ntype="text"\nlabel="A"\n[[fields]]\nname="b"\ntype="text"\nlabel="B"\nshow_if="a > \\"x\\""',
            "只能用于数字、评分和日期",
        ),
        (
            HEAD
            + '[[fields]]\nname="a"\ntype="rating"\nlabel="A"\n[[fields]]\nname="b"\ntype="text"\nlabel="B"\nshow_if="a == \\"1\\""',
            "比较的值应为数字",
        ),
        (
            HEAD
            + '[[fields]]\nname="a"\ntype="choice"\nlabel="A"\noptions=["x"]\n[[fields]]\nname="b"\ntype="text"\nlabel="B"\nshow_if="a == \\"y\\""',
            "'y' 不是 'a' 的选项",
        ),
        (
            HEAD
            + '[[fields]]\nname="a"\ntype="choice"\nlabel="A"\noptions=["x"]\n[[fields]]\nname="b"\ntype="text"\nlabel="B"\nshow_if="\\"x\\" in a"',
            "in 只能用于多选题",
        ),
        (HEAD + 'opens = "tomorrow"\n[[fields]]\nname="a"\ntype="text"\nlabel="A"', "opens 必须是 TOML 日期时间"),
        (
            HEAD + "opens = 2022-10-01\ncloses = 2022-09-01\n[[fields]]\nname='a'\ntype='text'\nlabel='A'",
            "closes 必须晚于 opens",
        ),
        ("title = [", "文件末尾：文件在一个值写完之前就结束了"),
    ],
)
def test_each_rule_is_an_error_naming_file_and_field(tmp_path, body, expected):
    messages = errors_of(tmp_path, body)
    assert all(m.startswith(f"{tmp_path / 'f.toml'}: ") for m in messages)
    assert any(expected in m for m in messages), messages


def test_file_name_must_be_a_valid_form_id(tmp_path):
    assert any(
        "文件名" in m
        for m in errors_of(tmp_path, HEAD + '[[fields]]\nname="a"\ntype="text"\nlabel="A"', "Bad Name.toml")
    )


def test_every_error_of_a_file_is_reported_not_only_the_first(tmp_path):
    body = 'kind = "x"\n[[fields]]\nname="a"\ntype="nope"\n[[fields]]\nname="b"\ntype="text"\nlabel="B"\nextra=1'
    assert len(errors_of(tmp_path, body)) == 4


def test_local_times_are_china_time_and_a_closing_date_includes_that_day(tmp_path):
    form = load_form(
        write(
            tmp_path,
            "opens = 2022-09-01T08:00:00\ncloses = 2022-09-30\n"
            + HEAD
            + '[[fields]]\nname="a"\ntype="text"\nlabel="A"',
        )
    )
    assert form.opens.isoformat() == "2022-09-01T08:00:00+08:00"
    assert form.closes.isoformat() == "2022-10-01T00:00:00+08:00"


def test_version_changes_with_the_definition_but_not_with_comments(tmp_path):
    body = HEAD + '[[fields]]\nname="a"\ntype="text"\nlabel="A"\n'
    first = load_form(write(tmp_path, body)).version
    assert load_form(write(tmp_path, "# a comment\n" + body)).version == first
    assert load_form(write(tmp_path, body.replace('"A"', '"B"'))).version != first


def test_a_broken_file_never_takes_the_other_forms_down(tmp_path):
    write(tmp_path, HEAD + '[[fields]]\nname="a"\ntype="text"\nlabel="A"', "good.toml")
    write(tmp_path, "title = [", "broken.toml")
    write(tmp_path, "not even toml", "_ignored.toml")
    forms, errors = check_forms(tmp_path)
    assert list(forms) == ["good"]
    assert len(errors) == 1 and errors[0].startswith(str(tmp_path / "broken.toml"))


def test_catalog_picks_up_edits_while_serving(tmp_path):
    path = write(tmp_path, HEAD + '[[fields]]\nname="a"\ntype="text"\nlabel="A"', "live.toml")
    catalog = FormCatalog(tmp_path, rescan_seconds=0)
    assert catalog.get("live").title == "T"
    path.write_text(path.read_text().replace('title = "T"', 'title = "新标题"'), encoding="utf-8")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert catalog.get("live").title == "新标题"
    path.write_text("title = [", encoding="utf-8")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert catalog.get("live") is None
    assert catalog.errors and "文件末尾：文件在一个值写完之前就结束了" in catalog.errors[0]


DEEP_SHOW_IF = HEAD + '[[fields]]\nname="a"\ntype="integer"\nlabel="A"\n[[fields]]\nname="b"\ntype="text"\nlabel="B"\n'
DEEP = {
    "parens.toml": DEEP_SHOW_IF + "show_if = '" + "(" * 1000 + "a == 1" + ")" * 1000 + "'\n",
    "nots.toml": DEEP_SHOW_IF + "show_if = '" + "not " * 1000 + "a == 1'\n",
    "arrays.toml": HEAD + "[[fields]]\nname='a'\ntype='choice'\nlabel='A'\noptions = " + "[" * 1000 + "]" * 1000,
    "tables.toml": HEAD + "[[fields]]\nname='a'\ntype='text'\nlabel='A'\nhint = " + "{ a = " * 1000 + "1" + " }" * 1000,
}
DEEP_ERRORS = [
    "forms/arrays.toml: 数组或表嵌套太深",
    "forms/nots.toml: 字段 'b': show_if 'not not not not not not not not not not not not not not not…'："
    "括号或 not 嵌套太深（最多 20 层）",
    "forms/parens.toml: 字段 'b': show_if '(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((…'："
    "括号或 not 嵌套太深（最多 20 层）",
    "forms/tables.toml: 数组或表嵌套太深",
]


def add_deep_forms(folder: Path) -> None:
    for name, body in DEEP.items():
        write(folder, body, name)


def test_deep_nesting_is_a_form_error_for_check_not_a_traceback(workdir):
    add_deep_forms(workdir / "forms")
    result = run("check", cwd=workdir)
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert result.stdout.decode().splitlines() == DEEP_ERRORS
    assert b"4 form(s) OK, 4 error(s)" in result.stderr


def test_show_if_may_nest_twenty_deep(tmp_path):
    body = DEEP_SHOW_IF + "show_if = '" + "(" * 20 + "a == 1" + ")" * 20 + "'\n"
    assert load_form(write(tmp_path, body)).field("b").condition is not None


def test_the_server_starts_and_serves_beside_deeply_nested_files(workdir):
    add_deep_forms(workdir / "forms")
    with running_server(workdir) as port:
        import urllib.error
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/f/all-types") as page:
            assert page.status == 200
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/f/parens")
        assert missing.value.code == 404
    assert b"Traceback" not in (workdir / "server.log").read_bytes()


def test_a_deeply_nested_file_added_while_serving_is_left_out(tmp_path):
    with make_app_client(tmp_path) as client:
        catalog = client.app.state["context"].catalog
        add_deep_forms(catalog.directory)
        catalog.rescan_seconds, catalog._next_scan = 0, 0  # the next request rescans at once
        assert client.get("/f/parens").status_code == 404
        assert client.get("/").status_code == 200
        assert sorted(line.split(":")[0].rsplit("/", 1)[1] for line in catalog.errors) == sorted(DEEP)
