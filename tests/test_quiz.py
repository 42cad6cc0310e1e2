"""The 质量安全知识竞答: scored on the thank-you page, % right in results, `score` in exports."""

import html
import re

import pytest

from server.export import export_csv
from server.forms import FormError, load_form
from tests.conftest import BUNDLED_FORMS, database, make_app_client, signed_in_admin, submission_key

QUIZ = load_form(BUNDLED_FORMS / "quality-quiz.toml")
RIGHT = {f.name: f.answer for f in QUIZ.quiz_fields}


@pytest.fixture
def client(tmp_path):
    with make_app_client(tmp_path, forms=BUNDLED_FORMS) as client:
        yield client


def answers(**wrong):
    """The right answers, but for the questions named with another answer."""
    return {name: list(value) if isinstance(value, tuple) else value for name, value in (RIGHT | wrong).items()}


def post(client, data, **headers):
    page = client.get("/f/quality-quiz")
    return client.post(
        "/f/quality-quiz", data=data | {"_key": submission_key(page.text)}, headers=headers, follow_redirects=False
    )


def test_the_bundled_quiz_has_ten_questions_each_with_its_answer_and_explanation():
    assert len(QUIZ.quiz_fields) == 10
    assert all(f.explain and f.required for f in QUIZ.quiz_fields)


def test_after_sending_the_page_shows_the_score_and_each_correction(client):
    sent = post(client, answers(complaint_line="12306", toys=["只要便宜就行，不用看标签"]))
    assert sent.status_code == 303
    assert re.fullmatch(r"/f/quality-quiz/thanks\?key=[\w-]+", sent.headers["location"])
    page = html.unescape(client.get(sent.headers["location"]).text)
    assert "您答对了 <strong>8</strong> 题，共 10 题。" in page
    corrections = re.findall(r'<li><p class="question">(.*?)</p>', page)
    assert corrections == [QUIZ.field("complaint_line").label, QUIZ.field("toys").label]
    assert "您的答案：12306" in page and "正确答案：<strong>12315</strong>" in page
    assert (
        "正确答案：<strong>看有没有 CCC 标志、看包装上标注的适用年龄和警示说明、带小零件的玩具不给 3 岁以下的孩子玩</strong>"
        in page
    )
    assert QUIZ.field("complaint_line").explain in page


def test_with_htmx_the_score_comes_in_the_thank_you_fragment(client):
    sent = post(client, answers(), **{"HX-Request": "true"})
    assert sent.status_code == 200 and "您答对了 <strong>10</strong> 题，共 10 题。" in sent.text
    assert "全部答对了" in sent.text


def test_a_thank_you_page_with_a_key_that_is_not_this_forms_shows_no_score(client):
    assert "您答对了" not in client.get("/f/quality-quiz/thanks?key=not-a-key-at-all-000").text
    assert "您答对了" not in client.get("/f/quality-quiz/thanks?key=<script>").text


def test_results_show_how_many_answered_each_question_right(client):
    post(client, answers())
    post(client, answers(ccc_mark="CE", toys=["看有没有 CCC 标志"]))  # a part of the right set is not right
    signed_in_admin(client)
    page = client.get("/admin/forms/quality-quiz").text
    right = dict(re.findall(r'id="r-(\w+)".*?答对 <strong>(\d+)</strong> 人', page, re.S))
    assert right == {name: "1" if name in ("ccc_mark", "toys") else "2" for name in RIGHT}
    assert "答对 <strong>1</strong> 人（50.0%）" in page


def test_exports_end_with_the_score(client):
    post(client, answers(seven_days="3 天"))
    csv = b"".join(export_csv(database(client), QUIZ, header="names")).decode("utf-8-sig").splitlines()
    assert csv[0].endswith(",seven_days,score")
    assert csv[1].endswith(",3 天,9")
    labels = b"".join(export_csv(database(client), QUIZ)).decode("utf-8-sig").splitlines()
    assert labels[0].endswith(",得分")


@pytest.mark.parametrize(
    "form, message",
    [
        ('quiz = true\n\n[[fields]]\nname = "q"\ntype = "choice"\nlabel = "Q"\noptions = ["甲", "乙"]\nanswer = "丙"',
         "answer '丙' 不是选项的 value"),
        ('quiz = true\n\n[[fields]]\nname = "q"\ntype = "choice"\nlabel = "Q"\noptions = ["甲", "乙"]\nanswer = ["甲"]',
         "单选题的 answer 是一个选项"),
        ('quiz = true\n\n[[fields]]\nname = "q"\ntype = "multi"\nlabel = "Q"\noptions = ["甲", "乙"]\nanswer = "甲"',
         "多选题的 answer 是选项的列表"),
        ('\n[[fields]]\nname = "q"\ntype = "choice"\nlabel = "Q"\noptions = ["甲", "乙"]\nanswer = "甲"',
         "还要写 quiz = true"),
        ('quiz = true\n\n[[fields]]\nname = "q"\ntype = "choice"\nlabel = "Q"\noptions = ["甲", "乙"]',
         "至少要有一道题写 answer"),
        ('quiz = true\n\n[[fields]]\nname = "q"\ntype = "choice"\nlabel = "Q"\noptions = ["甲"]\nanswer = "甲"\n\n'
         '[[fields]]\nname = "r"\ntype = "choice"\nlabel = "R"\noptions = ["甲"]\nexplain = "因为"',
         "写了 explain（解释），还要写 answer"),
    ],
)  # fmt: skip
def test_the_checker_names_each_quiz_mistake(tmp_path, form, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'title = "t"\nkind = "general"\n{form}\n', encoding="utf-8")
    with pytest.raises(FormError) as caught:
        load_form(path)
    assert any(line.startswith(f"{path}: ") and message in line for line in caught.value.messages), caught.value
