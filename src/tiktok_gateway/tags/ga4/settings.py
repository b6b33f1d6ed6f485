"""The ``[ga4]`` table: forwarding every GA4 hit to Google Analytics (SPEC 12).

Every key is also an environment variable ``GATEWAY_GA4_<KEY>`` (``GATEWAY_GA4_MEASUREMENT_IDS``
comma-separated). Forwarding is on by default: a site that points its GA4 tag at the gateway
must not lose its analytics by default.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

IpMode = Literal["full", "truncated", "none"]

AUTO = "auto"
SANDBOX = "sandbox"
REGION1_URL = "https://region1.google-analytics.com"
WWW_URL = "https://www.google-analytics.com"

CommaList = Annotated[tuple[str, ...], NoDecode]


class GA4Settings(BaseModel):
    """How GA4 hits go on to Google Analytics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forward: bool = Field(default=True, description="Forward GA4 hits to Google Analytics.")
    measurement_ids: CommaList = Field(
        default=(), description="Measurement ids to forward (G-...); empty: every one."
    )
    endpoint: str = Field(
        default=AUTO,
        description="auto (Google: region1 or www, as the hit asks), sandbox (the built-in"
        " stand-in), or a base URL (https://host[:port][/path]).",
    )
    ip_mode: IpMode = Field(
        default="full",
        description="The visitor's IP sent as _uip: full, truncated (IPv4 /24, IPv6 /48), none.",
    )
    max_age_hours: float = Field(
        default=72.0,
        gt=0,
        description="Forwards still failing this long after the hit are dead-lettered"
        " (Google records events at most 72 hours late).",
    )
    max_in_flight: int = Field(
        default=32, ge=1, description="Requests to Google at once (one hit each)."
    )

    @field_validator("measurement_ids", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("measurement_ids")
    @classmethod
    def _upper_case(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Measurement ids are upper case (G-ABC123); compared upper-cased, once here.
        return tuple(mid.strip().upper() for mid in value)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in (AUTO, SANDBOX):
            return value.lower()
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("use auto, sandbox, or a base URL like https://host[:port][/path]")
        if parts.query or parts.fragment:
            raise ValueError("a base URL has no query or fragment")
        return value.rstrip("/")

    def allows(self, measurement_id: str | None) -> bool:
        """Whether hits of ``measurement_id`` are forwarded (an empty allow-list: all)."""
        if not self.measurement_ids:
            return True
        return measurement_id is not None and measurement_id.upper() in self.measurement_ids

    def target(self, region1: bool) -> str:
        """Where a forward goes, in words: Google's host, ``built-in sandbox``, or the base URL."""
        if self.endpoint == AUTO:
            return (REGION1_URL if region1 else WWW_URL).removeprefix("https://")
        if self.endpoint == SANDBOX:
            return "built-in sandbox"
        return self.endpoint

    def base_url(self, region1: bool, sandbox_url: str) -> str:
        """Where a forward goes: Google's region1 or www host (``auto``, by what the hit
        asked), the built-in sandbox's ``sandbox_url``, or the configured base URL. Never a
        host taken from input."""
        if self.endpoint == AUTO:
            return REGION1_URL if region1 else WWW_URL
        if self.endpoint == SANDBOX:
            return sandbox_url
        return self.endpoint
