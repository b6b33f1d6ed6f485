"""Shared test setup: the settings read the environment, so tests start from a clean one.

The hot-path modules may be compiled in place by ``make install`` (setup.py); a compiled module
shadows its source, so a test run after editing the source without rebuilding would test the old
code. The session stops with a one-line reason instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiktok_gateway


def _stale_native_modules() -> list[str]:
    """Compiled modules (``*.so``) of the package older than their ``.py`` source."""
    stale = []
    for native in Path(tiktok_gateway.__file__).parent.rglob("*.so"):
        source = native.with_name(native.name.split(".", 1)[0] + ".py")
        if source.exists() and source.stat().st_mtime > native.stat().st_mtime:
            stale.append(str(source))
    return stale


def pytest_sessionstart(session: pytest.Session) -> None:
    if stale := _stale_native_modules():
        pytest.exit(
            f"compiled modules are older than {', '.join(stale)}: run `make install`", returncode=2
        )


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("TIKTOK_", "GATEWAY_")):
            monkeypatch.delenv(name)
