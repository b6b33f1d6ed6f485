"""Where each TikTok field comes from: ordered event-data keys, first non-empty wins (SPEC 5).

Each table lists the keys of one TikTok field in precedence order; ``x-ttq-*`` keys come first, both
spellings of the original template are accepted. A dotted key reads through nested objects
(``user_data.email_address``); user properties of GA4 hits live under
``x-ga-mp2-user_properties``.
"""

from __future__ import annotations

from typing import Any, Final

from tiktok_gateway.event_data import EVENT_TIME_KEY, RECEIVED_AT_KEY, EventData, is_empty
from tiktok_gateway.sources.ga4_params import USER_PROPERTIES_KEY

Sources = tuple[tuple[str, tuple[str, ...]], ...]


def sources(*keys: str) -> Sources:
    """Compile event-data keys (dotted for nested objects) into a lookup table."""
    return tuple((key, tuple(key.split("."))) for key in keys)


EVENT_NAME: Final[Sources] = sources("x-ttq-event-name", "event_name")
EVENT_TIME: Final[Sources] = sources("x-ttq-timestamp", EVENT_TIME_KEY, RECEIVED_AT_KEY)
EVENT_ID: Final[Sources] = sources("x-ttq-event-id", "event_id")
IP: Final[Sources] = sources("x-ttq-ct-ip-address", "x-ttq-ct-ip-adress", "ip_override")
USER_AGENT: Final[Sources] = sources("x-ttq-ct-user-agent", "user_agent")
PAGE_URL: Final[Sources] = sources("x-ttq-ct-page-url", "page_location")
PAGE_REFERRER: Final[Sources] = sources(
    "x-ttq-ct-page-referrer", "x-ttq-ct-page-referer", "page_referrer"
)
TTCLID: Final[Sources] = sources("x-ttq-ttclid")
TTP: Final[Sources] = sources("x-ttq-ttp", "x-gw-cookies._ttp")
COOKIE_TTCLID: Final[Sources] = sources("x-gw-cookies.ttclid")
LOCALE: Final[Sources] = sources("language")
EMAIL: Final[Sources] = sources(
    "x-ttq-ud-email",
    "user_data.sha256_email_address",
    "user_data.email_address",
    "user_data.email",
    f"{USER_PROPERTIES_KEY}.email",
)
PHONE: Final[Sources] = sources(
    "x-ttq-ud-phone-number",
    "user_data.sha256_phone_number",
    "user_data.phone_number",
    "user_data.phone",
    f"{USER_PROPERTIES_KEY}.phone",
    f"{USER_PROPERTIES_KEY}.phone_number",
)
EXTERNAL_ID: Final[Sources] = sources(
    "x-ttq-ud-external-id", "user_id", f"{USER_PROPERTIES_KEY}.id"
)
ADDRESS: Final[Sources] = sources("user_data.address")
CONTENTS: Final[Sources] = sources("x-ttq-pt-contents")
ITEMS: Final[Sources] = sources("items")
CONTENT_TYPE: Final[Sources] = sources("x-ttq-pt-content-type")
CURRENCY: Final[Sources] = sources("x-ttq-pt-currency", "currency")
VALUE: Final[Sources] = sources("x-ttq-pt-value", "value")
SEARCH_STRING: Final[Sources] = sources("x-ttq-pt-query", "search_term")
DESCRIPTION: Final[Sources] = sources("x-ttq-pt-description")
ORDER_ID: Final[Sources] = sources("x-ttq-pt-order-id", "transaction_id")
SHOP_ID: Final[Sources] = sources("x-ttq-pt-shop-id")
TRANSACTION_ID: Final[Sources] = sources("transaction_id")
LIMITED_DATA_USE: Final[Sources] = sources("x-ttq-ldu", "limited_data_use")
TEST_EVENT_CODE: Final[Sources] = sources("x-ttq-test-event-code", "test_event_code")

# Inside one address object (GA4 user_data.address), hashed variants first.
ADDRESS_FIRST_NAME: Final[Sources] = sources("sha256_first_name", "first_name")
ADDRESS_LAST_NAME: Final[Sources] = sources("sha256_last_name", "last_name")
ADDRESS_ZIP: Final[Sources] = sources("sha256_postal_code", "postal_code", "zip_code", "zip")
ADDRESS_CITY: Final[Sources] = sources("city")
ADDRESS_STATE: Final[Sources] = sources("region", "state")
ADDRESS_COUNTRY: Final[Sources] = sources("country")

# Inside one contents entry: TikTok's own names (x-ttq-pt-contents) first, then GA4 item names.
CONTENT_ID: Final[Sources] = sources("content_id", "item_id", "id")
CONTENT_NAME: Final[Sources] = sources("content_name", "item_name")
CONTENT_CATEGORY: Final[Sources] = sources("content_category", "item_category")
CONTENT_BRAND: Final[Sources] = sources("brand", "item_brand")


def lookup(data: EventData, table: Sources) -> tuple[str, Any] | None:
    """The first ``(key, value)`` of ``table`` whose value in ``data`` is not empty.

    Empty means missing, ``None``, a blank string or an empty list/object; ``0`` is a value. A
    dotted key reads through nested objects (dicts, as everywhere in event data).
    """
    for key, path in table:
        value: Any = data.get(path[0])
        for depth in range(1, len(path)):
            if not isinstance(value, dict):
                value = None
                break
            value = value.get(path[depth])
        if value is None:
            continue
        if type(value) is str:
            if value and not value.isspace():
                return key, value
        elif not is_empty(value):
            return key, value
    return None
