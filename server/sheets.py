"""Printable A4 posters: what each poster shows, and the sheet as one standalone HTML file.

The web pages (server/posters.py) and `quality-forms posters` draw the same posters; this
module stays free of the web framework so the command line never loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from server.campaign import Campaign, slogan_for
from server.clock import chinese_date, now
from server.events import Event, Target
from server.forms import Form
from server.paths import STATIC, TEMPLATES
from server.qr import qr_svg


def poster(target: Target, url: str, campaign: Campaign | None) -> dict[str, Any]:
    """What one A4 poster shows: the campaign's year, theme and a slogan (none when the
    campaign file does not give them), and the form or event with its QR code."""
    form: Form = target.form
    event: Event | None = target.event
    year = campaign.year if campaign else int(event.date[:4]) if event and event.date else now().year
    return {
        "year": year,
        "theme": campaign.theme if campaign else "",
        "slogan": slogan_for(campaign, event.code if event else form.id),
        "title": event.title if event else form.title,
        "form_title": form.title,
        "event": event,
        "url": url,
        "short_url": url.split("://", 1)[-1],
        "qr": qr_svg(url),
    }


def sheet_context(posters: list[dict[str, Any]], *, inline_css: str = "") -> dict[str, Any]:
    """A print page of posters, one per A4 page; `inline_css` makes it a standalone file."""
    return {"posters": posters, "inline_css": inline_css}


def render_sheet(posters: list[dict[str, Any]], templates: Path = TEMPLATES, static: Path = STATIC) -> str:
    """The sheet as one standalone HTML file (CSS inline), for `quality-forms posters`."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), autoescape=True)
    environment.filters["chinese_date"] = chinese_date
    css = (static / "poster.css").read_text(encoding="utf-8")
    return environment.get_template("posters.html").render(sheet_context(posters, inline_css=css))
