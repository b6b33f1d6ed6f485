"""Optional native build: compiles the per-event hot path with mypyc.

``pyproject.toml`` holds the package metadata. This file only adds extension modules, and only
when ``TIKTOK_GATEWAY_COMPILE=1``: ``make install`` sets it and builds them in place
(``setup.py build_ext --inplace``) inside the project's venv, where mypy and the typed
dependencies the compiler needs are installed. Without it the package is pure Python and behaves
the same, about half as fast on parse + map (docs/performance.md).
"""

from __future__ import annotations

import os

from setuptools import setup

# The modules every event goes through: GA4 parsing, event data, routing and the TikTok mapping.
# Modules holding pydantic models (settings, triggers) stay interpreted: mypyc cannot compile them.
COMPILED = [
    "src/tiktok_gateway/event_data.py",
    "src/tiktok_gateway/sha256.py",
    "src/tiktok_gateway/sources/ga4_consent.py",
    "src/tiktok_gateway/sources/ga4_items.py",
    "src/tiktok_gateway/sources/ga4_params.py",
    "src/tiktok_gateway/sources/ga4_user_data.py",
    "src/tiktok_gateway/sources/ga4_values.py",
    "src/tiktok_gateway/sources/ga4_web.py",
    "src/tiktok_gateway/tags/tiktok/router.py",
    "src/tiktok_gateway/tags/tiktok/coerce.py",
    "src/tiktok_gateway/tags/tiktok/event_map.py",
    "src/tiktok_gateway/tags/tiktok/fields.py",
    "src/tiktok_gateway/tags/tiktok/hashing.py",
    "src/tiktok_gateway/tags/tiktok/mapping.py",
    "src/tiktok_gateway/tags/tiktok/properties.py",
    "src/tiktok_gateway/tags/tiktok/user.py",
]

if os.environ.get("TIKTOK_GATEWAY_COMPILE") == "1":
    from mypyc.build import mypycify

    setup(ext_modules=mypycify(COMPILED, group_name="tiktok_gateway_native"))
else:
    setup()
