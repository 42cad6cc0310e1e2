"""What every handler may need, made once per application and injected as `ctx`."""

from __future__ import annotations

from dataclasses import dataclass

from server.forms import FormCatalog
from server.ratelimit import RateLimiter
from server.settings import Settings
from server.storage import Store


@dataclass
class Context:
    settings: Settings
    catalog: FormCatalog
    store: Store
    limiter: RateLimiter
    secret_key: bytes
