"""The privacy notice stands beside the personal questions; one consent box, only when needed."""

import re

from tests.conftest import client_with_forms, stored_answers, submission_key

FORM = """
title = "回访登记"
kind = "general"
privacy = "姓名和电话只用于回访，活动结束后删除。"

[[fields]]
name = "satisfaction"
type = "rating"
label = "满意度"

[[fields]]
name = "name"
type = "text"
label = "姓名"
personal = true

[[fields]]
name = "agree"
type = "consent"
label = "我同意工作人员按个人信息说明回访我"
required = true
"""


def post(client, path, data):
    page = client.get(path)
    return client.post(path, data=data | {"_key": submission_key(page.text)}, follow_redirects=False)


def test_the_notice_is_folded_beside_the_first_personal_question_and_the_box_above_submit(client):
    page = client.get("/f/all-types").text
    first_question = page.index('id="q-unit"')
    notice = page.index('<div class="privacy">')
    assert first_question < notice < page.index('id="q-name"')  # question 1 comes first, not a page of notice
    assert re.search(r"<details><summary>个人信息说明</summary><p>姓名和电话只用于回访", page)
    box = page.index('id="q-_consent"')
    assert page.index('id="q-agree"') < box < page.index('<button type="submit"')


def test_anonymous_answers_need_no_consent_and_personal_ones_do(client):
    assert post(client, "/f/all-types", {"unit": "海口一中"}).status_code == 303
    refused = post(client, "/f/all-types", {"unit": "海口一中", "name": "张三"})
    assert refused.status_code == 422 and "请先阅读并勾选同意" in refused.text
    assert post(client, "/f/all-types", {"unit": "海口一中", "name": "张三", "_consent": "yes"}).status_code == 303


def test_a_form_with_its_own_required_consent_gets_no_second_box(tmp_path):
    with client_with_forms(tmp_path, visit=FORM) as client:
        page = client.get("/f/visit").text
        assert 'name="_consent"' not in page and page.count('type="checkbox"') == 1
        assert "个人信息说明" in page  # the notice is still there, beside the name
        answer = post(client, "/f/visit", {"satisfaction": "5", "name": "李四", "agree": "yes"})
        assert answer.status_code == 303  # the form's own fields are enough
        assert post(client, "/f/visit", {"satisfaction": "5", "name": "李四"}).status_code == 422
        assert stored_answers(client) == [{"satisfaction": 5, "name": "李四", "agree": True}]
