"""Answers as the office's screens show them: questions by their labels, options by their
labels (`60 岁以上`, never `60plus`), the 其他 text as 「题目」其他, personal answers masked.

Stored values stay what they are; only the names-mode export shows them. A response is read
with every version of its form, newest last, so answers to removed questions or options keep
the words they were asked with.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from server.forms import Field, Form
from server.results import mask, option_words, personal_fields

CONSENTED = "已同意"


class Question(msgspec.Struct, frozen=True):
    """What one stored answer key is: its label, and the field (and grid row) that reads it."""

    label: str
    field: Field | None = None  # None: the 其他 text, shown as typed
    kind: str = "answer"  # "answer", "other" (a choice's 其他 text) or "row" (a grid row's point)


class Reader(msgspec.Struct, frozen=True):
    """How to show the answers of one form: stored key -> question, and the personal keys."""

    questions: dict[str, Question]
    personal: dict[str, Field]
    words: dict[str, dict[str, str]]  # question -> option value -> label, over every version

    def label(self, key: str) -> str:
        question = self.questions.get(key)
        return question.label if question else key

    def text(self, key: str, value: Any) -> str:
        """One answer as a screen shows it (masked when personal in any version)."""
        if key in self.personal:
            return mask(self.personal[key], value)
        question = self.questions.get(key)
        if question is None or question.field is None:
            return mask(None, value)
        if question.kind == "row":
            return f"{value} 分" if value not in (None, "") else ""
        return answer_text(question.field, value, self.words.get(key))

    def cells(self, answers: dict[str, Any]) -> dict[str, str]:
        return {key: self.text(key, value) for key, value in answers.items()}


def reader(definitions: Iterable[Form]) -> Reader:
    """A reader over every version of a form (oldest first: the newest words win)."""
    definitions = list(definitions)
    questions: dict[str, Question] = {}
    for form in definitions:
        for field in form.answer_fields:
            questions[field.name] = Question(field.label, field)
            if field.type in ("choice", "multi"):
                questions[field.other_name] = Question(f"「{field.label}」其他", kind="other")
            if field.type == "grid":
                for name, row in zip(field.answer_names, field.rows, strict=True):
                    questions[name] = Question(f"{field.label}：{row.label}", field, kind="row")
    return Reader(questions, personal_fields(definitions), option_words(definitions))


def answer_text(field: Field, value: Any, words: dict[str, str] | None = None) -> str:
    """A stored answer in words: option labels in the form's order (`words`: the labels of
    every version, for options since removed), points with 分, 已同意."""
    if value is None or value == "" or value == []:
        return ""
    labels = words or {o.value: o.label for o in field.choices}
    if field.type == "choice":
        return labels.get(str(value), str(value))
    if field.type == "multi":
        chosen = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        order = {o.value: i for i, o in enumerate(field.choices)}
        chosen.sort(key=lambda v: order.get(v, len(order)))
        return "、".join(labels.get(v, v) for v in chosen)
    if field.type == "rating":
        named = field.rating_label(int(value)) if isinstance(value, int) else ""
        return f"{value} 分" + (f"（{named}）" if named and named != str(value) else "")
    if field.type == "consent":
        return CONSENTED if value else ""
    return mask(None, value)
