"""A local emulator of TikTok's ``POST /open_api/v1.3/event/track/`` (SPEC 9).

Used standalone (``tiktok-gateway sandbox``) and mounted in the gateway as the default target when
no access token is configured. ``validation`` holds TikTok's checks, ``faults`` the injected
misbehaviour, ``store`` what was accepted, ``app`` the routes and ``server`` the uvicorn runner.
"""

from __future__ import annotations

from tiktok_gateway.sandbox.app import Sandbox, create_sandbox_app, sandbox_of
from tiktok_gateway.sandbox.faults import Fault, FaultInjector, FaultKind, FaultSettings
from tiktok_gateway.sandbox.server import run_sandbox, sandbox_server_config
from tiktok_gateway.sandbox.store import EventStore, StoredEvent, Totals
from tiktok_gateway.sandbox.validation import Verdict, validate

__all__ = [
    "EventStore",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "FaultSettings",
    "Sandbox",
    "StoredEvent",
    "Totals",
    "Verdict",
    "create_sandbox_app",
    "run_sandbox",
    "sandbox_of",
    "sandbox_server_config",
    "validate",
]
