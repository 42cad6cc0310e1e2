"""Settings in one place: each has a name, an environment variable, a default and help.

Command-line options win over the environment, which wins over the defaults.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import msgspec


class Setting(NamedTuple):
    name: str
    env: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    option: bool = True  # also a command-line option (secrets are not: `ps` would show them)


def _rate(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 (off) or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise ValueError("must be more than 0 and at most 3600 seconds")
    return value


def _proxies(text: str) -> str:
    """Addresses and CIDR ranges, comma separated, or `none`; checked here, parsed in proxy.py."""
    if text.strip().lower() == "none":
        return "none"
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        ipaddress.ip_network(item, strict=False)  # ValueError names the bad item
    return ",".join(items)


SETTINGS = (
    Setting("forms", "QF_FORMS", "forms", "folder of form files (*.toml)", Path),
    Setting("db", "QF_DB", "data/quality-forms.db", "SQLite database file, created with its folder", Path),
    Setting("base_url", "QF_BASE_URL", "", "public address printed in QR codes (default http://HOST:PORT)"),
    Setting(
        "rate_limit",
        "QF_RATE_LIMIT",
        600,
        "accepted submissions per minute from one client address; 0 turns it off",
        _rate,
        option=False,  # SPEC §2: QF_RATE_LIMIT only
    ),
    Setting(
        "allowed_hosts",
        "QF_ALLOWED_HOSTS",
        "",
        "host names the server answers to, comma separated (default: the QF_BASE_URL host and localhost, or any)",
        option=False,
    ),
    Setting(
        "trusted_proxies",
        "QF_TRUSTED_PROXIES",
        "127.0.0.1,::1",
        "proxies believed about X-Forwarded-For/-Proto/-Host and Forwarded: addresses or CIDR ranges, "
        "comma separated; none trusts nobody",
        _proxies,
        option=False,  # SPEC §5.1: QF_TRUSTED_PROXIES only
    ),
    Setting(
        "secret_key",
        "QF_SECRET_KEY",
        "",
        "key that signs sign-in tokens; default: made once into secret.key beside the database",
        option=False,
    ),
    Setting(
        "replica_url",
        "QF_REPLICA_URL",
        "",
        "Litestream replica the server streams the database to, e.g. file:///srv/replica or s3://bucket/path",
        option=False,  # SPEC §5.3: QF_REPLICA_URL only (an s3 URL may carry credentials)
    ),
    Setting(
        "webhook_retry",
        "QF_WEBHOOK_RETRY",
        10.0,
        "seconds before a failed webhook delivery is tried again; doubles each time, at most an hour",
        _seconds,
        option=False,
    ),
    Setting(
        "webhook_timeout",
        "QF_WEBHOOK_TIMEOUT",
        10.0,
        "seconds a webhook receiver has to answer",
        _seconds,
        option=False,
    ),
)


class Settings(msgspec.Struct, frozen=True):
    forms: Path = Path("forms")
    db: Path = Path("data/quality-forms.db")
    base_url: str = ""
    rate_limit: int = 600
    allowed_hosts: str = ""
    trusted_proxies: str = "127.0.0.1,::1"
    secret_key: str = ""
    replica_url: str = ""
    webhook_retry: float = 10.0
    webhook_timeout: float = 10.0

    def hosts(self) -> list[str]:
        """The Host headers to answer: as configured, else the public address's, else any."""
        if self.allowed_hosts:
            return [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]
        if self.base_url:
            return [urlsplit(self.base_url).hostname or "*", "localhost", "127.0.0.1"]
        return ["*"]


class SettingError(ValueError):
    pass


def load_settings(options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Options (None = not given) over environment over defaults."""
    options = options or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if options.get(setting.name) is not None:
            raw = options[setting.name]
        elif environ.get(setting.env):
            raw = environ[setting.env]
        else:
            values[setting.name] = setting.parse(str(setting.default)) if setting.default != "" else ""
            continue
        try:
            values[setting.name] = setting.parse(str(raw))
        except ValueError as exc:
            raise SettingError(f"{setting.env}: bad value {raw!r} ({exc})") from None
    values["base_url"] = str(values["base_url"]).rstrip("/")
    return Settings(**values)


def to_environ(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (a server worker) see these settings."""
    return {s.env: str(getattr(settings, s.name)) for s in SETTINGS}
