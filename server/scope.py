"""Who sees what in the office: one access model for every office page, count and download.

- `admin`: everything.
- `staff`: the events the account made in the browser, and their responses.
- `county`: every event of its 市县, whoever made it (a schedule imported on the command
  line too), and their responses.
- `organizer`: every event whose 主办单位 is its unit (one of the campaign's co-hosts),
  exactly as the event names it, and their responses.

A response sent from a form's own page carries no event, so it belongs to no county and to
nobody's events: only admins see it. Every account sees the list of forms; of a form's
responses, only those of the events it sees. The audit log and deleting are for admins.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec


class ScopedEvent(Protocol):
    """What the model needs to know of an event (an `events.Event`)."""

    @property
    def county(self) -> str: ...

    @property
    def created_by(self) -> str: ...

    @property
    def organizer(self) -> str: ...


class Scope(msgspec.Struct, frozen=True):
    """The events an account may see: those it made (`created_by`), those of a 市县
    (`county`), those of a co-host (`organizer`), or, with none, every event and every response."""

    created_by: str | None = None
    county: str | None = None
    organizer: str | None = None

    @property
    def everything(self) -> bool:
        return self.created_by is None and self.county is None and self.organizer is None

    def sees(self, event: ScopedEvent | None) -> bool:
        """Whether this scope holds the event (None: a response without an event)."""
        if self.everything:
            return True
        if event is None:
            return False
        if self.county is not None:
            return event.county == self.county
        if self.organizer is not None:
            return event.organizer == self.organizer
        return event.created_by == self.created_by

    def events_sql(self, alias: str = "e") -> tuple[str, list[Any]]:
        """An SQL condition on the `events` table (as `alias`) for the events in scope."""
        if self.county is not None:
            return f"{alias}.county = ?", [self.county]
        if self.organizer is not None:
            return f"{alias}.organizer = ?", [self.organizer]
        if self.created_by is not None:
            return f"{alias}.created_by = ?", [self.created_by]
        return "1", []

    def responses_sql(self, column: str = "r.event") -> tuple[str, list[Any]]:
        """An SQL condition on a response's event code: its event is in scope (no event: admins only)."""
        if self.everything:
            return "1", []
        condition, params = self.events_sql("scoped")
        return f"{column} IN (SELECT scoped.code FROM events scoped WHERE {condition})", params


EVERYTHING = Scope()


def scope_for(role: str, username: str, county: str = "", organizer: str = "") -> Scope:
    """The scope of an account. A county or organizer account without its county or unit sees
    nothing rather than every event without one (the table refuses such a row; a second lock)."""
    if role == "admin":
        return EVERYTHING
    if role == "county":
        return Scope(county=county or NOTHING)
    if role == "organizer":
        return Scope(organizer=organizer or NOTHING)
    return Scope(created_by=username or NOTHING)


NOTHING = "\x00"  # no event's county, unit or creator
