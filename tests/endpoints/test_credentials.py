"""Server-to-server endpoints answer only with credentials configured (SPEC 13): /events needs
GATEWAY_INGEST_TOKEN, /mp/collect a measurement id's secret in GATEWAY_MP_API_SECRETS."""

from __future__ import annotations

from tests.harness import config_of, run, running

MP_BODY = {"client_id": "1.2", "events": [{"name": "login"}]}


def test_events_is_refused_until_a_token_is_set() -> None:
    async def scenario() -> None:
        async with running() as gw:
            answer = await gw.client.post("/events", json={"event_name": "purchase"})
            assert answer.status_code == 403
            assert answer.json()["error"] == "events_not_enabled"
            assert "GATEWAY_INGEST_TOKEN" in answer.json()["detail"]
            assert (await gw.queue.stats()).depth == 0
        async with running(config_of({"GATEWAY_INGEST_TOKEN": "ingest-token-1"})) as gw:
            bearer = {"Authorization": "Bearer ingest-token-1"}
            answer = await gw.client.post(
                "/events", json={"event_name": "purchase"}, headers=bearer
            )
            assert answer.status_code == 200
            wrong = {"Authorization": "Bearer ingest-token-2"}
            answer = await gw.client.post("/events", json={"event_name": "purchase"}, headers=wrong)
            assert answer.status_code == 401

    run(scenario())


def test_mp_collect_is_refused_for_an_id_without_a_secret() -> None:
    async def scenario() -> None:
        async with running() as gw:
            answer = await gw.client.post(
                "/mp/collect?measurement_id=G-1&api_secret=anything", json=MP_BODY
            )
            assert answer.status_code == 403
            assert answer.json()["error"] == "measurement_id_not_enabled"
            assert "GATEWAY_MP_API_SECRETS" in answer.json()["detail"]
        async with running(config_of({"GATEWAY_MP_API_SECRETS": "G-1=s3cret"})) as gw:
            ok = await gw.client.post(
                "/mp/collect?measurement_id=G-1&api_secret=s3cret", json=MP_BODY
            )
            assert ok.status_code == 200
            other = await gw.client.post(
                "/mp/collect?measurement_id=G-2&api_secret=s3cret", json=MP_BODY
            )
            assert (other.status_code, other.json()["error"]) == (403, "measurement_id_not_enabled")
            wrong = await gw.client.post(
                "/mp/collect?measurement_id=G-1&api_secret=nope", json=MP_BODY
            )
            assert (wrong.status_code, wrong.json()["error"]) == (403, "invalid_api_secret")
            assert (await gw.queue.stats()).depth == 1

    run(scenario())
