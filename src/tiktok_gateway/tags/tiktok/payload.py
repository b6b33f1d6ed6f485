"""The wire shapes of the Events API 2.0 (SPEC 7): the request body and TikTok's answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

TRACK_PATH = "/open_api/v1.3/event/track/"
MAX_BATCH_EVENTS = 1000


def request_body(
    pixel_code: str, events: Sequence[dict[str, Any]], test_event_code: str | None = None
) -> dict[str, Any]:
    """The JSON body of one ``POST /event/track/`` for one pixel and one test code."""
    body: dict[str, Any] = {"event_source": "web", "event_source_id": pixel_code}
    if test_event_code:
        body["test_event_code"] = test_event_code
    body["data"] = list(events)
    return body


class TrackResponse(BaseModel):
    """TikTok's answer: HTTP 200 with ``code`` 0 on success; any other code is an error."""

    model_config = ConfigDict(extra="allow")

    code: int
    message: str = ""
    request_id: str = ""
    data: Any = None
