"""A hypothesis-generated stream of requests against the running app: only 2xx/3xx/4xx (never a
5xx for client input, SPEC 13), still healthy."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import HIT, config_of, running

PARAMS = [
    "v",
    "tid",
    "en",
    "cid",
    "dl",
    "dr",
    "ep.x",
    "epn.n",
    "pr1",
    "gcs",
    "gcd",
    "em",
    "_p",
    "uafvl",
]
texts = st.text(max_size=40) | st.sampled_from(["2", "G-1", "page_view", "%", "~~", "\x00", "😀"])
queries = st.lists(
    st.tuples(st.sampled_from(PARAMS) | st.text(max_size=8), texts), max_size=12
).map(lambda pairs: "&".join(f"{quote(k)}={quote(v, safe='%~')}" for k, v in pairs))
raw_queries = st.text(max_size=200).map(lambda text: quote(text, safe="=&%~+"))
bodies = st.binary(max_size=300) | st.text(max_size=300).map(
    lambda text: text.encode("utf-8", "surrogatepass")
)
json_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
).map(lambda value: repr(value).encode())


INGEST_TOKEN = "fuzz-ingest-token"
ADMIN_TOKEN = "fuzz-admin-token-0123"
header_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=60
) | st.sampled_from(
    [
        "",
        "a.example.com; Path=/admin",
        "application/json",
        "text/plain",
        "gzip",
        "https://evil.example",
        "null",
        f"Bearer {INGEST_TOKEN}",
        f"Bearer {ADMIN_TOKEN}",
        "203.0.113.7, 10.0.0.1",
        "for=10.0.0.1;proto=https",
        "ttclid=E.C.P.x; _ttp=1",
        "1e1000000",
    ]
)
HEADER_NAMES = [
    "host",
    "user-agent",
    "cookie",
    "content-type",
    "content-encoding",
    "origin",
    "authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "forwarded",
    "accept-language",
    "sec-ch-ua",
    "x-request-id",
    "referer",
]
headers = st.dictionaries(
    st.sampled_from(HEADER_NAMES) | st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
    header_values,
    max_size=6,
)
methods = st.sampled_from(["GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE", "PATCH"])
PUBLIC_PATHS = ["/g/collect", "/mp/collect", "/events", "/healthz", "/readyz"]
ADMIN_PATHS = [
    "/debug",
    "/debug/api/hits",
    "/admin/queue",
    "/admin/dead-letters",
    "/admin/dead-letters/replay",
    "/metrics",
    "/readyz",
    "/sandbox/events",
    "/sandbox/outage",
    "/sandbox/ga4/hits",
]
paths = st.sampled_from(PUBLIC_PATHS + ADMIN_PATHS) | st.text(max_size=20).map(
    lambda text: "/" + quote(text)
)


def test_generated_requests_get_only_2xx_3xx_or_4xx() -> None:
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    environ = {
        "GATEWAY_INGEST_TOKEN": INGEST_TOKEN,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_MP_API_SECRETS": "G-1=fuzz-secret",
        "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8",
    }
    gateway = loop.run_until_complete(stack.enter_async_context(running(config_of(environ))))

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        admin=st.booleans(),
        method=methods,
        path=paths,
        query=queries | raw_queries,
        body=bodies | json_bodies,
        sent_headers=headers,
    )
    def one_request(
        admin: bool, method: str, path: str, query: str, body: bytes, sent_headers: dict[str, str]
    ) -> None:
        client = gateway.admin if admin else gateway.client
        raw_headers = {
            name.encode("latin-1"): value.encode("latin-1") for name, value in sent_headers.items()
        }
        # Only the live streams never end: the event stream of /debug is not fuzzed.
        answer = loop.run_until_complete(
            client.request(method, f"{path}?{query}", content=body, headers=raw_headers)
        )
        assert 200 <= answer.status_code < 500, (answer.status_code, answer.text)
        if answer.status_code >= 400 and method != "HEAD" and answer.content:
            assert answer.json()["error"]

    try:
        one_request()
        health = loop.run_until_complete(gateway.client.get("/healthz"))
        assert health.status_code == 200
        assert loop.run_until_complete(gateway.client.get(f"/g/collect?{HIT}")).status_code == 204
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
