"""The campaign file: this year's facts as data, forms that take their dates from it, and
warnings about forms nobody could submit today (SPEC §5.2)."""

import datetime as dt
import os
import re
import time
from pathlib import Path

import pytest

from server.campaign import Campaign, load_campaign
from server.clock import CHINA, now
from server.forms import Form, FormCatalog, FormError, load_form
from server.readiness import folder_warnings, form_warnings
from tests.conftest import (
    BUNDLED_FORMS,
    CAMPAIGN_2022,
    TEST_FORMS,
    forms_folder,
    make_app_client,
    run,
    signed_in_admin,
    submission_key,
)

BUNDLED_CAMPAIGN = BUNDLED_FORMS / "campaign.toml"
NEXT_SEPTEMBER = dt.datetime(2027, 9, 15, 10, 0, tzinfo=CHINA)
TOWNSHIP_DATE = (
    '[[fields]]\nname = "attended_on"\ntype = "date"\nlabel = "参加日期"\nrequired = true\n'
    'min = "campaign.starts"\nmax = "campaign.ends"\n'
)


def campaign_for(year: int) -> str:
    """The bundled campaign file as the office rewrites it for another year: only the
    year and the days change (the theme and slogans are theirs to add)."""
    text = BUNDLED_CAMPAIGN.read_text(encoding="utf-8")
    old = load_campaign(BUNDLED_CAMPAIGN).year
    return re.sub(rf"^(year = |starts = |ends = ){old}", rf"\g<1>{year}", text, flags=re.MULTILINE)


def answers_for(form: Form, day: dt.date) -> dict[str, str | list[str]]:
    """What a resident who came today sends: every question answered but the personal ones."""
    data: dict[str, str | list[str]] = {}
    for field in form.answer_fields:
        if field.personal:
            continue
        if field.type in ("text", "textarea"):
            data[field.name] = "琼海市博鳌镇"
        elif field.type in ("integer", "number"):
            data[field.name] = str(field.min if field.min is not None else 1)
        elif field.type == "date":
            data[field.name] = day.isoformat()
        elif field.type == "choice":
            data[field.name] = field.choices[0].value
        elif field.type == "multi":
            data[field.name] = [o.value for o in field.choices[: max(1, field.min_choices or 0)]]
        elif field.type == "rating":
            data[field.name] = str(field.scale)
        elif field.type == "consent":
            data[field.name] = "on"
        elif field.type == "region":
            data[field.name] = "白沙/牙叉" if field.levels == 2 else "白沙"
        elif field.type == "grid":
            data |= dict.fromkeys(field.answer_names, str(field.scale))
    return data


def submit_every_form(client, day: dt.date) -> dict[str, int]:
    """Each form's answer to a resident's submission: its status code."""
    statuses = {}
    for form in filter(lambda form: form.is_public, client.app.state["context"].catalog.all()):
        page = client.get(f"/f/{form.id}")
        data = answers_for(form, day) | {"_key": submission_key(page.text)}
        statuses[form.id] = client.post(f"/f/{form.id}", data=data, follow_redirects=False).status_code
    return statuses


# Every bundled form can be submitted, this year and next ------------------------------------


@pytest.mark.parametrize("which", ["starts", "ends"])
def test_every_bundled_form_can_be_submitted_on_the_days_of_the_campaign(tmp_path, clock, which):
    day = getattr(load_campaign(BUNDLED_CAMPAIGN), which)
    clock(dt.datetime.combine(day, dt.time(15, 0), CHINA))
    with make_app_client(tmp_path, forms=BUNDLED_FORMS) as client:
        campaign = client.app.state["context"].catalog.campaign
        assert form_warnings(client.app.state["context"].catalog.all(), campaign) == []
        assert submit_every_form(client, day) == {
            "consumer-survey": 303,
            "five-into-session": 303,
            "quality-quiz": 303,
            "township-event": 303,
        }


def test_next_september_needs_only_a_new_campaign_file(tmp_path, clock):
    clock(NEXT_SEPTEMBER)
    stale = forms_folder(tmp_path / "stale", BUNDLED_CAMPAIGN, forms=BUNDLED_FORMS)
    with make_app_client(tmp_path / "before", forms=stale) as client:
        assert submit_every_form(client, NEXT_SEPTEMBER.date())["township-event"] == 422
    fresh = forms_folder(tmp_path / "fresh", campaign_for(2027), forms=BUNDLED_FORMS)
    with make_app_client(tmp_path / "after", forms=fresh) as client:
        assert submit_every_form(client, NEXT_SEPTEMBER.date()) == {
            "consumer-survey": 303,
            "five-into-session": 303,
            "quality-quiz": 303,
            "township-event": 303,
        }
        assert client.get("/f/township-event").text.count('min="2027-09-01" max="2027-12-31"') == 1


def test_check_warns_next_september_until_the_campaign_file_is_renewed(tmp_path):
    stale = forms_folder(tmp_path / "stale", BUNDLED_CAMPAIGN, forms=BUNDLED_FORMS)
    old = load_campaign(BUNDLED_CAMPAIGN)
    result = run("check", cwd=tmp_path, env={"QF_FORMS": str(stale), "QF_NOW": "2027-09-15T10:00:00"})
    assert result.returncode == 0  # warnings leave the exit status alone
    assert result.stdout.decode().splitlines() == [
        f"警告：campaign.toml 是 {old.year} 年的活动，今年是 2027 年：请按今年的“质量月”通知更新 year、主题、口号和活动日期",
        f"警告：问卷 township-event（“质量文化乡镇行”活动问卷）正在开放，但必填的日期题“您是哪一天参加活动的？”"
        f"最晚只能填 {old.ends}，今天（2027-09-15）参加活动的人无法提交",
    ]
    assert b"5 form(s) OK, 0 error(s)" in result.stderr  # three campaign forms, the quiz, the event report
    fresh = forms_folder(tmp_path / "fresh", campaign_for(2027), forms=BUNDLED_FORMS)
    result = run("check", cwd=tmp_path, env={"QF_FORMS": str(fresh), "QF_NOW": "2027-09-15T10:00:00"})
    assert (result.returncode, result.stdout) == (0, b"")


# The clock ------------------------------------------------------------------------------------


def test_the_clock_stops_where_a_test_or_drill_sets_it(clock, monkeypatch):
    monkeypatch.setenv("QF_NOW", "2027-09-15T10:00:00")
    assert now() == NEXT_SEPTEMBER
    clock(dt.datetime(2027, 9, 30, 23, 59, 59, 999, tzinfo=dt.UTC))  # the test's setting wins
    assert now() == dt.datetime(2027, 10, 1, 7, 59, 59, tzinfo=CHINA)
    clock(None)
    assert now() == NEXT_SEPTEMBER
    monkeypatch.delenv("QF_NOW")
    assert abs(now() - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


# The facts: this year's file and 2022's history -----------------------------------------------


def test_the_2022_notice_stays_available_as_history():
    history = load_campaign(CAMPAIGN_2022)
    assert (history.year, history.theme) == (2022, "推动质量变革创新 促进质量强国建设")
    assert len(history.slogans) == 15 and history.slogans[-1] == "人人创造质量 人人享受质量"
    assert len(history.organizers) == 21 and history.organizers[0] == "省市场监督管理局"
    assert (history.starts, history.ends) == (dt.date(2022, 9, 1), dt.date(2022, 10, 31))


def test_no_theme_or_slogan_is_written_in_the_code():
    code = "".join(p.read_text(encoding="utf-8") for p in (BUNDLED_FORMS.parent / "server").glob("*.py"))
    code += "".join(p.read_text(encoding="utf-8") for p in (BUNDLED_FORMS.parent / "templates").rglob("*.html"))
    for fact in (*load_campaign(CAMPAIGN_2022).slogans, "推动质量变革创新"):
        assert fact not in code


def test_the_landing_page_and_posters_show_the_configured_theme_and_year(tmp_path):
    forms = forms_folder(tmp_path / "source", CAMPAIGN_2022)
    with make_app_client(tmp_path, forms=forms) as client:
        landing = client.get("/").text
        poster = client.get("/f/all-types/poster").text
    assert '<p class="hero-kicker">2022年“质量月”活动</p>' in landing
    assert '<h1 class="hero-theme">推动质量变革创新 促进质量强国建设</h1>' in landing
    assert "<p>联系我们：省质量强省办（省市场监督管理局） 0898-65396470</p>" in landing
    assert '<p class="poster-campaign">2022年“质量月”活动</p>' in poster
    assert '<p class="poster-theme">推动质量变革创新 促进质量强国建设</p>' in poster
    slogan = re.search(r'<p class="poster-slogan">([^<]+)</p>', poster).group(1)
    assert slogan in load_campaign(CAMPAIGN_2022).slogans


def test_without_a_theme_the_pages_show_the_year_alone(tmp_path):
    forms = forms_folder(tmp_path / "source", "year = 2026\n")
    with make_app_client(tmp_path, forms=forms) as client:
        landing = client.get("/").text
        poster = client.get("/f/all-types/poster").text
    assert '<h1 class="hero-theme">2026年“质量月”活动</h1>' in landing and "hero-kicker" not in landing
    assert '<p class="poster-campaign">2026年“质量月”活动</p>' in poster
    assert "poster-theme" not in poster and "poster-slogan" not in poster


def test_the_events_page_offers_the_campaigns_organizers(tmp_path):
    forms = forms_folder(tmp_path / "source", 'year = 2026\norganizers = ["省教育厅", "某某县市场监管局"]\n')
    with make_app_client(tmp_path, forms=forms) as client:
        signed_in_admin(client)
        page = client.get("/admin/events").text
    assert re.findall(r'<datalist id="organizers">(.*?)</datalist>', page) == [
        '<option value="省教育厅"><option value="某某县市场监管局">'
    ]


# Reading the campaign file --------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_a_date_takes_its_bounds_from_the_campaign(tmp_path):
    write(tmp_path, "campaign.toml", "year = 2026\nstarts = 2026-09-01\nends = 2026-09-30\n")
    form = load_form(write(tmp_path, "visit.toml", 'title = "T"\nkind = "general"\n' + TOWNSHIP_DATE))
    assert (form.field("attended_on").min, form.field("attended_on").max) == ("2026-09-01", "2026-09-30")


@pytest.mark.parametrize(
    "campaign, problem",
    [
        (None, "用了 'campaign.starts'，但同一文件夹里没有可用的 campaign.toml（没有这个文件，或它有错误）"),
        ("year = 2026\nends = 2026-09-30\n", "用了 'campaign.starts'，但 campaign.toml 没有设 starts"),
        ("year = 2026\nstarts = 2026-09-01\n", "用了 'campaign.ends'，但 campaign.toml 没有设 ends"),
        (
            'year = "今年"\n',
            "用了 'campaign.starts'，但同一文件夹里没有可用的 campaign.toml（没有这个文件，或它有错误）",
        ),
    ],
)
def test_a_form_that_needs_a_missing_campaign_day_names_it(tmp_path, campaign, problem):
    if campaign is not None:
        write(tmp_path, "campaign.toml", campaign)
    path = write(tmp_path, "visit.toml", 'title = "T"\nkind = "general"\n' + TOWNSHIP_DATE)
    with pytest.raises(FormError) as caught:
        load_form(path)
    assert caught.value.messages[0] == f"{path}: 字段 'attended_on': {problem}"


@pytest.mark.parametrize(
    "text, problem",
    [
        ('theme = "质量"\n', "year 必须是年份，如 year = 2026"),
        ("year = 2026\ntheme = 1\n", "theme 必须是文字"),
        ('year = 2026\nslogans = "一条"\n', 'slogans 必须是文字列表，如 slogans = ["……", "……"]'),
        ('year = 2026\norganizers = ["", "省教育厅"]\n', 'organizers 必须是文字列表，如 organizers = ["……", "……"]'),
        ("year = 2026\nstarts = 2026-09-01T08:00:00\n", "starts 必须是日期，如 starts = 2026-09-01"),
        ("year = 2026\nstarts = 2026-10-01\nends = 2026-09-30\n", "starts 不能晚于 ends"),
        (
            'year = 2026\nslogan = "一条"\n',
            "未知的设置项 'slogan'（可用：year、theme、slogans、starts、ends、organizers、contact）",
        ),
        ("year = 2026\nslogans = " + "[" * 600 + "]" * 600 + "\n", "数组或表嵌套太深"),
        ("year = 2026\ntheme = [", "文件末尾：文件在一个值写完之前就结束了：是否少了「]」「}」或结尾的引号？"),
    ],
)
def test_check_names_each_problem_of_the_campaign_file_and_keeps_the_other_forms(workdir, text, problem):
    write(workdir / "forms", "campaign.toml", text)
    result = run("check", cwd=workdir)
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert result.stdout.decode().splitlines() == [f"forms/campaign.toml: {problem}"]
    assert b"4 form(s) OK, 1 error(s)" in result.stderr


def test_the_server_rereads_the_campaign_file_and_the_forms_that_use_it(tmp_path):
    campaign = write(tmp_path, "campaign.toml", "year = 2026\nstarts = 2026-09-01\nends = 2026-09-30\n")
    write(tmp_path, "visit.toml", 'title = "T"\nkind = "general"\n' + TOWNSHIP_DATE)
    catalog = FormCatalog(tmp_path, rescan_seconds=0)
    assert catalog.campaign == Campaign(2026, starts=dt.date(2026, 9, 1), ends=dt.date(2026, 9, 30))
    assert catalog.get("visit").field("attended_on").max == "2026-09-30"
    campaign.write_text("year = 2027\nstarts = 2027-09-01\nends = 2027-10-31\n", encoding="utf-8")
    os.utime(campaign, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert catalog.get("visit").field("attended_on").max == "2027-10-31"
    assert catalog.campaign.year == 2027
    campaign.write_text("year = [", encoding="utf-8")
    os.utime(campaign, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert catalog.get("visit") is None and catalog.campaign is None
    assert catalog.errors[0].startswith(f"{campaign}: 文件末尾：")


def test_the_campaign_file_is_not_a_form(client):
    assert client.get("/f/campaign").status_code == 404


# Warnings: forms nobody could submit today ----------------------------------------------------


def test_a_required_date_whose_range_has_passed_is_warned_about(tmp_path, clock):
    clock(dt.datetime(2026, 11, 25, 9, 0, tzinfo=CHINA))
    path = write(tmp_path, "visit.toml", 'title = "走访"\nkind = "general"\n' + TOWNSHIP_DATE)
    path.write_text(
        path.read_text().replace('"campaign.starts"', "2022-09-01").replace('"campaign.ends"', "2022-10-31")
    )
    form = load_form(path)
    assert form_warnings([form], None) == [
        "问卷 visit（走访）正在开放，但必填的日期题“参加日期”最晚只能填 2022-10-31，今天（2026-11-25）参加活动的人无法提交"
    ]
    assert form_warnings([form], None, at=dt.datetime(2022, 10, 31, 23, 0, tzinfo=CHINA)) == []
    optional = load_form(write(tmp_path, "optional.toml", path.read_text().replace("required = true", "")))
    assert form_warnings([optional], None) == []


def test_check_and_the_dashboard_warn_about_a_closed_form_with_events_still_ahead(tmp_path):
    with make_app_client(tmp_path, forms=TEST_FORMS) as client:
        context = client.app.state["context"]
        env = {"QF_FORMS": str(context.settings.forms), "QF_DB": str(context.settings.db)}
        assert run("check", cwd=tmp_path, env=env).stdout == b""
        code = run("event", "add", "closed", "--title", "赶集宣传", cwd=tmp_path, env=env).stdout.decode().split()[0]
        expected = (
            f"问卷 closed（已结束的问卷）已于 2022-09-30 23:59 截止，但还有 1 个活动在用它（如 {code}“赶集宣传”）："
            "扫这些活动二维码的群众无法提交"
        )
        result = run("check", cwd=tmp_path, env=env)
        assert (result.returncode, result.stdout.decode()) == (0, f"警告：{expected}\n")
        signed_in_admin(client)
        page = client.get("/admin/").text
        assert f"<li>警告：{expected}</li>" in page
        past = run("event", "add", "closed", "--title", "旧活动", "--date", "2022-09-20", cwd=tmp_path, env=env)
        assert past.returncode == 0  # an event long over is history, not a warning
        assert run("check", cwd=tmp_path, env=env).stdout.decode() == f"警告：{expected}\n"


def test_the_dashboard_shows_no_warning_box_when_all_is_well(tmp_path):
    with make_app_client(tmp_path, forms=TEST_FORMS) as client:
        signed_in_admin(client)
        page = client.get("/admin/")
    assert page.status_code == 200 and "警告" not in page.text


def test_folder_warnings_need_no_database(tmp_path):
    forms = forms_folder(tmp_path / "forms", "year = 2022\n")
    assert folder_warnings(forms, tmp_path / "none.db", at=NEXT_SEPTEMBER) == [
        "campaign.toml 是 2022 年的活动，今年是 2027 年：请按今年的“质量月”通知更新 year、主题、口号和活动日期"
    ]
    assert not (tmp_path / "none.db").exists()
