import pytest

from server.expressions import And, Compare, Contains, ExpressionError, Not, Or, describe, evaluate, parse, to_json


def test_comparison_parses_into_a_tree():
    assert parse('satisfaction <= 2 and venue == "学校"') == And(
        (Compare("satisfaction", "<=", 2), Compare("venue", "==", "学校"))
    )


def test_or_binds_looser_than_and_and_parentheses_override():
    assert parse("a == 1 or b == 2 and c == 3") == Or(
        (Compare("a", "==", 1), And((Compare("b", "==", 2), Compare("c", "==", 3))))
    )
    assert parse("(a == 1 or b == 2) and c == 3") == And(
        (Or((Compare("a", "==", 1), Compare("b", "==", 2))), Compare("c", "==", 3))
    )


def test_in_not_in_and_not():
    assert parse('"电梯" in topics') == Contains("topics", "电梯")
    assert parse('"电梯" not in topics') == Not(Contains("topics", "电梯"))
    assert parse("not a == 1") == Not(Compare("a", "==", 1))


def test_literals_single_quotes_escapes_and_numbers():
    assert parse("a == 'x'") == Compare("a", "==", "x")
    assert parse(r'a == "say \"hi\""') == Compare("a", "==", 'say "hi"')
    assert parse("a >= -1.5") == Compare("a", ">=", -1.5)


@pytest.mark.parametrize(
    "source",
    [
        "",
        "a ==",
        "a == b",
        "== 1",
        "a = 1",
        "(a == 1",
        "a == 1)",
        "a == 1 and",
        "1 in 2",
        "a == 1 b == 2",
        "a == 1; import os",
        "__import__('os')",
    ],
)
def test_malformed_expressions_are_errors_not_eval(source):
    with pytest.raises(ExpressionError):
        parse(source)


@pytest.mark.parametrize(
    ("source", "answers", "expected"),
    [
        ("s <= 2", {"s": 2}, True),
        ("s <= 2", {"s": 3}, False),
        ("s <= 2", {}, False),
        ('v != "x"', {}, False),  # unanswered: every comparison is false
        ('v != "x"', {"v": "y"}, True),
        ('not v == "x"', {}, True),
        ('"a" in t', {"t": ["a", "b"]}, True),
        ('"c" in t', {"t": ["a", "b"]}, False),
        ('"a" in t', {}, False),
        ('s > 1 and ("a" in t or v == "x")', {"s": 2, "v": "x"}, True),
    ],
)
def test_evaluation(source, answers, expected):
    assert evaluate(parse(source), answers) is expected


def test_description_reads_in_chinese():
    labels = {"s": "满意度", "v": "场所"}
    text = describe(parse('s <= 2 and v == "school"'), lambda f, v: labels[f] if v is None else {"school": "学校"}[v])
    assert text == "「满意度」≤ 2 且 「场所」为“学校”"


def test_json_tree_for_the_browser():
    assert to_json(parse('"a" in t or not s > 1')) == (
        '{"type":"or","items":[{"type":"in","field":"t","value":"a"},'
        '{"type":"not","item":{"type":"cmp","field":"s","op":">","value":1}}]}'
    )
