"""The front door: every HTTP request passes here, before routing.

- From a trusted proxy (`QF_TRUSTED_PROXIES`, SPEC §5.1) the request is rewritten to what
  the browser sent: its address, scheme and host. Everything downstream (the rate limit,
  the sign-in throttle, the audit log, `Secure` cookies, the Origin check, QR codes) then
  sees the real ones. From any other peer the forwarding headers change nothing.
- Only allowed host names are answered; anything else gets the Chinese 400 page. The raw
  header is checked with string work, so no URL object is built per request.
- Every answer carries the security headers, error pages and static files included.
- A browser that takes gzip gets text answers gzipped (`server/compression.py`); for any
  other request nothing about compression runs at all.

Granian's `wrap_asgi_with_proxy_headers` reads neither `X-Forwarded-Host` nor `Forwarded`
and parses addresses on every request, and Litestar has no such middleware: hence this one.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple

from server.compression import GzipSend, accepts_gzip

Message = MutableMapping[str, Any]
ASGIApp = Callable[..., Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]  # a whole answer: status, headers and body
# An answer made without the app (see server/shortcuts.py), or None, and the `receive` the
# app must then use (the shortcut may have read the body already).
Shortcut = Callable[[MutableMapping[str, Any], Receive], Awaitable[tuple[Reply | None, Receive]]]

# A DNS name has at most 253 characters and an IPv6 literal 45 inside brackets: a longer Host
# is nobody's name, and it would make QR codes too big to draw quickly (or at all).
HOST = re.compile(rb"([a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\])(:[0-9]{1,5})?", re.IGNORECASE)
MAX_HOST = 253 + 6
FORWARDING = (b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
_REMEMBERED = 4096


class Hop(NamedTuple):
    """What one proxy said about the request it received: from whom, by which scheme, for which host."""

    address: str  # "" when the proxy did not say or said something that is not an address
    scheme: str
    host: str


class TrustedProxies:
    """The peers believed about forwarding headers; each answer is remembered (parsing costs)."""

    def __init__(self, setting: str) -> None:
        items = [] if setting.strip().lower() == "none" else [i.strip() for i in setting.split(",") if i.strip()]
        self.networks = [ipaddress.ip_network(item, strict=False) for item in items]
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: str) -> bool:
        known = self._known.get(address)
        if known is None:
            if len(self._known) >= _REMEMBERED:  # addresses are many; keep memory flat
                self._known.clear()
            known = self._known[address] = self._check(address)
        return known

    def _check(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


@functools.lru_cache(maxsize=_REMEMBERED)
def _address(text: str) -> str:
    """`203.0.113.9`, `203.0.113.9:4711`, `"[2001:db8::1]:4711"` -> the address; "" if none."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""  # `unknown`, an obfuscated `_node`, or garbage


def _values(raw: list[bytes]) -> list[str]:
    """The comma-separated items of a header that may come on several lines."""
    return [item.strip() for line in raw for item in line.decode("latin-1").split(",")]


def forwarded_hops(headers: dict[bytes, list[bytes]]) -> list[Hop]:
    """What each proxy said, the nearest last: from `X-Forwarded-*`, else `Forwarded` (RFC 7239).

    The X- headers win because nginx and Caddy set them and pass a `Forwarded` header that a
    phone wrote straight through: believing that one would let the phone pick its address.
    """
    if b"forwarded" in headers and not any(name in headers for name in FORWARDING[1:]):
        hops = []
        for element in _values(headers[b"forwarded"]):
            pairs = dict(p.strip().partition("=")[::2] for p in element.split(";"))
            pairs = {k.lower(): v.strip('"') for k, v in pairs.items()}
            hops.append(Hop(_address(pairs.get("for", "")), pairs.get("proto", ""), pairs.get("host", "")))
        return hops
    addresses = _values(headers.get(b"x-forwarded-for", []))
    schemes = _values(headers.get(b"x-forwarded-proto", []))
    hosts = _values(headers.get(b"x-forwarded-host", []))
    count = max(len(addresses), 1)
    # A proxy that appends to each list keeps them in step; otherwise the nearest proxy's
    # value (the last) speaks for every hop.
    schemes = schemes if len(schemes) == count else [schemes[-1] if schemes else ""] * count
    hosts = hosts if len(hosts) == count else [hosts[-1] if hosts else ""] * count
    addresses = addresses or [""]
    return [Hop(_address(a), s, h) for a, s, h in zip(addresses, schemes, hosts, strict=True)]


def believe(peer: str, hops: list[Hop], trusted: TrustedProxies) -> tuple[str, Hop | None]:
    """The client (right-most forwarded address not itself trusted) and the hop that named it.

    The walk stops at an entry that is not an address: beyond it nothing can be checked.
    When every address is trusted, the left-most is the client.
    """
    client, chosen = peer, None
    for hop in reversed(hops):
        chosen = hop
        if not hop.address:
            break
        client = hop.address
        if client not in trusted:
            break
    return client, chosen


def host_name(host: bytes) -> str | None:
    """The name in a Host header, lower case, without port or brackets; None if it is no name."""
    if len(host) > MAX_HOST or not HOST.fullmatch(host):
        return None
    name = host.decode("ascii").lower()
    if name.startswith("["):
        return name[1 : name.index("]")]
    return name.partition(":")[0].rstrip(".")


def host_allowed(host: str, patterns: list[str]) -> bool:
    """`*` allows any host; `*.example.cn` allows its subdomains; anything else is exact."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


class FrontDoor:
    """Raw ASGI around the application: forwarding headers, the host check, security headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted: TrustedProxies,
        hosts: list[str],
        security_headers: dict[str, str],
        refusal: str,
        skip_compression: str,
        shortcut: Shortcut | None = None,
    ) -> None:
        self.app = app
        self.shortcut = shortcut
        self.skip_compression = skip_compression  # a route's `opt` key: its answers are never gzipped here
        self.trusted = trusted
        self.hosts = hosts
        self.headers = encode_headers(security_headers)
        self.header_names = frozenset(name for name, _ in self.headers)
        self._hosts_seen: dict[bytes, bool] = {}  # Host header as sent -> allowed (parsing costs)
        body = refusal.encode("utf-8")
        self.refusal_start = {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *self.headers,
            ],
        }
        self.refusal_body = {"type": "http.response.body", "body": body}

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = b""
        gzip = False
        forwarding: dict[bytes, list[bytes]] = {}
        peer = scope["client"][0] if scope.get("client") else ""
        believed = bool(peer and self.trusted and peer in self.trusted)
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"accept-encoding":
                gzip = accepts_gzip(value)
            elif believed and name in FORWARDING:
                forwarding.setdefault(name, []).append(value)
        if forwarding:
            host = self._rewrite(scope, peer, forwarding) or host
        if not host and scope.get("server"):
            host = scope["server"][0].encode("latin-1")  # HTTP/1.0 sends no Host
        if not self._allowed(host):
            await send(self.refusal_start)
            await send(self.refusal_body)
            return
        if self.shortcut is not None:
            reply, receive = await self.shortcut(scope, receive)
            if reply is not None:
                status, headers, body = reply
                await send({"type": "http.response.start", "status": status, "headers": headers + self.headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        send = self._with_security_headers(send)
        await self.app(scope, receive, GzipSend(send, scope, self.skip_compression) if gzip else send)

    def _allowed(self, host: bytes) -> bool:
        allowed = self._hosts_seen.get(host)
        if allowed is None:
            if len(self._hosts_seen) >= _REMEMBERED:  # names are few, but anyone may send any
                self._hosts_seen.clear()
            name = host_name(host)
            allowed = self._hosts_seen[host] = name is not None and host_allowed(name, self.hosts)
        return allowed

    def _rewrite(self, scope: MutableMapping[str, Any], peer: str, forwarding: dict[bytes, list[bytes]]) -> bytes:
        """Make the scope say what the browser sent; returns the forwarded host, if any."""
        client, hop = believe(peer, forwarded_hops(forwarding), self.trusted)
        scope["client"] = (client, 0)
        if hop is None:
            return b""
        scheme = hop.scheme.lower()
        if scheme in ("http", "https"):
            scope["scheme"] = scheme
        if not hop.host:
            return b""
        host = hop.host.encode("latin-1")
        scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"host"] + [(b"host", host)]
        return host

    def _with_security_headers(self, send: Any) -> Any:
        extra, names = self.headers, self.header_names

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers") or ())
                if any(name.lower() in names for name, _ in headers):  # an answer's own say wins
                    present = {name.lower() for name, _ in headers}
                    headers.extend(pair for pair in extra if pair[0] not in present)
                else:
                    headers.extend(extra)
                message["headers"] = headers
            await send(message)

        return send_with_headers
