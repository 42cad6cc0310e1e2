"""Where the product's own files are: templates, static assets, the vendored htmx.

Their own module so that the command line (posters) finds them without importing the web app.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"
VENDOR = ROOT / "node_modules" / "htmx.org" / "dist"
