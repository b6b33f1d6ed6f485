"""The destination kinds the gateway knows: one line each (``tags/kind.py`` says what a kind is).

Adding a kind: a folder under ``tags/`` whose ``kind.py`` exports ``KIND``, and its line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tiktok_gateway.config import Config
from tiktok_gateway.tags.ga4.kind import KIND as GA4
from tiktok_gateway.tags.kind import Kind
from tiktok_gateway.tags.tiktok.kind import KIND as TIKTOK

KINDS: tuple[Kind, ...] = (TIKTOK, GA4)

BY_NAME: Mapping[str, Kind] = MappingProxyType({kind.name: kind for kind in KINDS})


def config_secrets(config: Config) -> list[str]:
    """The secret values of a configuration: the admin and ingest tokens, the Measurement
    Protocol api secrets, and every kind's own (access tokens)."""
    gateway = config.gateway
    found = [token for token in (gateway.admin_token, gateway.ingest_token) if token is not None]
    found += list(gateway.mp_api_secrets.values())
    values = [secret.get_secret_value() for secret in found]
    values += [value for kind in KINDS for value in kind.secrets(config)]
    return [value for value in values if value]
