"""Where a webhook may point: the SSRF guard, checked at registration and again at every attempt.

A callback URL is refused when its host resolves to any address that is not public (loopback,
private, link-local, shared, multicast, reserved, unspecified; IPv6 forms that embed an IPv4
address are judged by that address). The attempt then connects to the address that was checked
(the name is not resolved a second time by the HTTP client), so a DNS answer that changes between
the check and the connection (DNS rebinding) cannot steer the request. ``allow_private`` lifts
the address rule for tests and development; production refuses to start with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_CHARS = 2048
_RESOLVE_TIMEOUT_S = 5.0
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class TargetRefused(Exception):
    """The URL is malformed, or names (or resolves to) an address webhooks may not reach."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # as in the URL (an IPv6 literal without brackets)
    port: int
    addresses: tuple[IPAddress, ...]  # checked; the attempt connects to the first


def is_public(address: IPAddress) -> bool:
    """Whether a webhook may connect to ``address``."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address.sixtofour is not None:
            return is_public(address.sixtofour)
        if address.teredo is not None:
            return False  # a tunnel to an address we cannot judge here
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in _IPV4_COMPATIBLE:
            return False  # ::a.b.c.d (deprecated), ::1 and :: among them
    return address.is_global and not address.is_multicast


def parse(url: str, *, require_https: bool) -> SplitResult:
    """The URL's parts, or :class:`TargetRefused` saying what is wrong with it."""
    if len(url) > MAX_URL_CHARS:
        raise TargetRefused("invalid_url", f"the URL is longer than {MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise TargetRefused("invalid_url", "the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("invalid_url", f"not a valid URL: {exc}") from None
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed:
        raise TargetRefused("invalid_url", f"the URL's scheme must be {' or '.join(allowed)}")
    if not parts.hostname:
        raise TargetRefused("invalid_url", "the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("invalid_url", "credentials in the URL are not allowed")
    if parts.fragment:
        raise TargetRefused("invalid_url", "the URL must not have a fragment")
    if port == 0:
        raise TargetRefused("invalid_url", "port 0 is not a valid port")
    return parts


async def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address ``host`` resolves to (an IP literal is itself)."""
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            ),
            _RESOLVE_TIMEOUT_S,
        )
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise TargetRefused("unresolvable_host", f"the host {host!r} does not resolve") from exc
    found: list[IPAddress] = []
    for info in infos:
        # A scoped IPv6 address ("fe80::1%eth0") is link-local anyway: judge it without the zone.
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in found:
            found.append(address)
    if not found:
        raise TargetRefused("unresolvable_host", f"the host {host!r} has no address")
    return tuple(found)


async def check(url: str, *, allow_private: bool, require_https: bool) -> Target:
    """Parse and resolve ``url``; refuse it unless every address it resolves to may be reached."""
    parts = parse(url, require_https=require_https)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise TargetRefused(
                "forbidden_address",
                f"the host {host!r} resolves to {refused[0]}, which is not a public address",
            )
    return Target(url=url, scheme=parts.scheme, host=host, port=port, addresses=addresses)
