"""Several tags with overlapping triggers: every event reaches exactly the right pixels (SPEC 5.8).

Five tags, all without a token (so they deliver to the built-in sandbox):

- ``shop``: pixel CSHOP, fires on the shop's GA4 property (any hostname), default settings.
- ``outlet``: pixel COUTLET, fires on outlet.example.com (any property); CompletePayment, Lead,
  product_group, consent ignored, limited data use, phone region DE, its own event-map override.
- ``staging``: pixel CSHOP too, with a test event code; fires on staging.shop.example.com for
  page_view and purchase only; reports purchases as Purchase (to tell it from ``shop``).
- ``brand``: pixel CBRAND, fires on both properties except page_view; drops unmapped events.
- ``audit``: pixel CAUDIT, an empty trigger with ``exclude_events = []``: everything, even
  user_engagement; consent ignored.

Checked at three levels: ``route`` on event data, the envelopes ``/g/collect`` queues, and what
the sandbox receives once the worker drained the queue (requests never mix pixels or test codes).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.harness import NO_GA4, running
from tiktok_gateway.config import Config, load_config
from tiktok_gateway.event_data import EventData
from tiktok_gateway.sandbox.app import sandbox_of
from tiktok_gateway.tags.tiktok.collector import ttclid_cookie_of
from tiktok_gateway.tags.tiktok.envelope import Envelope
from tiktok_gateway.tags.tiktok.inspection import InspectInput, run_inspect
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, MappedEvent
from tiktok_gateway.tags.tiktok.router import route

TAGS_TOML = """
[gateway]
batch_max_wait_ms = 0

[[tags]]
name = "shop"
pixel_code = "CSHOP"
[tags.trigger]
measurement_ids = ["G-SHOP"]

[[tags]]
name = "outlet"
pixel_code = "COUTLET"
purchase_event = "CompletePayment"
lead_event = "Lead"
content_type = "product_group"
consent = "ignore"
limited_data_use = true
phone_region = "DE"
[tags.trigger]
hostnames = ["Outlet.Example.com"]
[tags.event_map]
view_item_list = "ViewContent"

[[tags]]
name = "staging"
pixel_code = "CSHOP"
purchase_event = "Purchase"
test_event_code = "TESTSTAGE"
[tags.trigger]
hostnames = ["staging.shop.example.com"]
include_events = ["page_view", "purchase"]
exclude_events = []

[[tags]]
name = "brand"
pixel_code = "CBRAND"
unmapped_events = "drop"
[tags.trigger]
measurement_ids = ["G-SHOP", "G-OUTLET"]
exclude_events = ["user_engagement", "page_view"]

[[tags]]
name = "audit"
pixel_code = "CAUDIT"
consent = "ignore"
[tags.trigger]
exclude_events = []
"""

PIXELS = {
    "shop": "CSHOP",
    "outlet": "COUTLET",
    "staging": "CSHOP",
    "brand": "CBRAND",
    "audit": "CAUDIT",
}
TEST_CODES = {"staging": "TESTSTAGE"}

SHOP = "https://shop.example.com/p/1"
OUTLET = "https://outlet.example.com/deals"
STAGING = "https://staging.shop.example.com/checkout"
OTHER = "https://blog.example.org/"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "gateway.toml"
    path.write_text(TAGS_TOML, encoding="utf-8")
    return load_config(path, NO_GA4)


def data(mid: str, url: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"x-ga-measurement_id": mid, "page_location": url, "event_name": name, **extra}


def fired(config: Config, event: EventData) -> dict[str, str]:
    """Tag name -> TikTok event name, or ``dropped:<reason>``, for every tag that fired."""
    result: dict[str, str] = {}
    for outcome in route(event, config.tags):
        if isinstance(outcome, DroppedEvent):
            result[outcome.tag] = f"dropped:{outcome.reason}"
        else:
            result[outcome.tag] = outcome.event["event"]
    return result


# -- which tags fire ----------------------------------------------------------------------------

ROUTES = [
    # shop property on the shop site: shop, audit; brand skips page_view.
    ("G-SHOP", SHOP, "page_view", {"shop": "Pageview", "audit": "Pageview"}),
    (
        "G-SHOP",
        SHOP,
        "purchase",
        {"shop": "PlaceAnOrder", "brand": "PlaceAnOrder", "audit": "PlaceAnOrder"},
    ),
    # outlet site: its hostname fires outlet whatever the property.
    (
        "G-OUTLET",
        OUTLET,
        "purchase",
        {"outlet": "CompletePayment", "brand": "PlaceAnOrder", "audit": "PlaceAnOrder"},
    ),
    ("G-OTHER", OUTLET, "generate_lead", {"outlet": "Lead", "audit": "SubmitForm"}),
    # outlet's own map entry; brand drops what no map knows; shop and audit send custom events.
    (
        "G-OUTLET",
        OUTLET,
        "view_item_list",
        {"outlet": "ViewContent", "brand": "dropped:unmapped_event", "audit": "view_item_list"},
    ),
    # staging site: staging only for page_view and purchase, next to the shop property's tags.
    (
        "G-SHOP",
        STAGING,
        "purchase",
        {
            "shop": "PlaceAnOrder",
            "staging": "Purchase",
            "brand": "PlaceAnOrder",
            "audit": "PlaceAnOrder",
        },
    ),
    (
        "G-SHOP",
        STAGING,
        "add_to_cart",
        {"shop": "AddToCart", "brand": "AddToCart", "audit": "AddToCart"},
    ),
    # user_engagement: excluded by default everywhere except where exclude_events = [].
    ("G-SHOP", STAGING, "user_engagement", {"audit": "user_engagement"}),
    ("G-OUTLET", OUTLET, "user_engagement", {"audit": "user_engagement"}),
    # hostnames are compared case-insensitively; a foreign site and property: audit only.
    (
        "G-X",
        "https://OUTLET.example.com/",
        "page_view",
        {"outlet": "Pageview", "audit": "Pageview"},
    ),
    ("G-X", OTHER, "purchase", {"audit": "PlaceAnOrder"}),
]


@pytest.mark.parametrize(("mid", "url", "name", "expected"), ROUTES)
def test_each_event_fires_exactly_the_matching_tags(
    config: Config, mid: str, url: str, name: str, expected: dict[str, str]
) -> None:
    assert fired(config, data(mid, url, name)) == expected


def test_an_event_without_page_url_never_fires_hostname_triggers(config: Config) -> None:
    event = {"x-ga-measurement_id": "G-SHOP", "event_name": "purchase"}
    assert fired(config, event) == {
        "shop": "PlaceAnOrder",
        "brand": "PlaceAnOrder",
        "audit": "PlaceAnOrder",
    }


def test_triggers_compare_the_name_before_mapping(config: Config) -> None:
    # x-ttq-event-name wins over event_name: "Pageview" is not "page_view", so brand fires and
    # staging (page_view and purchase only) does not.
    event = data("G-SHOP", STAGING, "page_view", **{"x-ttq-event-name": "Pageview"})
    assert fired(config, event) == {"shop": "Pageview", "brand": "Pageview", "audit": "Pageview"}


def test_the_example_configuration_routes_as_documented() -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "gateway.toml"
    config = load_config(
        example, {"TIKTOK_SHOP_TOKEN": "t1", "TIKTOK_OUTLET_TOKEN": "t2", **NO_GA4}
    )
    shop_site, outlet_site = "https://shop.example.com/", "https://outlet.example.com/"
    staging_site = "https://staging.shop.example.com/"
    assert fired(config, data("G-SHOP12345", shop_site, "purchase")) == {"shop": "PlaceAnOrder"}
    assert fired(config, data("G-SHOP12345", shop_site, "scroll")) == {}
    assert fired(config, data("G-OUTLET1", outlet_site, "purchase")) == {
        "outlet": "CompletePayment"
    }
    assert fired(config, data("G-OUTLET1", outlet_site, "scroll")) == {
        "outlet": "dropped:unmapped_event"
    }
    # Staging: the test tag only, and only for the listed events.
    assert fired(config, data("G-SHOP12345", staging_site, "purchase")) == {
        "staging": "PlaceAnOrder"
    }
    assert fired(config, data("G-SHOP12345", staging_site, "scroll")) == {}
    (test,) = mapped(config, data("G-SHOP12345", staging_site, "page_view")).values()
    assert (test.tag, test.test_event_code) == ("staging", "TEST12345")


# -- each tag's own settings ---------------------------------------------------------------------


def mapped(config: Config, event: EventData) -> dict[str, MappedEvent]:
    outcomes = route(event, config.tags)
    return {outcome.tag: outcome for outcome in outcomes if isinstance(outcome, MappedEvent)}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_each_tag_maps_with_its_own_settings(config: Config) -> None:
    items = [{"item_id": "SKU1", "price": 10, "quantity": 2}]
    user_data = {"phone_number": "030 1234567", "email_address": "Ann@Example.com"}
    event = data(
        "G-SHOP",
        "https://outlet.example.com/thanks",
        "purchase",
        items=items,
        currency="EUR",
        transaction_id="T-9",
        user_data=user_data,
    )
    by_tag = mapped(config, event)
    assert set(by_tag) == {"shop", "outlet", "brand", "audit"}
    shop, outlet = by_tag["shop"], by_tag["outlet"]
    assert (shop.pixel_code, shop.event["event"]) == ("CSHOP", "PlaceAnOrder")
    assert (outlet.pixel_code, outlet.event["event"]) == ("COUTLET", "CompletePayment")
    assert shop.event["properties"]["content_type"] == "product"
    assert outlet.event["properties"]["content_type"] == "product_group"
    assert outlet.event["properties"]["contents"][0]["content_type"] == "product_group"
    assert outlet.event["limited_data_use"] is True
    assert "limited_data_use" not in shop.event
    # Phone numbers without a country code are read in each tag's region.
    assert outlet.event["user"]["phone"] == sha256("+49301234567")
    assert shop.event["user"]["phone"] == sha256("+10301234567")  # the shop tag reads it as US
    assert shop.event["user"]["email"] == outlet.event["user"]["email"] == sha256("ann@example.com")
    assert {tag: m.test_event_code for tag, m in by_tag.items()} == dict.fromkeys(by_tag)


def test_test_event_code_belongs_to_its_tag_only(config: Config) -> None:
    by_tag = mapped(config, data("G-SHOP", STAGING, "purchase", transaction_id="T-1"))
    assert by_tag["staging"].test_event_code == "TESTSTAGE"
    assert by_tag["staging"].pixel_code == by_tag["shop"].pixel_code == "CSHOP"
    assert by_tag["shop"].test_event_code is None
    assert by_tag["staging"].event["event"] == "Purchase"


def test_consent_policy_is_per_tag(config: Config) -> None:
    denied = data("G-OUTLET", OUTLET, "purchase", **{"x-ga-gcs": "G100"})
    assert fired(config, denied) == {
        "outlet": "CompletePayment",  # consent = "ignore"
        "brand": "dropped:consent",  # consent = "respect" (default)
        "audit": "PlaceAnOrder",  # consent = "ignore"
    }


# -- through the HTTP app: the queue, then the sandbox ---------------------------------------------


def hit(mid: str, url: str, name: str, counter: int, extra: str = "") -> str:
    return (
        f"/g/collect?v=2&tid={mid}&cid=555.1&_p=1700000000001&_s={counter}&en={name}"
        f"&dl={quote(url, safe='')}{extra}"
    )


PURCHASE = "&cu=EUR&epn.value=20&pr1=idSKU1~nmShirt~pr10~qt2"

HITS = [
    hit("G-SHOP", SHOP, "page_view", 1),
    hit("G-SHOP", SHOP, "purchase", 2, PURCHASE + "&ep.transaction_id=T-SHOP"),
    hit("G-OUTLET", OUTLET, "purchase", 3, PURCHASE + "&ep.transaction_id=T-OUT"),
    hit("G-OUTLET", OUTLET, "view_item_list", 4),
    hit("G-SHOP", STAGING, "page_view", 5),
    hit("G-SHOP", STAGING, "purchase", 6, PURCHASE + "&ep.transaction_id=T-STAGE"),
    hit("G-SHOP", STAGING, "add_to_cart", 7),
    hit("G-SHOP", SHOP, "user_engagement", 8),
    hit("G-SHOP", SHOP, "purchase", 9, PURCHASE + "&ep.transaction_id=T-DENIED&gcs=G100"),
    hit("G-X", OTHER, "page_view", 10),
]

# (tag, TikTok event, test event code) of every envelope the hits above queue.
EXPECTED = Counter(
    [
        ("shop", "Pageview", None),
        ("audit", "Pageview", None),
        ("shop", "PlaceAnOrder", None),
        ("brand", "PlaceAnOrder", None),
        ("audit", "PlaceAnOrder", None),
        ("outlet", "CompletePayment", None),
        ("brand", "PlaceAnOrder", None),
        ("audit", "PlaceAnOrder", None),
        ("outlet", "ViewContent", None),
        ("audit", "view_item_list", None),
        ("shop", "Pageview", None),
        ("staging", "Pageview", "TESTSTAGE"),
        ("audit", "Pageview", None),
        ("shop", "PlaceAnOrder", None),
        ("staging", "Purchase", "TESTSTAGE"),
        ("brand", "PlaceAnOrder", None),
        ("audit", "PlaceAnOrder", None),
        ("shop", "AddToCart", None),
        ("brand", "AddToCart", None),
        ("audit", "AddToCart", None),
        ("audit", "user_engagement", None),
        # consent denied: shop and brand drop it, audit ignores consent.
        ("audit", "PlaceAnOrder", None),
        ("audit", "Pageview", None),
    ]
)

# Purchase hit (transaction id) -> the tags that queued it.
ORDERS = {
    "T-SHOP": {"shop", "brand", "audit"},
    "T-OUT": {"outlet", "brand", "audit"},
    "T-STAGE": {"shop", "staging", "brand", "audit"},
    "T-DENIED": {"audit"},
}


def test_hits_queue_one_envelope_per_firing_tag_and_reach_each_pixel(config: Config) -> None:
    async def scenario() -> None:
        async with running(config) as gw:
            for url in HITS:
                response = await gw.client.get(url, headers={"user-agent": "UA/1"})
                assert response.status_code == 204, response.text

            leased = await gw.queue.lease(1000, 60)
            envelopes = [Envelope.from_bytes(item.payload) for item in leased]
            got = Counter((e.tag, e.event["event"], e.test_event_code) for e in envelopes)
            assert got == EXPECTED
            for envelope in envelopes:
                assert envelope.pixel_code == PIXELS[envelope.tag]
                assert envelope.test_event_code == TEST_CODES.get(envelope.tag)
                ldu = envelope.event.get("limited_data_use", False)
                assert ldu is (envelope.tag == "outlet")
                content_type = envelope.event.get("properties", {}).get("content_type")
                if content_type is not None:
                    expected_type = "product_group" if envelope.tag == "outlet" else "product"
                    assert content_type == expected_type
            # Per hit: a purchase's event_id is its transaction id.
            orders: dict[str, set[str]] = {}
            for envelope in envelopes:
                orders.setdefault(envelope.event["event_id"], set()).add(envelope.tag)
            assert {order: orders.get(order) for order in ORDERS} == ORDERS
            # Not tried: back in the queue, for the worker.
            await gw.queue.release([item.id for item in leased])

            worker = gw.runtime.worker
            assert worker is not None
            assert gw.runtime.sandbox is not None
            await worker.drain()
            assert (await gw.queue.stats()).depth == 0
            assert (await gw.queue.stats()).dead == 0

            store = sandbox_of(gw.runtime.sandbox).store
            received: Counter[tuple[str, str, str | None]] = Counter()
            for tag, event_name, code in EXPECTED.elements():
                received[(PIXELS[tag], event_name, code)] += 1
            for pixel in set(PIXELS.values()):
                stored = store.events(pixel_code=pixel)
                got_pixel = Counter(
                    (s.pixel_code, s.event["event"], s.test_event_code) for s in stored
                )
                want = Counter({key: n for key, n in received.items() if key[0] == pixel})
                assert got_pixel == want, pixel
            assert len(store) == sum(EXPECTED.values())

            # One request: one pixel and one test code; staging's test events never share a
            # request with the shop tag's live events, although both use pixel CSHOP.
            requests: dict[str, set[tuple[str, str | None]]] = {}
            for one in store.events():
                requests.setdefault(one.request_id, set()).add(
                    (one.pixel_code, one.test_event_code)
                )
            assert all(len(shapes) == 1 for shapes in requests.values())
            staging = [s for s in store.events(pixel_code="CSHOP") if s.test_event_code]
            assert {s.event["event"] for s in staging} == {"Pageview", "Purchase"}
            live_ids = {
                s.request_id for s in store.events(pixel_code="CSHOP") if not s.test_event_code
            }
            assert live_ids.isdisjoint({s.request_id for s in staging})

    asyncio.run(scenario())


# -- the ttclid cookie of the answer (SPEC 10.2), shared by ingest and inspect ----------------


def _mapped(tag: str, cookie: str | None) -> MappedEvent:
    return MappedEvent(tag, "CPIXEL", None, {"event": "Pageview"}, ttclid_cookie=cookie)


@pytest.mark.parametrize(
    ("outcomes", "cookie"),
    [
        ([_mapped("a", "CLK")], "CLK"),
        ([_mapped("a", None), _mapped("b", "CLK")], "CLK"),
        ([DroppedEvent("a", "page_view", "unmapped_event"), _mapped("b", "CLK")], "CLK"),
        ([_mapped("a", "CLK"), DroppedEvent("b", "page_view", "consent")], None),
        ([DroppedEvent("a", "page_view", "consent"), _mapped("b", "CLK")], None),
        ([], None),
    ],
)
def test_no_ttclid_cookie_when_a_tag_blocked_the_event_for_consent(
    outcomes: list[MappedEvent | DroppedEvent], cookie: str | None
) -> None:
    assert ttclid_cookie_of(outcomes) == cookie


def test_inspect_shows_one_request_per_tag_even_for_a_shared_pixel(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[[tags]]\nname = "a"\npixel_code = "CSAME"\n[[tags]]\nname = "b"\npixel_code = "CSAME"\n'
    )
    report = run_inspect(InspectInput(hit="v=2&tid=G-1&en=page_view"), load_config(path, NO_GA4))
    assert [body["event_source_id"] for body in report.bodies] == ["CSAME", "CSAME"]
    assert [len(body["data"]) for body in report.bodies] == [1, 1]
