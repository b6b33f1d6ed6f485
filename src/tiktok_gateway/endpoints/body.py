"""Reading request bodies within the size limit, and the JSON error answers of SPEC 10.1."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse


class BodyTooLarge(Exception):
    """The body is larger than the configured limit (answer 413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as more than ``limit`` bytes arrive.

    ``Content-Length`` is checked first so an oversized upload is refused before it is read.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(status: int, error: str, detail: Any = None, **extra: Any) -> JSONResponse:
    """``{"error": ..., "detail": ...}`` with the given status; never includes a secret."""
    content: dict[str, Any] = {"error": error, "detail": detail}
    content.update(extra)
    return JSONResponse(content, status_code=status)
