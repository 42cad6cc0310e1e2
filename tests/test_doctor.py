"""`quality-forms doctor`: one line per finding, exit 1 when any is an error."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time

from tests.conftest import run, running_server


def lines(done) -> list[str]:
    return done.stdout.decode().splitlines()


def wait_for_replica(folder, seconds: float = 30) -> None:
    """Litestream writes its first copy within a second or so of starting; on a loaded machine later."""
    deadline = time.monotonic() + seconds
    while not any(folder.rglob("*.ltx")):
        assert time.monotonic() < deadline, f"Litestream wrote nothing to {folder} in {seconds} s"
        time.sleep(0.1)


def test_a_sound_deployment_gets_only_ok_lines(workdir):
    env = {
        "QF_BASE_URL": "https://forms.example.cn",
        "QF_REPLICA_URL": (workdir / "replica").as_uri(),
        "QF_TRUSTED_PROXIES": "10.0.0.0/8",
    }
    with running_server(workdir, env=env):
        wait_for_replica(workdir / "replica")
        assert run("backup", cwd=workdir).returncode == 0
        done = run("doctor", cwd=workdir, env=env)
    assert (done.returncode, done.stderr) == (0, b"")
    found = lines(done)
    assert found[:3] == [
        "ok: QF_BASE_URL is https://forms.example.cn",
        "ok: trusted proxies: 10.0.0.0/8",
        "ok: database data/quality-forms.db takes writes (WAL)",
    ]
    assert re.fullmatch(r"ok: [\d.]+ GB free on the database's disk \(data\)", found[3])
    assert re.fullmatch(r"ok: newest backup data/backups/quality-forms-\d{8}-\d{6}\.db is \d s old", found[4])
    assert re.fullmatch(rf"ok: replica {env['QF_REPLICA_URL']} last written \d+ s ago", found[5])
    assert found[6:] == [
        "ok: data/secret.key is readable by its owner only",
        "ok: 4 form(s) in forms load without errors",
    ]


def test_each_problem_is_one_line_and_errors_exit_1(workdir):
    assert run("event", "list", cwd=workdir).returncode == 0  # creates the database
    db = workdir / "data" / "quality-forms.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
    key = workdir / "data" / "secret.key"
    key.write_text("a key copied in by hand")
    key.chmod(0o644)
    (workdir / "forms" / "broken.toml").write_text('title = "坏表"\n', encoding="utf-8")
    env = {"QF_BASE_URL": "http://forms.example.cn", "QF_TRUSTED_PROXIES": "0.0.0.0/0", "QF_REPLICA_URL": ""}
    done = run("doctor", cwd=workdir, env=env)
    assert done.returncode == 1
    found = lines(done)
    assert found[:4] == [
        "warning: QF_BASE_URL http://forms.example.cn is not https: sign-in passwords would cross the network in clear",
        "error: QF_TRUSTED_PROXIES 0.0.0.0/0 trusts every address: any client can claim any address",
        "error: data/quality-forms.db is in journal mode delete, not wal: `quality-forms serve` sets it",
        "ok: database data/quality-forms.db takes writes",
    ]
    assert re.fullmatch(r"ok: [\d.]+ GB free on the database's disk \(data\)", found[4])
    assert found[5:7] == [
        "error: no backup in data/backups and QF_REPLICA_URL is not set: a dead disk would lose every answer",
        "error: data/secret.key holds the key that signs sign-ins and is mode 0644: `chmod 600 data/secret.key`",
    ]
    assert found[7].startswith("error: form: ") and "broken.toml" in found[7]
    assert all(line.startswith(("ok: ", "warning: ", "error: ")) for line in found)


def test_without_a_database_or_forms_the_doctor_says_so(tmp_path):
    done = run("doctor", cwd=tmp_path, env={"QF_BASE_URL": "", "QF_TRUSTED_PROXIES": "none", "QF_REPLICA_URL": ""})
    assert done.returncode == 1
    found = lines(done)
    assert found[:3] == [
        "warning: QF_BASE_URL is not set: QR codes and links use the address each request came to",
        "ok: QF_TRUSTED_PROXIES is none: forwarded headers are ignored (no proxy in front)",
        "warning: no database at data/quality-forms.db yet: `quality-forms serve` creates it",
    ]
    assert found[-1] == "error: no forms folder at forms"


def test_a_replica_behind_the_database_is_a_warning(workdir):
    env = {"QF_REPLICA_URL": (workdir / "replica").as_uri()}
    with running_server(workdir, env=env):
        wait_for_replica(workdir / "replica")
    ten_minutes_ago = time.time() - 600
    for path in (workdir / "replica").rglob("*"):
        os.utime(path, (ten_minutes_ago, ten_minutes_ago))  # as if Litestream had stopped then
    done = run("doctor", cwd=workdir, env=env)
    [line] = [line for line in lines(done) if "replica" in line]
    assert re.fullmatch(
        rf"warning: replica {env['QF_REPLICA_URL']} last written 10 min ago, (9|10) min before the database's"
        " last change: is Litestream running\\?",
        line,
    ), line


def test_forms_nobody_could_submit_today_are_warnings_as_check_gives_them(tmp_path):
    from tests.conftest import BUNDLED_FORMS

    (tmp_path / "forms").mkdir()
    for path in BUNDLED_FORMS.glob("*.toml"):
        (tmp_path / "forms" / path.name).write_bytes(path.read_bytes())
    env = {"QF_NOW": "2027-09-15T10:00:00"}  # next September, before the office updates campaign.toml
    checked = run("check", cwd=tmp_path, env=env)
    warned = [line for line in checked.stdout.decode().splitlines() if line.startswith("警告：")]
    assert warned, checked.stdout.decode()
    done = run("doctor", cwd=tmp_path, env=env)
    assert [line for line in lines(done) if "警告：" in line] == [f"warning: form: {line}" for line in warned]
