"""The configuration of one TikTok tag: a pixel with its settings and its trigger (SPEC 11)."""

from __future__ import annotations

from typing import Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator

from tiktok_gateway.tags.tiktok.event_map import build_event_map, is_valid_event_name
from tiktok_gateway.tags.triggers import TriggerSettings

DEFAULT_API_URL = "https://business-api.tiktok.com"


class TikTokTagSettings(BaseModel):
    """One TikTok pixel and how events are mapped for it.

    ``access_token`` is resolved by the configuration loader (from the value itself, an environment
    variable or a file) and is a ``SecretStr``: it prints as ``**********``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # No control characters: a name is shown in logs and pages, and it is the queue group of
    # the tag's events.
    name: str = Field(
        default="default",
        min_length=1,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Name in logs and pages.",
    )
    pixel_code: str = Field(min_length=1, description="TikTok pixel code (event_source_id).")
    access_token: SecretStr | None = Field(default=None, description="Events API access token.")
    api_url: str = Field(default=DEFAULT_API_URL, description="Base URL of the Events API.")
    purchase_event: Literal["PlaceAnOrder", "CompletePayment", "Purchase"] = Field(
        default="PlaceAnOrder", description="TikTok event sent for GA4 purchase."
    )
    lead_event: Literal["SubmitForm", "Lead"] = Field(
        default="SubmitForm", description="TikTok event sent for GA4 generate_lead."
    )
    content_type: Literal["product", "product_group"] = Field(
        default="product", description="content_type of contents built from items."
    )
    phone_region: str = Field(
        default="US", description="Region for phone numbers written without a country code."
    )
    consent: Literal["respect", "ignore"] = Field(
        default="respect", description="respect: obey ad_storage / ad_user_data denials."
    )
    limited_data_use: bool = Field(default=False, description="Send limited_data_use: true.")
    test_event_code: str = Field(default="", description="Route events to Test Events.")
    unmapped_events: Literal["send", "drop"] = Field(
        default="send", description="Events not in the map: send as custom events, or drop."
    )
    trigger: TriggerSettings = Field(default_factory=TriggerSettings)
    event_map: dict[str, str] = Field(
        default_factory=dict, description="Overrides of the default GA4 -> TikTok event map."
    )

    _resolved_map: dict[str, str] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object, /) -> None:
        self._resolved_map = build_event_map(self.purchase_event, self.lead_event, self.event_map)

    @property
    def resolved_event_map(self) -> dict[str, str]:
        """Defaults, purchase and lead choices and overrides, merged once at load."""
        private = self.__pydantic_private__
        assert private is not None
        resolved: dict[str, str] = private["_resolved_map"]
        return resolved

    @field_validator("pixel_code")
    @classmethod
    def _pixel_code_is_plain(cls, value: str) -> str:
        value = value.strip()
        if not value.isalnum():
            raise ValueError("a pixel code holds letters and digits only")
        return value

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region code phonenumbers knows (e.g. US, DE)")
        return region

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("event_map")
    @classmethod
    def _valid_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for source, target in value.items():
            if not is_valid_event_name(target):
                raise ValueError(f"{source} -> {target!r}: not a valid TikTok event name")
        return value
