"""Docs that cannot rot: every field type and command is documented."""

import re

import pytest

from server.cli import build_parser
from server.forms import TYPE_KEYS
from server.settings import SETTINGS
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
GUIDE = ROOT / "docs" / "form-guide.zh.md"


@pytest.mark.parametrize("field_type", sorted(TYPE_KEYS))
def test_every_field_type_is_in_the_readme_and_the_chinese_guide(field_type):
    assert f"| `{field_type}` |" in README
    assert f"`{field_type}`" in GUIDE.read_text(encoding="utf-8")


def test_every_command_is_in_the_readme():
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in commands:
        assert re.search(rf"`quality-forms {name}\b", README), name


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env)
def test_every_setting_is_in_the_readme(setting):
    assert f"`{setting.env}`" in README


def test_the_readme_names_exactly_the_two_make_commands():
    block = README.split("## The two commands", 1)[1].split("```", 2)[1]
    assert [line.split()[0:2] for line in block.strip().splitlines()[1:]] == [["make", "serve"], ["make", "test"]]


def test_ci_runs_the_readme_test_command():
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")
