"""Quizzes (质量知识竞答): a response scored against the form's right answers.

Pure functions, no HTTP and no database: the thank-you page, the results page and the
exports all score the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from server.forms import Field, Form


class Correction(msgspec.Struct, frozen=True):
    """A question answered wrongly (or not at all), with what was right and why."""

    label: str
    given: str
    right: str
    explain: str


class Grade(msgspec.Struct, frozen=True):
    score: int
    total: int
    corrections: list[Correction]


def right_values(field: Field) -> list[str]:
    """The right option values, in definition order (as a multi answer is stored)."""
    wanted = {field.answer} if isinstance(field.answer, str) else set(field.answer or ())
    return [o.value for o in field.options if o.value in wanted]


def is_right(field: Field, value: Any) -> bool:
    if field.type == "multi":
        return isinstance(value, list) and sorted(value) == sorted(right_values(field))
    return value == field.answer


def grade(form: Form, answers: Mapping[str, Any]) -> Grade:
    corrections = []
    score = 0
    for field in form.quiz_fields:
        value = answers.get(field.name)
        if is_right(field, value):
            score += 1
            continue
        given = value if isinstance(value, list) else [] if value is None else [value]
        corrections.append(
            Correction(
                field.label,
                "、".join(field.option_label(str(v)) for v in given),
                "、".join(field.option_label(v) for v in right_values(field)),
                field.explain,
            )
        )
    return Grade(score, len(form.quiz_fields), corrections)


def scorer(form: Form) -> Callable[[Mapping[str, Any]], int] | None:
    """The score of a response's answers, for exports; None when the form is not a quiz."""
    fields = form.quiz_fields
    if not fields:
        return None
    return lambda answers: sum(is_right(f, answers.get(f.name)) for f in fields)
