"""Golden tests: real-looking GA4 hits, MP bodies and /events bodies -> the exact TikTok events.

Each ``tests/fixtures/golden/*.json`` file holds one request and the TikTok events it must become
for one tag. The expected events were derived by hand from SPEC sections 2-7 (every SHA-256 computed
from the normalised value of SPEC 6), not copied from the program's output. A case the program gets
wrong carries ``"xfail": "<reason>"`` and runs as a strict expected failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tiktok_gateway.errors import LineError
from tiktok_gateway.event_data import ParsedInput, RequestContext
from tiktok_gateway.sources.events_api import parse_events
from tiktok_gateway.sources.ga4_web import parse_hit
from tiktok_gateway.sources.measurement_protocol import parse_mp
from tiktok_gateway.tags.tiktok.mapping import DroppedEvent, MappedEvent
from tiktok_gateway.tags.tiktok.router import route
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

GOLDEN_DIR = Path(__file__).parent / "fixtures" / "golden"
CASE_FILES = sorted(GOLDEN_DIR.glob("*.json"))

# Every SPEC row the golden files must cover between them: deleting a file (or a row from its
# "covers") that is the only one covering a row fails test_required_rows_are_covered.
REQUIRED_COVERAGE: tuple[str, ...] = (
    "2 _ss/_fv are flags, not events",
    "2 batched body with CRLF",
    "2 line without en is a per-line error",
    "2 uip in a browser hit ignored",
    "2.0 items in N order",
    "2.0 items with custom params",
    "2.0 ~~ is a literal tilde",
    "2.1 gcd update wins over default",
    "2.1 gcs G1-- falls through to gcd",
    "2.2 em base64url hash to hex",
    "2.2 em error code e2 ignored",
    "2.2 em hex hash lower-cased",
    "2.2 em several emails as a list",
    "3.1 /events body",
    "3.2 Measurement Protocol body",
    "5.1 add_payment_info -> AddPaymentInfo",
    "5.1 add_to_cart -> AddToCart",
    "5.1 add_to_wishlist -> AddToWishlist",
    "5.1 begin_checkout -> InitiateCheckout",
    "5.1 click -> ClickButton",
    "5.1 complete_registration -> CompleteRegistration",
    "5.1 contact -> Contact",
    "5.1 download -> Download",
    "5.1 file_download -> Download",
    "5.1 generate_lead -> Lead (setting)",
    "5.1 generate_lead -> SubmitForm (default)",
    "5.1 invalid custom name dropped",
    "5.1 page_view -> Pageview",
    "5.1 purchase -> CompletePayment (setting)",
    "5.1 purchase -> PlaceAnOrder (default)",
    "5.1 purchase -> Purchase (setting)",
    "5.1 search -> Search",
    "5.1 sign_up -> CompleteRegistration",
    "5.1 subscribe -> Subscribe",
    "5.1 tag event_map overrides",
    "5.1 unmapped event dropped by tag policy",
    "5.1 unmapped name sent unchanged",
    "5.1 view_item -> ViewContent",
    "5.1 view_search_results -> Search",
    "5.2 x-ttq keys as GA4 event parameters",
    "5.2 x-ttq keys win over GA4 keys",
    "5.2 x-ttq-ct-ip-address",
    "5.2 x-ttq-ct-ip-adress (README spelling)",
    "5.2 x-ttq-ct-page-referer (README spelling)",
    "5.2 x-ttq-ct-page-referrer",
    "5.2 x-ttq-ct-page-url",
    "5.2 x-ttq-ct-user-agent",
    "5.2 x-ttq-event-id",
    "5.2 x-ttq-event-name",
    "5.2 x-ttq-event-name through the event map",
    "5.2 x-ttq-ldu",
    "5.2 x-ttq-pt-content-type",
    "5.2 x-ttq-pt-contents",
    "5.2 x-ttq-pt-contents as JSON string",
    "5.2 x-ttq-pt-contents wins over items",
    "5.2 x-ttq-pt-currency",
    "5.2 x-ttq-pt-description",
    "5.2 x-ttq-pt-order-id",
    "5.2 x-ttq-pt-query",
    "5.2 x-ttq-pt-shop-id",
    "5.2 x-ttq-pt-value",
    "5.2 x-ttq-test-event-code",
    "5.2 x-ttq-timestamp ISO-8601",
    "5.2 x-ttq-timestamp milliseconds",
    "5.2 x-ttq-timestamp seconds",
    "5.2 x-ttq-ttclid",
    "5.2 x-ttq-ttp",
    "5.2 x-ttq-ud-email",
    "5.2 x-ttq-ud-external-id",
    "5.2 x-ttq-ud-phone-number",
    "5.3 deterministic event_id",
    "5.3 deterministic event_id falls back to receive time",
    "5.3 deterministic event_id per line",
    "5.3 deterministic event_id with own time",
    "5.3 deterministic event_id with x-ttq-timestamp",
    "5.3 event_id from event_id",
    "5.3 event_id from transaction_id for purchase",
    "5.3 event_time from MP request timestamp_micros",
    "5.3 event_time from MP timestamp_micros",
    "5.3 event_time from receive time",
    "5.4 address country plain",
    "5.4 address fields",
    "5.4 address list: first used",
    "5.4 external_id from user property id",
    "5.4 external_id from user_id",
    "5.4 one value as a string",
    "5.4 page.url and page.referrer",
    "5.4 referrer of another host ignored",
    "5.4 several emails as a list",
    "5.4 state from region",
    "5.4 ttclid from cookie",
    "5.4 ttclid from page URL",
    "5.4 ttclid from same-host referrer",
    "5.4 ttclid from x-ttq-ttclid",
    "5.4 ttp from _ttp cookie",
    "5.4 user.email from user property email",
    "5.4 user.email from user_data.email",
    "5.4 user.email from user_data.email_address",
    "5.4 user.ip from MP ip_override",
    "5.4 user.ip from the request",
    "5.4 user.ip normalised",
    "5.4 user.locale",
    "5.4 user.phone from user property phone_number",
    "5.4 user.phone from user_data.phone_number",
    "5.4 user.user_agent from the request",
    "5.5 content_type and content_ids",
    "5.5 content_type from the tag setting",
    "5.5 content_type from x-ttq-pt-content-type",
    "5.5 contents from items",
    "5.5 currency",
    "5.5 currency from the first item",
    "5.5 currency upper-cased",
    "5.5 description",
    "5.5 item content_type wins",
    "5.5 item without id left out",
    "5.5 numeric strings converted",
    "5.5 order_id from transaction_id",
    "5.5 quantity 1 when missing",
    "5.5 search_string from search_term",
    "5.5 shop_id",
    "5.5 value 0 is sent",
    "5.5 value from items",
    "5.5 value from value",
    "5.5 value integral float sent as int",
    "5.5 value rounded half-up",
    "5.6 limited_data_use from event parameter",
    "5.6 limited_data_use from tag setting",
    "5.6 limited_data_use from x-ttq-ldu",
    "5.6 limited_data_use precedence x-ttq > param > tag",
    "5.6 test_event_code from event parameter",
    "5.6 test_event_code from tag setting",
    "5.6 test_event_code from x-ttq-test-event-code",
    "5.6 test_event_code precedence x-ttq > param > tag",
    "5.7 MP consent granted",
    "5.7 gcs wins over gcd for ad_storage",
    "5.7 ignore: everything sent",
    "5.7 respect: MP consent ad_user_data denied strips personal data",
    "5.7 respect: ad_storage denied from gcd drops",
    "5.7 respect: ad_storage denied from gcs drops",
    "5.7 respect: ad_user_data denied strips personal data",
    "5.7 respect: consent not set is sent",
    "5.7 respect: granted consent is sent",
    "5.8 user_engagement excluded by default",
    "5.9 both spellings accepted",
    "5.9 email trimmed and lower-cased",
    "5.9 event_id is always a string",
    "5.9 landing hit carries its own ttclid",
    "5.9 missing page URL does not crash",
    "5.9 numeric ids do not crash",
    "5.9 phone normalised to E.164",
    "5.9 pre-hashed phone is not re-hashed",
    "5.9 transaction_id is event_id only for purchase",
    "5.9 value 0 is kept",
    "6 email golden vector",
    "6 external_id golden vector",
    "6 names lower-cased without whitespace and punctuation",
    "6 names: Unicode punctuation removed",
    "6 names: letters of any script kept",
    "6 phone golden vector",
    "6 phone with the tag's default region",
    "6 pre-hashed value lower-cased",
    "6 unusable phone dropped",
    "6 zip hashed from plain postal code",
    "6 zip lower-cased without spaces and dashes",
    "10.2 ttclid cookie value from page URL",
)


def load(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    return document


def _params(path: Path) -> Any:
    reason = load(path).get("xfail")
    marks = [pytest.mark.xfail(reason=str(reason), strict=True)] if reason else []
    return pytest.param(path, id=path.name, marks=marks)


def parse(request: dict[str, Any]) -> ParsedInput:
    """Run the request through the source parser its ``source`` names."""
    ctx = RequestContext(
        received_at=float(request["received_at"]),
        user_agent=request.get("user_agent"),
        ip=request.get("ip"),
        cookies=dict(request.get("cookies", {})),
    )
    source = request["source"]
    if source == "ga4":
        body = str(request.get("body", ""))
        return parse_hit(str(request["query"]), body.encode(), ctx)
    if source == "mp":
        params = dict(parse_qsl(str(request["query"])))
        return parse_mp(
            json.dumps(request["json"]).encode(),
            ctx,
            measurement_id=params.get("measurement_id"),
            api_secret=params.get("api_secret"),
            secrets=None,
        )
    assert source == "events", source
    return parse_events(json.dumps(request["json"]).encode(), ctx)


def run(case: dict[str, Any]) -> tuple[list[MappedEvent], list[DroppedEvent], list[LineError]]:
    parsed = parse(case["request"])
    tag = TikTokTagSettings(**case["tag"])
    mapped: list[MappedEvent] = []
    dropped: list[DroppedEvent] = []
    for data in parsed.events:
        for outcome in route(data, [tag]):
            if isinstance(outcome, MappedEvent):
                mapped.append(outcome)
            else:
                dropped.append(outcome)
    return mapped, dropped, parsed.errors


@pytest.mark.parametrize("path", [_params(path) for path in CASE_FILES])
def test_golden(path: Path) -> None:
    case = load(path)
    expect: dict[str, Any] = case["expect"]
    mapped, dropped, errors = run(case)

    assert [m.event for m in mapped] == expect["events"]
    assert [d.reason for d in dropped] == expect.get("dropped", [])
    assert [e.reason for e in errors] == expect.get("errors", [])
    codes = expect.get("test_event_codes", [None] * len(expect["events"]))
    assert [m.test_event_code for m in mapped] == codes
    cookies = expect.get("ttclid_cookies", [None] * len(expect["events"]))
    assert [m.ttclid_cookie for m in mapped] == cookies


def test_there_are_enough_cases() -> None:
    assert len(CASE_FILES) >= 28


def test_cases_are_well_formed() -> None:
    allowed = {"name", "covers", "tag", "request", "expect", "xfail"}
    for path in CASE_FILES:
        case = load(path)
        assert set(case) <= allowed, path.name
        assert case["name"], path.name
        assert case["covers"], path.name
        assert case["request"]["source"] in {"ga4", "mp", "events"}, path.name


def test_required_rows_are_covered() -> None:
    covered = {row for path in CASE_FILES for row in load(path)["covers"]}
    missing = [row for row in REQUIRED_COVERAGE if row not in covered]
    assert missing == []
