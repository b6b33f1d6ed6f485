"""What the queue holds for one GA4 forward: a JSON head line, then the hit's body as it came.

Layout::

    {"id":"<forward id>","mid":"<measurement id>","path":"/g/collect","query":"<query'>",
     "headers":[["user-agent","..."],...],"region1":false}\\n<body bytes>

The head is compact JSON (``wire_json``: a newline inside a string is written escaped), so the
first newline ends it, and the body follows byte-identical (SPEC 12: it may be anything the
browser sent, not only UTF-8). The query is the one Google gets (``forward.Forward.query``,
ASCII); for a Measurement Protocol forward it holds the client's ``api_secret``, which Google
needs: every listing masks it (``views.py``). Nothing here is hashed: a GA4 forward is the
browser's own bytes, kept only until Google has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tiktok_gateway import wire_json
from tiktok_gateway.tags.ga4.forward import Forward


@dataclass(frozen=True, slots=True)
class QueuedForward:
    """One forward as queued; a delivery unit (``delivery/destination.Unit``)."""

    key: str
    measurement_id: str
    forward: Forward

    @property
    def route(self) -> str:
        return self.forward.path  # one hit per request: the route only names the endpoint

    @property
    def size(self) -> int:
        return len(self.forward.body)

    def to_bytes(self) -> bytes:
        forward = self.forward
        head = {
            "id": self.key,
            "mid": self.measurement_id,
            "path": forward.path,
            "query": forward.query,
            "headers": [list(pair) for pair in forward.headers],
            "region1": forward.region1,
        }
        return wire_json.dumps(head) + b"\n" + forward.body

    @classmethod
    def from_bytes(cls, payload: bytes) -> QueuedForward:
        """The forward in ``payload``; ``ValueError``/``KeyError``/``TypeError`` for a payload
        not made by ``to_bytes``."""
        head_bytes, newline, body = payload.partition(b"\n")
        if not newline:
            raise ValueError("not a GA4 forward: no head line")
        head = wire_json.loads(head_bytes)
        if not isinstance(head, dict):
            raise TypeError("not a GA4 forward: the head is no object")
        key, mid, path, query = head["id"], head["mid"], head["path"], head["query"]
        headers = head["headers"]
        if not all(isinstance(value, str) for value in (key, mid, path, query)):
            raise TypeError("not a GA4 forward: id, mid, path and query must be strings")
        if not isinstance(headers, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
            for pair in headers
        ):
            raise TypeError("not a GA4 forward: headers must be [name, value] pairs")
        pairs = tuple((name, value) for name, value in headers)
        forward = Forward(path, query, pairs, body, head["region1"] is True)
        return cls(key, mid, forward)
