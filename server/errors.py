"""One error type for what people write that breaks the rules (a form file, the campaign
file, an event or schedule, an XLSForm workbook): a list of Chinese lines, one per problem,
for a page to list or the command line to print. Each source has its own subclass, so a
caller can catch one kind or all of them."""

from __future__ import annotations


class InputError(ValueError):
    """Something a person wrote breaks the rules; `messages` holds one Chinese line per problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages
