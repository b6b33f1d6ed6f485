"""The queue's cap through a real ``serve`` (SPEC 13): TikTok down (the sandbox's outage switch),
hits pile up to GATEWAY_QUEUE_MAX_EVENTS, then get 503 queue_full with Retry-After and /readyz
answers 503; once TikTok is back the queue drains, hits are accepted again by themselves, and
every hit that got a 204 is delivered."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.system.processes import gateway_with_sandbox, missing_event_ids, purchase_hit, stop

TOKEN = "queue-caps-token"
CAP = 20


def test_past_the_cap_hits_get_503_queue_full_until_tiktok_drains_the_queue(
    tmp_path: Path,
) -> None:
    with gateway_with_sandbox(
        tmp_path,
        TOKEN,
        "CCAPS",
        GATEWAY_QUEUE_MAX_EVENTS=str(CAP),
        GATEWAY_GA4_FORWARD="false",
        GATEWAY_PROBE_INTERVAL_SECONDS="0.5",
    ) as pair:
        accepted: set[str] = set()
        index = 0
        with httpx.Client(base_url=pair.gateway_url, timeout=5) as client:

            def hit() -> httpx.Response:
                nonlocal index
                answer = client.get(f"/g/collect?{purchase_hit(index)}")
                if answer.status_code == 204:
                    accepted.add(f"order-{index}")
                index += 1
                return answer

            assert httpx.post(f"{pair.sandbox_url}/sandbox/outage").status_code == 200
            while (answer := hit()).status_code == 204:
                assert index <= CAP + 5, "the cap never applied"
            assert len(accepted) == CAP
            assert answer.status_code == 503
            assert answer.json()["error"] == "queue_full"
            assert answer.headers["retry-after"] == "30"
            assert hit().status_code == 503  # and stays so while TikTok is down
            public = client.get("/readyz")
            assert (public.status_code, public.json()) == (503, {"status": "unready"})
            detail = httpx.get(f"{pair.admin_url}/readyz").json()
            assert any(p.startswith(f"queue full: {CAP} items") for p in detail["problems"])

            assert httpx.delete(f"{pair.sandbox_url}/sandbox/outage").status_code == 200
            deadline = time.monotonic() + 30
            while hit().status_code != 204:
                assert time.monotonic() < deadline, "hits never accepted again"
                time.sleep(0.1)
            assert client.get("/readyz").status_code == 200
        assert missing_event_ids(pair.sandbox_url, accepted) == set()
        stop(pair.gateway)
