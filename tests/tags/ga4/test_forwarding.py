"""GA4 forwarding end to end in process (SPEC 12): a hit into the app, through the queue and the
GA4 lane, to the sandbox's Google side; the exact request Google gets (method, URL, header set,
body bytes), and what the gateway says about it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from tests.harness import GA4_SANDBOX, Running, config_of, running
from tiktok_gateway.config import load_config
from tiktok_gateway.delivery.destination import Batch
from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue.base import LeasedItem
from tiktok_gateway.sandbox.app import sandbox_of
from tiktok_gateway.sandbox.google import ReceivedHit
from tiktok_gateway.tags.ga4.destination import GA4Destination, ga4_limits
from tiktok_gateway.tags.ga4.forward import web_forward
from tiktok_gateway.tags.ga4.payload import QueuedForward
from tiktok_gateway.tags.ga4.sender import HttpxSender
from tiktok_gateway.tags.ga4.settings import GA4Settings

PROXY = "10.0.0.5"  # the gateway's trusted reverse proxy
VISITOR = "198.51.100.7"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/136.0.0.0 Safari/537.36"
BROWSER = {
    "user-agent": UA,
    "accept-language": "de-DE,de;q=0.9",
    "sec-ch-ua": '"Chromium";v="136", "Not.A/Brand";v="99"',
    "sec-ch-ua-mobile": "?0",
    "sec-ch-ua-platform": '"Linux"',
    "cookie": "_ga=GA1.1.555.1700000000; ttclid=abc",
    "authorization": "Bearer never-forwarded",
    "x-forwarded-for": VISITOR,
    "x-forwarded-proto": "https",
    "forwarded": f"for={VISITOR}",
    "via": "1.1 proxy",
    "origin": "https://shop.example.com",
}
# What the sandbox sees besides the browser's allow-listed headers: the HTTP client's own.
TRANSPORT = {"host", "content-length", "connection"}
FORWARDED = {"user-agent", "accept-language", "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform"}
GET_QUERY = (
    "v=2&tid=G-SHOP1&gtm=45je5a&_p=1700000000001&cid=555.1700000000&ul=de-de&sr=1920x1080"
    "&richsstsse&_uip=6.6.6.6&uip=6.6.6.7&_s=1&sid=1700000000&sct=1&seg=0"
    "&dl=https%3A%2F%2Fshop.example.com%2F&dt=Shop&en=page_view&_ss=1"
)
SENT_GET_QUERY = (
    "v=2&tid=G-SHOP1&gtm=45je5a&_p=1700000000001&cid=555.1700000000&ul=de-de&sr=1920x1080"
    "&_s=1&sid=1700000000&sct=1&seg=0"
    "&dl=https%3A%2F%2Fshop.example.com%2F&dt=Shop&en=page_view&_ss=1&_uip=198.51.100.7"
)
POST_QUERY = "v=2&tid=G-SHOP1&gtm=45je5a&_p=1700000000002&cid=555.1700000000&richsstsse"
POST_BODY = (
    b"en=view_item&_s=2&dl=https%3A%2F%2Fshop.example.com%2Fp%2F1&pr1=idSKU-1~nmT-Shirt~pr19.95\r\n"
    b"en=add_to_cart&_s=3&epn.value=19.95&cu=EUR\r\n"
    b"en=scroll&_s=4&epn.percent_scrolled=90\r\n"
)


def environ(**extra: str) -> dict[str, str]:
    return {**GA4_SANDBOX, "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8", **extra}


def received(gw: Running) -> list[ReceivedHit]:
    assert gw.runtime.sandbox is not None
    return sandbox_of(gw.runtime.sandbox).google.store.hits()


def forward_all(
    requests: list[tuple[str, str, bytes, Mapping[str, str]]], **extra: str
) -> tuple[list[ReceivedHit], list[httpx.Response], list[dict[str, Any]]]:
    """Send ``(method, path, body, headers)`` requests through a gateway (forwarding to the
    sandbox), deliver, and return what the sandbox's Google side got, the answers, and the
    hits' debug views."""

    async def scenario() -> tuple[list[ReceivedHit], list[httpx.Response], list[dict[str, Any]]]:
        async with running(config_of(environ(**extra)), peer=PROXY) as gw:
            answers = [
                await gw.client.request(method, path, content=body, headers=dict(headers))
                for method, path, body, headers in requests
            ]
            assert gw.runtime.worker is not None
            await gw.runtime.worker.drain()
            return received(gw), answers, gw.runtime.debug.hits()

    return asyncio.run(scenario())


def test_a_get_hit_is_forwarded_exactly() -> None:
    [hit], [answer], [view] = forward_all([("GET", f"/g/collect?{GET_QUERY}", b"", BROWSER)])
    assert answer.status_code == 204
    assert answer.content == b""  # also with richsstsse: no event stream
    assert (hit.path, hit.query) == ("/g/collect", SENT_GET_QUERY)
    headers = dict(hit.headers)
    assert set(headers) == TRANSPORT | FORWARDED
    assert {name: headers[name] for name in FORWARDED} == {n: BROWSER[n] for n in FORWARDED}
    assert headers["content-length"] == "0"
    assert hit.body == b""
    [forward] = view["forwards"]
    assert (forward["destination"], forward["status"], forward["key"]) == (
        "ga4",
        "queued",
        view["request_id"],
    )
    assert forward["delivery"]["outcome"] == "delivered"
    assert forward["delivery"]["message"] == "HTTP 204"


def test_a_post_batch_is_forwarded_with_its_body_byte_identical() -> None:
    [hit], [answer], _ = forward_all([("POST", f"/g/collect?{POST_QUERY}", POST_BODY, BROWSER)])
    assert answer.status_code == 204
    assert hit.query == POST_QUERY.removesuffix("&richsstsse") + "&_uip=198.51.100.7"
    assert hit.body == POST_BODY
    headers = dict(hit.headers)
    assert set(headers) == TRANSPORT | FORWARDED | {"content-type"}
    assert headers["content-type"] == "text/plain;charset=UTF-8"
    assert headers["content-length"] == str(len(POST_BODY))


@pytest.mark.parametrize(
    ("mode", "sent"),
    [("full", "198.51.100.7"), ("truncated", "198.51.100.0"), ("none", None)],
)
def test_ip_modes(mode: str, sent: str | None) -> None:
    [hit], _, _ = forward_all(
        [("GET", f"/g/collect?{GET_QUERY}", b"", BROWSER)], GATEWAY_GA4_IP_MODE=mode
    )
    assert dict(hit.params).get("_uip") == sent
    assert "uip" not in dict(hit.params)


@pytest.mark.parametrize(
    ("consent", "ip_sent"),
    [
        ("&gcs=G111", True),
        ("&gcs=G101", True),  # ad storage denied, analytics granted: an IP still goes
        ("&gcs=G100", False),
        ("&gcs=G110", False),
        ("&gcd=13r3q3r2r5l1", False),  # analytics_storage letter q: denied
        ("&gcd=13r3r3r2r5l1", True),
    ],
)
def test_no_visitor_ip_when_analytics_storage_is_denied(consent: str, ip_sent: bool) -> None:
    [hit], _, _ = forward_all([("GET", f"/g/collect?{GET_QUERY}{consent}", b"", BROWSER)])
    assert ("_uip" in dict(hit.params)) is ip_sent
    assert VISITOR in hit.query if ip_sent else VISITOR not in hit.query
    assert "6.6.6.6" not in hit.query


def test_the_allow_list_forwards_only_its_measurement_ids() -> None:
    other = GET_QUERY.replace("G-SHOP1", "G-OTHER")
    hits, answers, views = forward_all(
        [
            ("GET", f"/g/collect?{GET_QUERY}", b"", BROWSER),
            ("GET", f"/g/collect?{other}", b"", BROWSER),
        ],
        GATEWAY_GA4_MEASUREMENT_IDS="g-shop1, G-SHOP2",
    )
    assert [answer.status_code for answer in answers] == [204, 204]
    assert [hit.measurement_id for hit in hits] == ["G-SHOP1"]
    skipped = views[1]["forwards"][0]
    assert (skipped["status"], skipped["reason"], skipped["key"]) == (
        "skipped",
        "measurement_id_not_allowed",
        None,
    )


def test_measurement_protocol_requests_are_forwarded_unchanged() -> None:
    body = json.dumps(
        {"client_id": "555.1", "events": [{"name": "purchase", "params": {"value": 9.5}}]}
    ).encode()
    path = "/mp/collect?measurement_id=G-SHOP1&api_secret=sEcReT-123&richsstsse"
    [hit], [answer], [view] = forward_all(
        [("POST", path, body, BROWSER)], GATEWAY_MP_API_SECRETS="G-SHOP1=sEcReT-123"
    )
    assert answer.status_code == 200
    assert (hit.path, hit.query) == ("/mp/collect", "measurement_id=G-SHOP1&api_secret=sEcReT-123")
    assert hit.body == body
    assert dict(hit.headers)["content-type"] == "application/json"
    assert "_uip" not in hit.query
    # The secret Google needs is never shown: not on the debug page, not in the listing.
    assert "sEcReT-123" not in json.dumps(view)
    assert "sEcReT-123" not in json.dumps(hit.to_json())


def test_events_requests_are_not_forwarded() -> None:
    headers = {"content-type": "application/json", "authorization": "Bearer ingest-token-1"}
    hits, [answer], [view] = forward_all(
        [("POST", "/events", b'{"event_name": "purchase"}', headers)],
        GATEWAY_INGEST_TOKEN="ingest-token-1",
    )
    assert answer.status_code == 200
    assert hits == []
    assert view["forwards"] == []


def test_a_refused_hit_is_not_forwarded() -> None:
    hits, [answer], _ = forward_all([("GET", "/g/collect?v=1&tid=G-SHOP1&en=x", b"", BROWSER)])
    assert answer.status_code == 400
    assert hits == []


def test_forwarding_off_queues_nothing_for_google() -> None:
    hits, [answer], [view] = forward_all(
        [("GET", f"/g/collect?{GET_QUERY}", b"", BROWSER)], GATEWAY_GA4_FORWARD="false"
    )
    assert answer.status_code == 204
    assert hits == []
    assert view["forwards"] == []


def test_a_tiktok_tag_may_not_take_the_forwarders_name(tmp_path: Any) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[[tags]]\nname = "ga4"\npixel_code = "C1"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tags\.name"):
        load_config(path, {})
    assert load_config(path, {"GATEWAY_GA4_FORWARD": "0"}).tags[0].name == "ga4"


@pytest.mark.parametrize(
    ("query", "url"),
    [
        ("v=2&tid=G-1&en=x", "https://www.google-analytics.com/g/collect?v=2&tid=G-1&en=x"),
        (
            "v=2&tid=G-1&sst.gcsub=region1&en=x",
            "https://region1.google-analytics.com/g/collect?v=2&tid=G-1&sst.gcsub=region1&en=x",
        ),
        (
            "v=2&tid=G-1&sst.gcsub=evil.example&en=x",
            "https://www.google-analytics.com/g/collect?v=2&tid=G-1&sst.gcsub=evil.example&en=x",
        ),
    ],
)
def test_auto_picks_googles_host_by_the_hit_and_never_from_input(query: str, url: str) -> None:
    seen: list[httpx.Request] = []

    def google(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def send() -> None:
        settings = GA4Settings(ip_mode="none")
        forward = web_forward(query.encode(), b"", {}, "203.0.113.1", "none")
        unit = QueuedForward("k1", "G-1", forward)
        item = LeasedItem("1:1", "ga4", unit.to_bytes(), 0, 0.0)
        async with httpx.AsyncClient(transport=httpx.MockTransport(google)) as google_client:
            limits = ga4_limits(settings, 5.0)
            network = HttpxSender(google_client)  # as the network sender would, to Google
            destination = GA4Destination("ga4", settings, "http://unused", limits, network)
            async with httpx.AsyncClient() as unused:
                batch = Batch("ga4", unit.route, (item,), (unit,))
                outcome = await destination.send(unused, batch)
        assert outcome.cause == "ok"

    asyncio.run(send())
    [request] = seen
    assert (request.method, str(request.url)) == ("POST", url)
    # No user agent from the browser: none at all, never the HTTP library's.
    assert "user-agent" not in request.headers
    assert set(request.headers) == TRANSPORT
