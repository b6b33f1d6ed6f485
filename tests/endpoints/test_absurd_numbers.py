"""Absurd numbers from clients never answer 5xx (issue 12, SPEC 13): the bad value is left out,
the rest of the event and of the request goes through."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.harness import config_of, running
from tiktok_gateway.tags.tiktok.envelope import Envelope

HUGE = ("1e1000000", "-1e1000000", "1e999999999", "9" * 400, "1e18")
BASE = "v=2&tid=G-1&cid=1.2&_p=7&en=purchase&cu=EUR&ep.transaction_id=T-{n}"
TOKEN = "ingest-token-for-numbers"


@pytest.mark.parametrize("huge", HUGE)
def test_huge_numbers_on_every_endpoint(huge: str) -> None:
    async def scenario() -> list[int]:
        environ = {"GATEWAY_INGEST_TOKEN": TOKEN, "GATEWAY_MP_API_SECRETS": "G-1=mp-secret"}
        async with running(config_of(environ)) as gw:
            answers = [
                await gw.client.get(f"/g/collect?{BASE.format(n=1)}&epn.value={huge}"),
                await gw.client.get(
                    f"/g/collect?{BASE.format(n=2)}&pr1=idSKU-1~nmShirt~pr{huge}~qt1{huge}"
                ),
                await gw.client.post(
                    "/events",
                    json=[
                        {"event_name": "purchase", "transaction_id": "T-3", "value": huge},
                        {"event_name": "purchase", "transaction_id": "T-4", "value": 12.5},
                    ],
                    headers={"authorization": f"Bearer {TOKEN}"},
                ),
                await gw.client.post(
                    "/mp/collect?measurement_id=G-1&api_secret=mp-secret",
                    content=json.dumps(
                        {
                            "client_id": "1.2",
                            "events": [
                                {"name": "purchase", "params": {"value": huge}},
                                {"name": "purchase", "params": {"value": 3}},
                            ],
                        }
                    ),
                ),
            ]
            leased = await gw.queue.lease(100, 30)
            events = [Envelope.from_bytes(item.payload).event for item in leased]
            return [answer.status_code for answer in answers] + [len(events)]

    *statuses, queued = asyncio.run(scenario())
    assert all(status < 500 for status in statuses), statuses
    assert statuses == [204, 204, 200, 200]
    assert queued == 6  # every event, the absurd value left out


def test_the_absurd_value_is_left_out_and_a_sane_one_kept() -> None:
    async def scenario() -> list[dict[str, object]]:
        async with running() as gw:
            query = f"{BASE.format(n=9)}&epn.value=1e1000000&pr1=idA~pr2.5~qt2"
            assert (await gw.client.get(f"/g/collect?{query}")).status_code == 204
            leased = await gw.queue.lease(10, 30)
            return [Envelope.from_bytes(item.payload).event for item in leased]

    [event] = asyncio.run(scenario())
    properties = event["properties"]
    assert isinstance(properties, dict)
    assert "value" not in properties  # the absurd epn.value, left out
    assert properties["contents"] == [
        {"content_id": "A", "content_type": "product", "price": 2.5, "quantity": 2}
    ]
