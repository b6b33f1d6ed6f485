"""The queued form of a forward: the head line, then the body byte-identical."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiktok_gateway.tags.ga4.forward import MP_PATH, WEB_PATH, Forward
from tiktok_gateway.tags.ga4.payload import QueuedForward
from tiktok_gateway.tags.ga4.views import item_view

texts = st.text(max_size=40)
headers = st.lists(st.tuples(texts, texts), max_size=4).map(tuple)


@given(
    key=texts,
    mid=texts,
    path=st.sampled_from([WEB_PATH, MP_PATH]),
    query=texts,
    pairs=headers,
    body=st.binary(max_size=200),
    region1=st.booleans(),
)
def test_what_is_queued_reads_back(
    key: str,
    mid: str,
    path: str,
    query: str,
    pairs: tuple[tuple[str, str], ...],
    body: bytes,
    region1: bool,
) -> None:
    queued = QueuedForward(key, mid, Forward(path, query, pairs, body, region1))
    assert QueuedForward.from_bytes(queued.to_bytes()) == queued
    assert queued.size == len(body)


@pytest.mark.parametrize(
    "payload",
    [b"", b"no head line", b"[1]\n", b'{"id": 1}\nx', b'{"id":"a","mid":"b","path":"c"}\n'],
)
def test_payloads_not_made_by_to_bytes_are_refused(payload: bytes) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        QueuedForward.from_bytes(payload)


def test_the_dead_letter_view_names_the_events_and_hides_personal_data_and_secrets() -> None:
    query = "v=2&tid=G-1&api_secret=hunter22&en=page_view&ep.email=a%40b.co"
    body = b"en=scroll&_s=2\r\nen=purchase&ep.user_data.phone_number=%2B14155550100\r\n"
    payload = QueuedForward("r1", "G-1", Forward(WEB_PATH, query, (), body, False)).to_bytes()
    view = item_view(payload)
    assert view.kind == "ga4"
    assert view.name == "page_view, scroll, purchase"
    assert view.summary == "ga4 G-1 /g/collect page_view, scroll, purchase (r1)"
    shown = repr(view.fields) + repr(view.raw)
    for hidden in ("hunter22", "a@b.co", "a%40b.co", "4155550100"):
        assert hidden not in shown
