"""The SSRF guard of webhook URLs: which addresses a callback may reach, IPv6 forms included."""

from __future__ import annotations

import ipaddress

import pytest

from contentmatch_delivery.targets import TargetRefused, check, is_public, parse


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "255.255.255.255", "224.0.0.1", "240.0.0.1", "192.0.2.1",
        "198.18.0.1",
        "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "::127.0.0.1", "::10.0.0.1",  # IPv4-compatible (deprecated)
        "2002:7f00:1::1", "2002:a00:1::",  # 6to4 around 127.0.0.1 and 10.0.0.1
        "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64 around loopback and the metadata host
        "2001::1",  # Teredo
        "2001:db8::1",  # documentation
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                "64:ff9b::808:808", "2002:808:808::1"],
)  # fmt: skip
def test_public_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/hook", "invalid_url"),
        ("https://user:pw@example.com/hook", "invalid_url"),
        ("https:///hook", "invalid_url"),
        ("https://example.com/hook#frag", "invalid_url"),
        ("https://example.com:99999/", "invalid_url"),
        ("https://exa mple.com/", "invalid_url"),
        ("http://example.com/hook", "invalid_url"),  # https only in production
    ],
)
def test_malformed_urls_are_refused(url: str, code: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        parse(url, require_https=True)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://[::1]:8443/hook",
        "https://[::ffff:7f00:1]/hook",
        "https://localhost/hook",
        "https://2130706433/hook",  # 127.0.0.1 as one decimal number
        "https://0x7f.1/hook",
        "https://169.254.169.254/latest/meta-data/",
    ],
)
async def test_urls_reaching_loopback_or_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        await check(url, allow_private=False, require_https=True)
    assert caught.value.code in ("forbidden_address", "unresolvable_host")


async def test_the_development_setting_allows_loopback() -> None:
    target = await check("http://127.0.0.1:8099/hook", allow_private=True, require_https=False)
    assert target.addresses == (ipaddress.ip_address("127.0.0.1"),)
    assert target.port == 8099


async def test_a_public_ip_literal_passes_without_a_lookup() -> None:
    target = await check("https://8.8.8.8/hook", allow_private=False, require_https=True)
    assert target.host == "8.8.8.8" and target.port == 443
