"""``serve`` imports only what it runs before it answers (bench/million.py: imports are most of
its start): no redis-py without a Redis queue, no other command's module, and no aiohttp (no
longer a runtime dependency, but in the bench extra: nothing may start importing it again)."""

from __future__ import annotations

import json
import subprocess
import sys

SERVE_START = """
import json, sys
from tiktok_gateway.cli import main
main.get_command(None, "serve")  # what `tiktok-gateway serve` imports
from tiktok_gateway.config import load_config
from tiktok_gateway.runtime import build_collectors, build_destinations
config = load_config(None, {
    "TIKTOK_PIXEL_CODE": "CIMPORT", "TIKTOK_ACCESS_TOKEN": "t",
    "GATEWAY_GA4_FORWARD": "true", "GATEWAY_GA4_ENDPOINT": "https://region1.google-analytics.com",
})
build_destinations(config), build_collectors(config)  # GA4 forwarding to Google included
print(json.dumps(sorted(sys.modules)))
"""

NOT_BEFORE_NEEDED = (
    "aiohttp",
    "yarl",
    "redis",
    "tiktok_gateway.queue.redis_streams",
    "tiktok_gateway.cli.check",
    "tiktok_gateway.cli.inspect",
    "tiktok_gateway.cli.queue",
)


def test_serve_imports_no_aiohttp_redis_or_other_command_at_start() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVE_START], capture_output=True, text=True, check=True
    ).stdout
    imported = set(json.loads(out))
    assert "tiktok_gateway.cli.serve" in imported
    assert "tiktok_gateway.tags.ga4.sender" in imported
    assert imported.isdisjoint(NOT_BEFORE_NEEDED), imported & set(NOT_BEFORE_NEEDED)
