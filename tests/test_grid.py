"""`grid`: several items answered on one shared scale (五放心: 安全、质量、服务、维权、价格)."""

import html
import re

import pytest

from server.export import export_csv
from server.forms import FormError, load_form
from tests.conftest import client_with_forms, database, signed_in_admin, stored_answers, submission_key

FORM = """
title = "五放心评价"
kind = "consumer-survey"

[[fields]]
name = "five"
type = "grid"
label = "您对本地消费环境的评价"
rows = ["安全", "质量", "服务", "维权", { key = "price", label = "价格" }]
low_label = "很不放心"
high_label = "很放心"
required = true

[[fields]]
name = "note_text"
type = "text"
label = "还想说的"
"""
ROWS = ["five_1", "five_2", "five_3", "five_4", "five_price"]


@pytest.fixture
def client(tmp_path):
    with client_with_forms(tmp_path, five=FORM) as client:
        yield client


def post(client, data):
    page = client.get("/f/five")
    return client.post("/f/five", data=data | {"_key": submission_key(page.text)}, follow_redirects=False)


def all_rows(*points):
    return dict(zip(ROWS, map(str, points), strict=True))


def test_each_row_is_a_group_of_radio_buttons_on_the_shared_scale(client):
    page = client.get("/f/five").text
    for name, label in zip(ROWS, ["安全", "质量", "服务", "维权", "价格"], strict=True):
        assert f'<span class="grid-label" id="g-{name}">{label}</span>' in page
        assert re.findall(rf'name="{name}" value="(\d+)"', page) == ["1", "2", "3", "4", "5"]
    assert "1 = 很不放心" in page and "5 = 很放心" in page


def test_a_whole_grid_is_stored_one_answer_per_row(client):
    assert post(client, all_rows(5, 4, 3, 2, 1) | {"note_text": "好"}).status_code == 303
    assert stored_answers(client) == [
        {"five_1": 5, "five_2": 4, "five_3": 3, "five_4": 2, "five_price": 1, "note_text": "好"}
    ]


def test_a_required_grid_names_the_rows_still_unanswered(client):
    answer = post(client, {"five_1": "5", "five_3": "4"})
    assert answer.status_code == 422
    assert "请每一行都选一个分数（还没选：质量、维权、价格）" in answer.text
    assert 'value="5" checked' in answer.text  # what was chosen is kept
    assert stored_answers(client) == []


@pytest.mark.parametrize("point", ["0", "6", "٣", "²", "9" * 5000, "-1"])
def test_a_point_off_the_scale_is_a_422_never_a_500(client, point):
    answer = post(client, all_rows(5, 5, 5, 5, 5) | {"five_2": point})
    assert answer.status_code == 422
    assert "“质量”请选择 1 到 5 之间的分数" in answer.text


def test_a_row_that_does_not_exist_is_not_stored(client):
    assert post(client, all_rows(3, 3, 3, 3, 3) | {"five_9": "5", "five": "5"}).status_code == 303
    assert set(stored_answers(client)[0]) == set(ROWS)


def test_the_csv_has_one_column_per_row(client):
    post(client, all_rows(5, 4, 3, 2, 1))
    form = client.app.state["context"].catalog.get("five")
    labels = b"".join(export_csv(database(client), form)).decode("utf-8")
    names = b"".join(export_csv(database(client), form, header="names")).decode("utf-8")
    when = database(client).execute("SELECT submitted_at FROM responses").fetchone()[0]
    assert labels == (
        "\ufeff编号,提交时间,活动,您对本地消费环境的评价：安全,您对本地消费环境的评价：质量,您对本地消费环境的评价：服务,"
        "您对本地消费环境的评价：维权,您对本地消费环境的评价：价格,还想说的\r\n"
        f"1,{when},,5,4,3,2,1,\r\n"
    )
    assert names.splitlines()[0] == "\ufeffid,submitted_at,event,five_1,five_2,five_3,five_4,five_price,note_text"


def test_results_show_each_row_with_its_average_and_chart(client):
    for points in ((5, 5, 4, 1, 2), (3, 5, 4, 1, 4)):
        post(client, all_rows(*points))
    signed_in_admin(client)
    page = html.unescape(client.get("/admin/forms/five").text)
    section = page.split('id="r-five"', 1)[1].split("</section>", 1)[0]
    assert re.findall(r'<h3 class="grid-result">(\w+)</h3>', section) == ["安全", "质量", "服务", "维权", "价格"]
    averages = re.findall(r"平均 <strong>([\d.]+)</strong> / 5 分", section)
    assert averages == ["4.00", "5.00", "4.00", "1.00", "3.00"]
    assert section.count('<svg class="chart"') == 5


@pytest.mark.parametrize(
    "field, message",
    [
        ('name = "g"\ntype = "grid"\nlabel = "评价"', "grid 需要 rows"),
        ('name = "g"\ntype = "grid"\nlabel = "评价"\nrows = [{ key = "a", label = "甲" }, { key = "a", label = "乙" }]',
         "rows 的 key 'a' 重复了"),
        ('name = "g"\ntype = "grid"\nlabel = "评价"\nrows = [{ key = "A b", label = "甲" }]', "只能用小写字母"),
        ('name = "g"\ntype = "grid"\nlabel = "评价"\nrows = ["甲"]\nscale = 11', "scale 应在 2 到 10 之间"),
        ('name = "g"\ntype = "grid"\nlabel = "评价"\nrows = ["甲"]\n\n[[fields]]\nname = "g_1"\ntype = "text"\nlabel = "x"',
         "答案名 'g_1' 与字段 'g' 重复"),
        ('name = "g"\ntype = "grid"\nlabel = "评价"\nrows = ["甲"]\n\n[[fields]]\nname = "t"\ntype = "text"\nlabel = "x"\n'
         'show_if = "g == 1"', "不能用于条件"),
    ],
)  # fmt: skip
def test_the_checker_names_each_grid_mistake(tmp_path, field, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'title = "t"\nkind = "general"\n\n[[fields]]\n{field}\n', encoding="utf-8")
    with pytest.raises(FormError) as caught:
        load_form(path)
    assert any(line.startswith(f"{path}: 字段 ") and message in line for line in caught.value.messages), caught.value
