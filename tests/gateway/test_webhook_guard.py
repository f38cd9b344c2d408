"""The SSRF guard's address classifier and URL checks, the secret box, Retry-After."""

from __future__ import annotations

import ipaddress
import uuid

import httpx
import pytest
from pydantic import SecretStr

from services.common.settings import Settings
from services.gateway.webhooks.client import build_partner_client
from services.gateway.webhooks.crypto import SecretBox, generate_secret
from services.gateway.webhooks.outcomes import next_delay, retry_after_seconds
from services.gateway.webhooks.ssrf import UnsafeUrl, check_url, forbidden_reason
from tests.gateway.webhook_support import Receiver

REFUSED = [
    # IPv4
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "0.0.0.0",
    "0.1.2.3",
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.254",
    "192.0.0.8",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    # IPv6
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",  # site-local
    "ff02::1",  # multicast
    "2001:db8::1",  # documentation
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo with client 10.0.0.1
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.32.0.1",  # just outside 172.16/12
    "100.128.0.1",  # just outside 100.64/10
    "2606:4700:4700::1111",
    "2a00:1450:4001:81b::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_reason_names_the_embedded_address() -> None:
    reason = forbidden_reason(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert reason is not None
    assert "127.0.0.1" in reason
    assert "loopback" in reason


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "https://[::1]/hook",
        "http://[::ffff:7f00:1]/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0x7f000001/hook",  # resolves to 127.0.0.1
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "http:///nohost",
        "http://example.com:99999/hook",
        "http://does-not-exist.invalid/hook",
    ],
)
async def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await check_url(url, allow_private=False)


async def test_private_urls_pass_when_allowed() -> None:
    await check_url("http://127.0.0.1:9/hook", allow_private=True)
    await check_url("http://10.0.0.1/hook", allow_private=True)
    with pytest.raises(UnsafeUrl):
        await check_url("gopher://127.0.0.1/", allow_private=True)


async def test_public_literal_url_is_accepted() -> None:
    await check_url("https://93.184.216.34/hook", allow_private=False)
    await check_url("https://[2606:4700:4700::1111]:8443/hook", allow_private=False)


async def test_delivery_client_refuses_private_addresses_at_connect_time() -> None:
    """DNS may change after registration: the partner client vets every connection."""
    guarded = build_partner_client(Settings(webhook_allow_private=False))
    open_client = build_partner_client(Settings(webhook_allow_private=True))
    async with Receiver() as receiver, guarded, open_client:
        with pytest.raises(httpx.TransportError, match="loopback"):
            await guarded.post(receiver.url, content=b"{}")
        with pytest.raises(httpx.TransportError, match="loopback"):
            await guarded.post(receiver.url.replace("127.0.0.1", "localhost"), content=b"{}")
        with pytest.raises(httpx.TransportError, match="loopback"):
            await guarded.post(receiver.url.replace("127.0.0.1", "[::ffff:127.0.0.1]"), content=b"{}")
        assert receiver.received == []
        assert (await open_client.post(receiver.url, content=b"{}")).status_code == 200


async def test_delivery_client_does_not_follow_redirects() -> None:
    from aiohttp import web

    target = Receiver()
    async with target:

        async def redirect(_request: web.Request) -> web.Response:
            raise web.HTTPFound(target.url)

        app = web.Application()
        app.router.add_post("/r", redirect)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with build_partner_client(Settings(webhook_allow_private=True)) as client:
                response = await client.post(f"http://127.0.0.1:{port}/r", content=b"{}")
            assert response.status_code == 302
            assert target.received == []
        finally:
            await runner.cleanup()


def test_secret_box_round_trip_and_binding() -> None:
    box = SecretBox(Settings())
    endpoint_id = uuid.uuid4()
    secret = generate_secret()
    sealed = box.encrypt(secret, endpoint_id)
    assert secret not in sealed
    assert box.encrypt(secret, endpoint_id) != sealed  # fresh nonce each time
    assert box.decrypt(sealed, endpoint_id) == secret
    with pytest.raises(ValueError, match="does not decrypt"):
        box.decrypt(sealed, uuid.uuid4())  # bound to its endpoint
    other = SecretBox(Settings(encryption_key=SecretStr("b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDA=")))
    with pytest.raises(ValueError, match="does not decrypt"):
        other.decrypt(sealed, endpoint_id)


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("99999999") == 86400
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    http_date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after_seconds(http_date, now=1445412460.0) == pytest.approx(20.0)


def test_retry_schedule_with_jitter() -> None:
    delays = (5, 300)
    assert 4.5 <= (next_delay(delays, 1, None) or 0) <= 5.5
    assert 270 <= (next_delay(delays, 2, None) or 0) <= 330
    assert next_delay(delays, 3, None) is None  # exhausted
    assert next_delay(delays, 1, 60.0) == 60.0  # Retry-After wins when later
    assert next_delay((0, 0, 0), 1, None) == 0
