"""Shared test setup: the settings read the environment, so tests start from a clean one."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("TIKTOK_", "GATEWAY_")):
            monkeypatch.delenv(name)
