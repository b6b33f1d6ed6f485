"""Logging is process-wide: every test here starts unconfigured and leaves it so."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog

from tiktok_gateway.telemetry import configure_logging
from tiktok_gateway.telemetry.logs import QUIET_LOGGERS


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    structlog.reset_defaults()
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)
        structlog.reset_defaults()


@pytest.fixture
def log_stream() -> io.StringIO:
    """JSON log lines of structlog and stdlib ``logging``, written to a string."""
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    return stream
