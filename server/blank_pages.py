"""Pages rendered and compressed once per form version (and event): blank forms, thank-yous.

Drawing the questions is most of the cost of a page view, and gzip of the page is more
than drawing; yet a blank page differs from view to view only in its submission key. The
page is kept as the bytes before and after the key, plain and gzipped around it
(`compression.Spliced`), so a view joins three pieces. A thank-you page has nothing per view
at all (but a quiz's score, which is never kept): it is kept whole, plain and gzipped.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from server.compression import Spliced, gzip_once

KEY_SLOT = "QF-SUBMISSION-KEY-SLOT"  # never a real key: keys are 24 URL-safe characters
KEPT = 512  # pages kept; past this the cache starts again (forms and events are far fewer)


class BlankPage:
    def __init__(self, html: str, key_length: int) -> None:
        prefix, slot, suffix = html.encode("utf-8").partition(KEY_SLOT.encode())
        if not slot or KEY_SLOT.encode() in suffix:
            raise ValueError("a blank page carries the key slot exactly once")
        self.prefix = prefix
        self.suffix = suffix
        self.gzipped = Spliced(prefix, suffix, key_length)

    def body(self, key: str, *, gzip: bool) -> bytes:
        key_bytes = key.encode("ascii")
        if gzip:
            return self.gzipped.with_middle(key_bytes)
        return b"".join((self.prefix, key_bytes, self.suffix))


_pages: dict[Hashable, BlankPage] = {}


def kept(slot: Hashable) -> BlankPage | None:
    """The page kept for `slot`, if it was rendered before."""
    return _pages.get(slot)


def blank_page(slot: Hashable, render: Callable[[str], str], key_length: int) -> BlankPage:
    """The page kept for `slot`, or `render(KEY_SLOT)` made into one."""
    page = _pages.get(slot)
    if page is None:
        page = BlankPage(render(KEY_SLOT), key_length)
        if len(_pages) >= KEPT:
            _pages.clear()
        _pages[slot] = page
    return page


class WholePage:
    def __init__(self, html: str) -> None:
        self.body = html.encode("utf-8")
        self.gzipped = gzip_once(self.body)


_whole: dict[Hashable, WholePage] = {}


def kept_whole(slot: Hashable) -> WholePage | None:
    """The whole page kept for `slot`, if it was rendered before."""
    return _whole.get(slot)


def whole_page(slot: Hashable, render: Callable[[], str]) -> WholePage:
    """The page kept for `slot`, or `render()` kept."""
    page = _whole.get(slot)
    if page is None:
        page = WholePage(render())
        if len(_whole) >= KEPT:
            _whole.clear()
        _whole[slot] = page
    return page
