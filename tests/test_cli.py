"""The command line, run as a user runs it: a subprocess."""

import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.conftest import run, running_server


def test_check_passes_on_good_forms(workdir):
    result = run("check", cwd=workdir)
    assert result.returncode == 0, result.stdout
    assert result.stdout == b""
    assert b"4 form(s) OK, 0 error(s)" in result.stderr


def test_check_prints_each_error_with_file_and_field_and_exits_1(workdir):
    (workdir / "forms" / "broken.toml").write_text(
        'title = "坏"\nkind = "general"\n[[fields]]\nname = "a"\ntype = "slider"\nlabel = "A"\n'
        '[[fields]]\nname = "b"\ntype = "text"\nlabel = "B"\nshow_if = "zz == 1"\n',
        encoding="utf-8",
    )
    result = run("check", cwd=workdir)
    assert result.returncode == 1
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("forms/broken.toml: 字段 'a': 未知的类型")
    assert lines[1].startswith("forms/broken.toml: 字段 'b': show_if 'zz == 1'")


def test_settings_come_from_options_then_environment(workdir):
    os.rename(workdir / "forms", workdir / "elsewhere")
    assert run("check", cwd=workdir).returncode == 2
    assert run("check", cwd=workdir, env={"QF_FORMS": "elsewhere"}).returncode == 0
    assert run("--forms", "elsewhere", "check", cwd=workdir, env={"QF_FORMS": "nowhere"}).returncode == 0
    assert run("check", "--forms", "elsewhere", cwd=workdir).returncode == 0


def test_bad_arguments_are_one_line_on_stderr(workdir):
    for args in (["export", "no-such-form"], ["export", "../etc"], ["frobnicate"], ["export"],
                 ["export", "all-types", "--header", "fancy"]):  # fmt: skip
        result = run(*args, cwd=workdir)
        assert result.returncode != 0
        assert result.stderr.decode().count("\n") == 1, (args, result.stderr)
        assert result.stderr.startswith(b"quality-forms: ")
        assert b"Traceback" not in result.stderr


def test_bad_rate_limit_setting_is_one_line(workdir):
    result = run("check", cwd=workdir, env={"QF_RATE_LIMIT": "lots"})
    assert result.returncode == 2 and result.stderr.decode().count("\n") == 1


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def post_status(port: int, path: str, fields: dict) -> int:
    """POST form data without following redirects; the status code."""
    body = urllib.parse.urlencode(fields, doseq=True).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body)
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as answer:
        return answer.code


def test_serve_runs_the_site_and_export_writes_what_it_stored(workdir):
    with running_server(workdir) as port:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/f/all-types", timeout=5).read().decode()
        key = re.search(r'name="_key" value="([^"]+)"', page).group(1)
        fields = {"_key": key, "unit": "=海口", "topics": ["食品", "电梯"]}
        assert post_status(port, "/f/all-types", fields) == 303
    assert (workdir / "data" / "quality-forms.db").is_file()  # the default database, folder created

    result = run("export", "all-types", "--header", "names", "--out", "-", cwd=workdir)
    assert result.returncode == 0
    lines = result.stdout.split(b"\r\n")
    assert lines[0].startswith(b"\xef\xbb\xbfid,submitted_at,event,unit,")
    assert lines[1].startswith(b"1,") and b",'=\xe6\xb5\xb7\xe5\x8f\xa3," in lines[1]
    assert "食品; 电梯".encode() in lines[1]

    result = run("export", "all-types", cwd=workdir)
    assert result.returncode == 0
    written = Path(workdir / result.stdout.decode().strip())
    assert re.fullmatch(r"exports/all-types-\d{8}-\d{6}\.csv", result.stdout.decode().strip())
    assert written.read_bytes().startswith("\ufeff编号,提交时间,活动,单位".encode())
    assert list(written.parent.glob("*.partial")) == []


def test_export_still_works_after_the_form_file_is_gone(workdir):
    with running_server(workdir) as port:
        assert post_status(port, "/f/all-types", {"unit": "保留的数据"}) == 303
    (workdir / "forms" / "all-types.toml").unlink()
    result = run("export", "all-types", "--out", "-", cwd=workdir)
    assert result.returncode == 0
    assert "保留的数据".encode() in result.stdout
