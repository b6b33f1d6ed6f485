"""What operators see of GA4 forwarding: metrics, check, serve's start-up lines, queue dead,
the admin API's dead letters, and the configuration that drives them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.harness import GA4_SANDBOX, config_of, running
from tests.telemetry.helpers import scrape
from tiktok_gateway.cli import main
from tiktok_gateway.cli.serve import _describe
from tiktok_gateway.config import load_config
from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue.base import DeadLetter, NewItem
from tiktok_gateway.queue.sqlite import SQLiteQueue
from tiktok_gateway.tags.ga4.forward import WEB_PATH, Forward
from tiktok_gateway.tags.ga4.payload import QueuedForward

HIT = "v=2&tid=G-SHOP1&cid=1.2&_p=7&_s=1&en=page_view&dl=https%3A%2F%2Fshop.example.com%2F"
ADMIN = {"GATEWAY_ADMIN_TOKEN": "admin-token-for-tests"}
BEARER = {"authorization": "Bearer admin-token-for-tests"}


def test_forwards_are_counted_by_outcome() -> None:
    environ = {**GA4_SANDBOX, "GATEWAY_GA4_MEASUREMENT_IDS": "G-SHOP1"}

    async def scenario() -> None:
        async with running(config_of(environ), peer="127.0.0.1") as gw:
            assert (await gw.client.get(f"/g/collect?{HIT}")).status_code == 204
            other = HIT.replace("G-SHOP1", "G-OTHER")
            assert (await gw.client.get(f"/g/collect?{other}")).status_code == 204
            assert gw.runtime.worker is not None
            await gw.runtime.worker.drain()
            metrics = await scrape(gw.admin)
            ga4 = {"kind": "ga4", "destination": "ga4"}
            assert metrics("gateway_items_queued_total", **ga4) == 1
            reason = "measurement_id_not_allowed"
            assert metrics("gateway_hits_not_forwarded_total", **ga4, reason=reason) == 1
            assert metrics("gateway_delivery_events_total", **ga4, outcome="delivered") == 1
            assert metrics("gateway_delivery_requests_total", **ga4, code_class="ok") == 1
            assert metrics("gateway_delivery_batch_events_sum", kind="ga4") == 1
            assert metrics("gateway_destination_backing_off", **ga4) == 0
            # Google down: the forward is retried, and counted so.
            assert (await gw.admin.post("/sandbox/ga4/outage", json={})).status_code == 200
            assert (await gw.client.get(f"/g/collect?{HIT}")).status_code == 204
            await gw.runtime.worker.drain()
            metrics = await scrape(gw.admin)
            assert metrics("gateway_delivery_events_total", **ga4, outcome="retry") == 1
            assert metrics("gateway_delivery_requests_total", **ga4, code_class="server") == 1

    asyncio.run(scenario())


def test_the_configuration_file_and_environment() -> None:
    config = load_config(None, {"GATEWAY_GA4_MEASUREMENT_IDS": "G-A,g-b", "TIKTOK_PIXEL_CODE": "C"})
    assert config.ga4.forward is True  # on by default
    assert (config.ga4.endpoint, config.ga4.ip_mode, config.ga4.max_age_hours) == (
        "auto",
        "full",
        72.0,
    )
    assert config.ga4.measurement_ids == ("G-A", "G-B")
    assert config.ga4.allows("g-a")
    assert not config.ga4.allows("G-C")
    assert config.ga4.base_url(True, "x") == "https://region1.google-analytics.com"
    assert config.ga4.base_url(False, "x") == "https://www.google-analytics.com"


def test_the_ga4_table_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[ga4]\nendpoint = "http://127.0.0.1:9090/"\nip_mode = "truncated"\n'
        'measurement_ids = ["G-X"]\nmax_age_hours = 24\n',
        encoding="utf-8",
    )
    ga4 = load_config(path, {"GATEWAY_GA4_IP_MODE": "none"}).ga4
    assert (ga4.endpoint, ga4.ip_mode, ga4.measurement_ids, ga4.max_age_hours) == (
        "http://127.0.0.1:9090",
        "none",  # the environment wins over the file
        ("G-X",),
        24.0,
    )


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"GATEWAY_GA4_ENDPOINT": "ftp://google"}, "GATEWAY_GA4_ENDPOINT"),
        ({"GATEWAY_GA4_ENDPOINT": "https://x/?a=1"}, "GATEWAY_GA4_ENDPOINT"),
        ({"GATEWAY_GA4_IP_MODE": "half"}, "GATEWAY_GA4_IP_MODE"),
        ({"GATEWAY_GA4_FORWARD": "maybe"}, "GATEWAY_GA4_FORWARD"),
        ({"GATEWAY_GA4_MAX_AGE_HOURS": "0"}, "GATEWAY_GA4_MAX_AGE_HOURS"),
    ],
)
def test_bad_settings_name_their_variable(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ)
    assert caught.value.key == key


def test_check_describes_forwarding() -> None:
    environ = {
        "GATEWAY_GA4_MEASUREMENT_IDS": "G-A,G-B",
        "GATEWAY_GA4_IP_MODE": "truncated",
        "TIKTOK_PIXEL_CODE": "C1",
    }
    result = CliRunner(env=environ).invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("GA4 forwarding: on")
    shown = "\n".join(lines[start:])
    assert "forwards to:      Google Analytics (region1" in shown
    assert "measurement ids:  G-A, G-B" in shown
    assert "IP mode:          truncated" in shown
    off = CliRunner(env={"GATEWAY_GA4_FORWARD": "false"}).invoke(main, ["check"])
    assert "GA4 forwarding: off" in off.stdout


def test_serve_says_where_ga4_hits_go() -> None:
    sandbox = _describe(config_of(GA4_SANDBOX))
    assert "GA4 hits: forwarded to the built-in sandbox, IP mode full" in sandbox
    assert "curl -s http://127.0.0.1:8081/sandbox/ga4/hits" in sandbox  # the admin listener
    google = _describe(load_config(None, {}))
    assert "GA4 hits: forwarded to Google Analytics" in google
    off = _describe(config_of())
    assert "GA4 hits: not forwarded to Google (GATEWAY_GA4_FORWARD=false)" in off


def dead_forward(path: Path) -> None:
    """A GA4 forward Google refused, in the dead letters of the SQLite queue at ``path``."""
    body = b"en=purchase&ep.email=alice%40example.com\r\n"
    forward = Forward(WEB_PATH, "v=2&tid=G-SHOP1&api_secret=s3cr3t-value", (), body, False)

    async def fill() -> None:
        queue = await SQLiteQueue.open(path)
        await queue.put([NewItem("ga4", QueuedForward("f1", "G-SHOP1", forward).to_bytes())])
        [item] = await queue.lease(1, 60)
        await queue.dead_letter([DeadLetter(item.id, "rejected", None, "HTTP 400")])
        await queue.close()

    asyncio.run(fill())


def test_queue_dead_explains_a_ga4_dead_letter(tmp_path: Path) -> None:
    dead_forward(tmp_path / "queue.db")
    runner = CliRunner(env={"GATEWAY_DATA_DIR": str(tmp_path)})
    result = runner.invoke(main, ["queue", "dead"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "ga4 G-SHOP1 /g/collect purchase (f1)" in lines[0]
    assert lines[1].strip() == "rejected: HTTP 400"
    assert "Google refused this hit" in lines[2]
    as_json = runner.invoke(main, ["queue", "dead", "--json"])
    [record] = json.loads(as_json.stdout)
    assert (record["destination"], record["event"]["measurement_id"]) == ("ga4", "G-SHOP1")
    for hidden in ("s3cr3t-value", "alice"):
        assert hidden not in result.stdout + as_json.stdout


def test_the_admin_api_lists_ga4_dead_letters_redacted(tmp_path: Path) -> None:
    dead_forward(tmp_path / "queue.db")
    environ = {**ADMIN, **GA4_SANDBOX, "GATEWAY_DATA_DIR": str(tmp_path)}

    async def scenario() -> None:
        queue = await SQLiteQueue.open(tmp_path / "queue.db")
        async with running(config_of(environ), queue=queue) as gw:
            answer = await gw.admin.get("/admin/dead-letters", headers=BEARER)
            [letter] = answer.json()["dead_letters"]
            assert (letter["tag"], letter["kind"], letter["event_name"]) == (
                "ga4",
                "ga4",
                "purchase",
            )
            assert (letter["measurement_id"], letter["forward_id"]) == ("G-SHOP1", "f1")
            assert "s3cr3t-value" not in answer.text
            assert "alice" not in answer.text

    asyncio.run(scenario())
