"""Mapping event data to TikTok events (SPEC 5); each deliberate fix of SPEC 5.9 is named."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tiktok_gateway.tags.tiktok.envelope import queue_item
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, MappedEvent, map_event
from tiktok_gateway.tags.tiktok.payload import request_body
from tiktok_gateway.tags.tiktok.properties import content_of
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

TAG = TikTokTagSettings(name="shop", pixel_code="CPIXEL123")
NOW = 1_700_000_000.5


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def event(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "x-gw-source": "ga4",
        "x-gw-received_at": NOW,
        "x-gw-line": 0,
        "x-ga-measurement_id": "G-TEST",
        "client_id": "1.2",
        "x-ga-page_id": 42,
        "x-ga-request_count": 3,
        "event_name": "page_view",
    }
    data.update(extra)
    return data


def mapped(data: dict[str, Any], tag: TikTokTagSettings = TAG) -> MappedEvent:
    result = map_event(data, tag)
    assert isinstance(result, MappedEvent), result
    return result


def dropped(data: dict[str, Any], tag: TikTokTagSettings = TAG) -> str:
    result = map_event(data, tag)
    assert isinstance(result, DroppedEvent), result
    return result.reason


@pytest.mark.parametrize(
    ("ga4", "tiktok"),
    [
        ("page_view", "Pageview"),
        ("view_item", "ViewContent"),
        ("click", "ClickButton"),
        ("search", "Search"),
        ("view_search_results", "Search"),
        ("add_to_wishlist", "AddToWishlist"),
        ("add_to_cart", "AddToCart"),
        ("begin_checkout", "InitiateCheckout"),
        ("add_payment_info", "AddPaymentInfo"),
        ("purchase", "PlaceAnOrder"),
        ("contact", "Contact"),
        ("file_download", "Download"),
        ("download", "Download"),
        ("generate_lead", "SubmitForm"),
        ("complete_registration", "CompleteRegistration"),
        ("sign_up", "CompleteRegistration"),
        ("subscribe", "Subscribe"),
        ("my_custom_event", "my_custom_event"),
    ],
)
def test_default_event_map(ga4: str, tiktok: str) -> None:
    assert mapped(event(event_name=ga4)).event["event"] == tiktok


@pytest.mark.parametrize("choice", ["PlaceAnOrder", "CompletePayment", "Purchase"])
def test_purchase_event_setting(choice: Any) -> None:
    tag = TikTokTagSettings(pixel_code="C1", purchase_event=choice)
    assert mapped(event(event_name="purchase"), tag).event["event"] == choice


def test_lead_event_setting_and_event_map_override() -> None:
    tag = TikTokTagSettings(pixel_code="C1", lead_event="Lead", event_map={"scroll": "Scrolled"})
    assert mapped(event(event_name="generate_lead"), tag).event["event"] == "Lead"
    assert mapped(event(event_name="scroll"), tag).event["event"] == "Scrolled"


def test_x_ttq_event_name_wins_and_is_mapped_too() -> None:
    result = mapped(event(**{"x-ttq-event-name": "add_to_cart"}))
    assert result.event["event"] == "AddToCart"


@pytest.mark.parametrize("name", ["1starts_with_digit", "has space", "x" * 51, "ümlaut"])
def test_invalid_custom_names_are_dropped(name: str) -> None:
    assert dropped(event(event_name=name)) == "invalid_event_name"


def test_unmapped_events_dropped_by_policy_but_tiktok_names_pass() -> None:
    tag = TikTokTagSettings(pixel_code="C1", unmapped_events="drop")
    assert dropped(event(event_name="scroll"), tag) == "unmapped_event"
    assert mapped(event(event_name="CompletePayment"), tag).event["event"] == "CompletePayment"


def test_event_without_name_is_dropped() -> None:
    data = event()
    del data["event_name"]
    assert dropped(data) == "missing_event_name"


def test_fix_event_id_is_always_a_string() -> None:
    assert mapped(event(event_id=123456)).event["event_id"] == "123456"
    assert mapped(event(**{"x-ttq-event-id": 7.0, "event_id": "x"})).event["event_id"] == "7"


def test_fix_transaction_id_is_event_id_only_for_purchase() -> None:
    assert mapped(event(event_name="purchase", transaction_id="T-1")).event["event_id"] == "T-1"
    other = mapped(event(event_name="add_payment_info", transaction_id="T-1"))
    assert other.event["event_id"] != "T-1"
    assert other.event["event_id"].startswith("gw-")


def test_deterministic_event_id_is_stable_and_distinguishes_events() -> None:
    first = mapped(event()).event["event_id"]
    resent = mapped(event(**{"x-gw-received_at": NOW + 30})).event["event_id"]
    assert first == resent  # the browser re-sending the hit later keeps the id
    assert mapped(event(**{"x-gw-line": 1})).event["event_id"] != first
    assert mapped(event(**{"x-ga-request_count": 4})).event["event_id"] != first
    assert mapped(event(event_name="scroll")).event["event_id"] != first


def test_event_time_is_integer_seconds_from_each_source() -> None:
    assert mapped(event()).event["event_time"] == 1_700_000_000
    assert (
        mapped(event(**{"x-gw-event_time": 1_600_000_000.9})).event["event_time"] == 1_600_000_000
    )
    for stamp in (1_650_000_000, "1650000000", 1_650_000_000_123, "2022-04-15T05:20:00Z"):
        assert mapped(event(**{"x-ttq-timestamp": stamp})).event["event_time"] == 1_650_000_000


def test_fix_email_trimmed_and_lowercased_before_hashing() -> None:
    result = mapped(event(user_data={"email_address": " ALICE_abc@gmail.com "}))
    assert result.event["user"]["email"] == (
        "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"
    )


def test_fix_phone_normalised_to_e164_before_hashing() -> None:
    result = mapped(event(user_data={"phone_number": "(213) 373-4253"}))
    assert result.event["user"]["phone"] == sha("+12133734253")


def test_fix_prehashed_phone_is_not_rehashed() -> None:
    digest = sha("+12133734253")
    assert mapped(event(**{"x-ttq-ud-phone-number": digest})).event["user"]["phone"] == digest


def test_phone_region_of_the_tag_applies() -> None:
    tag = TikTokTagSettings(pixel_code="C1", phone_region="DE")
    result = mapped(event(user_data={"phone_number": "0151 23456789"}), tag)
    assert result.event["user"]["phone"] == sha("+4915123456789")


def test_unusable_phone_is_dropped_with_a_warning() -> None:
    result = mapped(event(user_data={"phone_number": "n/a"}))
    assert "phone" not in result.event.get("user", {})
    assert "invalid_phone" in result.warnings


def test_several_emails_are_a_list_and_one_is_a_string() -> None:
    result = mapped(event(user_data={"sha256_email_address": ["a@b.co", "C@D.co", "a@b.co"]}))
    assert result.event["user"]["email"] == [sha("a@b.co"), sha("c@d.co")]


def test_external_id_from_user_id_and_user_property() -> None:
    assert mapped(event(user_id="user_123")).event["user"]["external_id"] == sha("user_123")
    props = {"x-ga-mp2-user_properties": {"id": "u9"}}
    assert mapped(event(**props)).event["user"]["external_id"] == sha("u9")


def test_address_fields_hashed_or_plain() -> None:
    address = {
        "first_name": "Mary Jane",
        "last_name": "O'Neil",
        "postal_code": "SW1A 1AA",
        "city": "London",
        "region": "Greater London",
        "country": "GB",
    }
    user = mapped(event(user_data={"address": [address]})).event["user"]
    assert user["first_name"] == sha("maryjane")
    assert user["last_name"] == sha("oneil")
    assert user["zip_code"] == sha("sw1a1aa")
    assert (user["city"], user["state"], user["country"]) == ("london", "greater london", "gb")


def test_ip_user_agent_locale() -> None:
    data = event(ip_override="2001:DB8::1", user_agent="UA/1", language="en-us")
    user = mapped(data).event["user"]
    assert (user["ip"], user["user_agent"], user["locale"]) == ("2001:db8::1", "UA/1", "en-US")
    assert "ip" not in mapped(event(ip_override="not-an-ip")).event.get("user", {})


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("::ffff:203.0.113.9", "203.0.113.9"),  # what a dual-stack socket reports for IPv4
        ("203.0.113.9:443", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        (" 2001:DB8::1 ", "2001:db8::1"),
    ],
)
def test_ips_in_event_data_read_as_the_requests_own_client_address(given: str, sent: str) -> None:
    """One normaliser (request_context.normalised_ip) for the peer, the MP body and event data."""
    assert mapped(event(ip_override=given)).event["user"]["ip"] == sent


def test_both_spellings_of_x_ttq_keys() -> None:
    data = event(
        **{"x-ttq-ct-ip-adress": "10.1.2.3", "x-ttq-ct-page-referer": "https://r.example/"}
    )
    result = mapped(data).event
    assert result["user"]["ip"] == "10.1.2.3"
    assert result["page"]["referrer"] == "https://r.example/"


def test_x_ttq_keys_win_over_ga4_keys() -> None:
    data = event(
        page_location="https://ga4.example/",
        user_agent="ga4-ua",
        **{"x-ttq-ct-page-url": "https://ttq.example/", "x-ttq-ct-user-agent": "ttq-ua"},
    )
    result = mapped(data).event
    assert result["page"]["url"] == "https://ttq.example/"
    assert result["user"]["user_agent"] == "ttq-ua"


def test_fix_landing_hit_carries_its_own_ttclid() -> None:
    data = event(page_location="https://shop.example/?utm=x&ttclid=E.C.P%2Babc#frag")
    result = mapped(data)
    assert result.event["user"]["ttclid"] == "E.C.P+abc"
    assert result.ttclid_cookie == "E.C.P+abc"


def test_ttclid_from_same_host_referrer_then_cookie() -> None:
    same = event(
        page_location="https://shop.example/cart",
        page_referrer="https://shop.example/?ttclid=REF",
        **{"x-gw-cookies": {"ttclid": "COOKIE"}},
    )
    assert mapped(same).event["user"]["ttclid"] == "REF"
    other = event(
        page_location="https://shop.example/cart",
        page_referrer="https://elsewhere.example/?ttclid=REF",
        **{"x-gw-cookies": {"ttclid": "COOKIE", "_ttp": "TTP"}},
    )
    result = mapped(other)
    assert result.event["user"]["ttclid"] == "COOKIE"
    assert result.event["user"]["ttp"] == "TTP"
    assert result.ttclid_cookie is None


def test_email_addresses_in_page_url_and_referrer_are_redacted() -> None:
    # SPEC 13: before the event is queued for TikTok; the ttclid still comes from the URL.
    data = event(
        page_location="https://shop.example/welcome?email=alice%40example.com&ttclid=CLICK",
        page_referrer="https://u:pw@mail.example/%C3%A9lise%2540b%C3%BCcher.de/inbox",
        **{"x-ttq-ct-page-url": "https://shop.example/thanks/bob@example.org?ttclid=CLICK"},
    )
    result = mapped(data)
    assert result.event["page"] == {
        "url": "https://shop.example/thanks/(redacted)?ttclid=CLICK",
        "referrer": "https://mail.example/(redacted)/inbox",
    }
    assert result.event["user"]["ttclid"] == "CLICK"
    _, queued = queue_item(result)  # the bytes ingest queues for TikTok
    for personal in (b"@", b"%40", b"alice", b"example.org"):
        assert personal not in queued


def test_page_urls_without_addresses_are_sent_as_received() -> None:
    url = "https://shop.example/p?q=caf%C3%A9&utm_source=x%20y#top"
    result = mapped(event(page_location=url, page_referrer="https://r.example/@handle"))
    assert result.event["page"] == {"url": url, "referrer": "https://r.example/@handle"}


def test_fix_missing_page_url_does_not_crash() -> None:
    assert "page" not in mapped(event()).event


def test_contents_from_items_with_string_ids_numbers_and_default_quantity() -> None:
    items = [
        {
            "item_id": 12345,
            "item_name": "Tee",
            "item_brand": "B",
            "item_category": "C",
            "price": "10.5",
        },
        {"item_id": "SKU-2", "price": 2, "quantity": "3"},
        {"item_name": "no id, left out", "price": 1},
    ]
    props = mapped(event(event_name="view_item", items=items)).event["properties"]
    assert props["contents"] == [
        {
            "content_id": "12345",
            "content_type": "product",
            "content_name": "Tee",
            "content_category": "C",
            "brand": "B",
            "price": 10.5,
            "quantity": 1,
        },
        {"content_id": "SKU-2", "content_type": "product", "price": 2, "quantity": 3},
    ]
    assert props["content_ids"] == ["12345", "SKU-2"]
    assert props["content_type"] == "product"
    assert props["value"] == 16.5  # sum of price x quantity


def test_value_is_rounded_half_up_with_decimals() -> None:
    items = [
        {"item_id": "a", "price": 0.125, "quantity": 1},
        {"item_id": "b", "price": 1.01, "quantity": 3},
    ]
    assert mapped(event(items=items)).event["properties"]["value"] == 3.16
    assert mapped(event(value="2.675")).event["properties"]["value"] == 2.68


def test_fix_value_zero_is_kept() -> None:
    assert mapped(event(value=0, currency="eur")).event["properties"] == {
        "currency": "EUR",
        "value": 0,
    }


def test_x_ttq_contents_as_json_string_and_content_type() -> None:
    data = event(
        **{
            "x-ttq-pt-contents": '[{"content_id": 7, "price": "3.5", "quantity": 2}]',
            "x-ttq-pt-content-type": "product_group",
            "x-ttq-pt-value": "7",
            "x-ttq-pt-currency": "usd",
        }
    )
    props = mapped(data).event["properties"]
    assert props["contents"] == [
        {"content_id": "7", "content_type": "product_group", "price": 3.5, "quantity": 2}
    ]
    assert (props["content_type"], props["value"], props["currency"]) == ("product_group", 7, "USD")


def test_currency_from_first_item_and_text_properties() -> None:
    data = event(
        event_name="purchase",
        items=[{"item_id": "a", "currency": "chf"}],
        search_term="shoes",
        transaction_id=991,
        **{"x-ttq-pt-description": "desc", "x-ttq-pt-shop-id": "s1"},
    )
    props = mapped(data).event["properties"]
    assert props["currency"] == "CHF"
    assert props["search_string"] == "shoes"
    assert props["order_id"] == "991"
    assert (props["description"], props["shop_id"]) == ("desc", "s1")


def test_limited_data_use_and_test_event_code_precedence() -> None:
    tag = TikTokTagSettings(pixel_code="C1", limited_data_use=True, test_event_code="TAG1")
    assert mapped(event(), tag).event["limited_data_use"] is True
    assert "limited_data_use" not in mapped(event(**{"x-ttq-ldu": "false"}), tag).event
    assert mapped(event(), tag).test_event_code == "TAG1"
    assert mapped(event(test_event_code="EP"), tag).test_event_code == "EP"
    assert (
        mapped(event(**{"x-ttq-test-event-code": "X", "test_event_code": "EP"})).test_event_code
        == "X"
    )
    assert mapped(event()).test_event_code is None


def test_consent_respect_drops_on_ad_storage_denied_and_strips_pii() -> None:
    pii = {"user_data": {"email_address": "a@b.co"}, "user_id": "u1", "ip_override": "1.2.3.4"}
    assert dropped(event(**{"x-ga-gcs": "G100"}, **pii)) == "consent"
    stripped = mapped(event(**{"x-ga-gcd": "13v3v3q2q5l1"}, **pii)).event["user"]
    assert stripped == {"ip": "1.2.3.4"}
    mp_denied = mapped(event(**{"x-gw-consent": {"ad_user_data": "denied"}}, **pii)).event["user"]
    assert "email" not in mp_denied


def test_consent_ignore_sends_everything() -> None:
    tag = TikTokTagSettings(pixel_code="C1", consent="ignore")
    result = mapped(event(user_id="u1", **{"x-ga-gcs": "G100"}), tag)
    assert result.event["user"]["external_id"] == sha("u1")


def test_request_body_is_events_api_2_without_partner_name() -> None:
    result = mapped(event())
    body = request_body("CPIXEL123", [result.event], "TEST1")
    assert body == {
        "event_source": "web",
        "event_source_id": "CPIXEL123",
        "test_event_code": "TEST1",
        "data": [result.event],
    }
    assert "partner_name" not in body
    assert "test_event_code" not in request_body("C", [result.event])


def test_explain_names_the_source_keys() -> None:
    data = event(user_data={"email_address": "a@b.co"}, page_location="https://x.example/")
    result = map_event(data, TAG, explain=True)
    assert isinstance(result, MappedEvent)
    assert result.explain["event"] == "event_name"
    assert result.explain["user.email"] == "user_data.email_address"
    assert result.explain["page.url"] == "page_location"
    assert result.explain["event_time"] == "x-gw-received_at"


def test_blank_content_fields_fall_through_to_the_next_key() -> None:
    entry = {"content_id": " ", "item_id": "A1", "content_name": "", "item_name": "Tee"}
    assert content_of(entry, "product") == {
        "content_id": "A1",
        "content_type": "product",
        "content_name": "Tee",
        "quantity": 1,
    }
