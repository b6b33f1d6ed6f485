"""A hypothesis-generated stream of hits against the running app: only 2xx/4xx, still healthy."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import running

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


def test_generated_requests_get_only_2xx_or_4xx() -> None:
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    gateway = loop.run_until_complete(stack.enter_async_context(running()))

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        method=st.sampled_from(["GET", "POST", "OPTIONS"]),
        path=st.sampled_from(["/g/collect", "/mp/collect", "/events"]),
        query=queries | raw_queries,
        body=bodies | json_bodies,
    )
    def one_request(method: str, path: str, query: str, body: bytes) -> None:
        answer = loop.run_until_complete(
            gateway.client.request(method, f"{path}?{query}", content=body)
        )
        assert 200 <= answer.status_code < 500, (answer.status_code, answer.text)
        if answer.status_code >= 400:
            assert answer.json()["error"]

    try:
        one_request()
        health = loop.run_until_complete(gateway.client.get("/healthz"))
        assert health.status_code == 200
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
