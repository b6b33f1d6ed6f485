"""The admin API. STUB: to be implemented."""

from __future__ import annotations

from starlette.routing import BaseRoute


def admin_routes() -> list[BaseRoute]:
    """``/admin/...`` routes."""
    return []
