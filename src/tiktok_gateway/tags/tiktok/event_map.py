"""GA4 event names -> TikTok event names (SPEC 5.1), as data.

``purchase`` and ``generate_lead`` are not in the fixed table: they follow the tag's purchase-event
and lead-event settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

DEFAULT_EVENT_MAP: Final[Mapping[str, str]] = {
    "page_view": "Pageview",
    "view_item": "ViewContent",
    "click": "ClickButton",
    "search": "Search",
    "view_search_results": "Search",
    "add_to_wishlist": "AddToWishlist",
    "add_to_cart": "AddToCart",
    "begin_checkout": "InitiateCheckout",
    "add_payment_info": "AddPaymentInfo",
    "contact": "Contact",
    "file_download": "Download",
    "download": "Download",
    "complete_registration": "CompleteRegistration",
    "sign_up": "CompleteRegistration",
    "subscribe": "Subscribe",
}

PURCHASE_EVENTS: Final = ("PlaceAnOrder", "CompletePayment", "Purchase")

# TikTok's rule for custom event names: at most 50 characters, a letter first, then letters,
# digits, "_" and "-".
_VALID_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,49}")


def build_event_map(
    purchase_event: str, lead_event: str, overrides: Mapping[str, str]
) -> dict[str, str]:
    """The complete map of one tag: the defaults, its purchase/lead choices, then its overrides."""
    table = dict(DEFAULT_EVENT_MAP)
    table["purchase"] = purchase_event
    table["generate_lead"] = lead_event
    table.update(overrides)
    return table


def is_valid_event_name(name: str) -> bool:
    """True when TikTok accepts ``name`` as an event name (standard or custom)."""
    return _VALID_NAME.fullmatch(name) is not None


# Names TikTok knows (current standard events and the older names it still accepts and maps). With
# the tag policy ``unmapped_events = "drop"`` these still go through, since they need no mapping.
TIKTOK_EVENTS: Final = frozenset(
    {
        "AddPaymentInfo", "AddToCart", "AddToWishlist", "ApplicationApproval",
        "CompleteRegistration", "Contact", "CustomizeProduct", "Download", "FindLocation",
        "InitiateCheckout", "Lead", "Purchase", "Schedule", "Search", "StartTrial",
        "SubmitApplication", "Subscribe", "ViewContent",
        "CompletePayment", "SubmitForm", "PlaceAnOrder", "ClickButton", "Pageview",
    }
)  # fmt: skip
