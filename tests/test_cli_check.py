"""`tiktok-gateway check [--send-test]`: the configuration as a user sees it, and test events.

Known token values go into every configuration here; none of them, nor any piece of them, may
show in stdout or stderr, whatever happens (success, invalid configuration, TikTok refusing).
"""

from __future__ import annotations

import asyncio
import re
import resource
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
import redis
from click.testing import CliRunner

from tests import redis_server
from tests.system.processes import free_port, start, stop, wait_until_up
from tiktok_gateway.cli import main
from tiktok_gateway.config import Config, GatewaySettings, load_config
from tiktok_gateway.runtime import SANDBOX_ORIGIN, delivery_client
from tiktok_gateway.sandbox.app import create_sandbox_app, sandbox_of
from tiktok_gateway.tags.ga4.settings import GA4Settings
from tiktok_gateway.tags.tiktok.check import (
    TEST_EVENT_ID_PREFIX,
    SendResult,
    describe_trigger,
    send_test_events,
)
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings
from tiktok_gateway.tags.triggers import TriggerSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gateway.toml"

SECRET = "sk9Qv2LmT7wX4pZrHb"  # the right token
WRONG = "wr0ngTokEn5yKd8Ue"  # a token the standalone sandbox refuses
OTHER = "oTh3rS3cretQx7Lm"


def assert_no_secret(*texts: str) -> None:
    """No token, and no 5-character piece of one, in ``texts``."""
    for text in texts:
        for secret in (SECRET, WRONG, OTHER):
            pieces = {secret[i : i + 5] for i in range(len(secret) - 4)}
            leaked = sorted(piece for piece in pieces if piece in text)
            assert not leaked, f"pieces of a token in the output: {leaked}"


def run(*args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner(env=dict(env or {})).invoke(main, list(args))
    assert_no_secret(result.stdout, result.stderr)
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def squeeze(text: str) -> str:
    """Runs of spaces as one, so assertions do not depend on column alignment."""
    return re.sub(r" +", " ", text)


# -- describing a valid configuration ---------------------------------------------------------

THREE_TAGS = f"""
[[tags]]
name = "shop"
pixel_code = "CSHOP"
access_token = "{SECRET}"
[tags.trigger]
measurement_ids = ["G-SHOP"]

[[tags]]
name = "outlet"
pixel_code = "COUTLET"
access_token_env = "OUTLET_TOKEN"
api_url = "https://proxy.example.net/tiktok/"
purchase_event = "CompletePayment"
lead_event = "Lead"
content_type = "product_group"
consent = "ignore"
limited_data_use = true
test_event_code = "TEST777"
[tags.trigger]
hostnames = ["outlet.example.com", "www.outlet.example.com"]
include_events = ["purchase", "add_to_cart"]
[tags.event_map]
view_item_list = "ViewContent"

[[tags]]
name = "mirror"
pixel_code = "CMIRROR"
[tags.trigger]
exclude_events = []
"""


def test_prints_each_tag_and_never_its_token(tmp_path: Path) -> None:
    path = write(tmp_path, THREE_TAGS)
    code, out, err = run("check", "--config", str(path), env={"OUTLET_TOKEN": OTHER})
    assert code == 0, err
    text = squeeze(out)
    assert f"configuration OK ({path}): 3 tags" in text
    shop, outlet, mirror = text.split("\ntag ")[1:]
    assert shop.startswith("shop\n")
    assert "pixel code: CSHOP\n" in shop
    assert "access token: set\n" in shop
    assert "delivers to: https://business-api.tiktok.com\n" in shop
    assert "fires on: measurement id G-SHOP, except user_engagement\n" in shop
    assert "purchase event: PlaceAnOrder\n" in shop
    assert "consent: respect\n" in shop
    assert "test event code: none (live events)\n" in shop
    assert "event map: default\n" in shop

    assert "pixel code: COUTLET\n" in outlet
    assert "access token: set\n" in outlet
    assert "delivers to: https://proxy.example.net/tiktok\n" in outlet
    assert (
        "fires on: hostname outlet.example.com or www.outlet.example.com and event purchase or "
        "add_to_cart, except user_engagement\n"
    ) in outlet
    assert "purchase event: CompletePayment\n" in outlet
    assert "lead event: Lead\n" in outlet
    assert "content type: product_group\n" in outlet
    assert "consent: ignore\n" in outlet
    assert "limited data use: yes\n" in outlet
    assert "test event code: TEST777\n" in outlet
    assert "event map: default, with view_item_list -> ViewContent\n" in outlet

    assert "access token: not set\n" in mirror
    assert "delivers to: built-in sandbox (no access token)\n" in mirror
    assert "fires on: everything\n" in mirror
    assert err == ""


def test_environment_only_configuration() -> None:
    env = {"TIKTOK_PIXEL_CODE": "CENV", "TIKTOK_ACCESS_TOKEN": SECRET, "GATEWAY_PORT": "9100"}
    code, out, _ = run("check", env=env)
    assert code == 0
    text = squeeze(out)
    assert "configuration OK (environment variables): 1 tag\n" in text
    assert "listens on 127.0.0.1:9100" in text
    assert "tag default\n pixel code: CENV\n access token: set\n" in text
    assert "fires on: every event except user_engagement\n" in text


def test_describes_the_connection_limits() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = 1024 if hard == resource.RLIM_INFINITY else min(1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        code, out, _ = run("check", env={"TIKTOK_PIXEL_CODE": "CENV"})
        raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert code == 0
    assert raised == hard or (hard == resource.RLIM_INFINITY and raised > lowered)
    default = min(20_000, raised - 256)
    assert f"connections: at most {default} open (request heads: 16 KiB within 10 s)\n" in out
    env = {"GATEWAY_MAX_CONNECTIONS": "300", "GATEWAY_HEADER_TIMEOUT_SECONDS": "2.5"}
    code, out, _ = run("check", env=env)
    assert code == 0
    assert "connections: at most 300 open (request heads: 16 KiB within 2.5 s)\n" in out


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_connection_cap_above_the_open_file_limit_exits_2(command: str) -> None:
    code, out, err = run(command, env={"GATEWAY_MAX_CONNECTIONS": str(10**9)})
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: configuration: GATEWAY_MAX_CONNECTIONS=1000000000 is above the ")


def test_the_queue_caps_are_described() -> None:
    env = {"TIKTOK_PIXEL_CODE": "CENV", "GATEWAY_QUEUE_MAX_EVENTS": "5000"}
    code, out, _ = run("check", env=env)
    assert code == 0
    assert "queue caps: 5,000 items (dead letters included), 2,000,000,000 bytes;" in out
    env["GATEWAY_QUEUE_URL"] = "redis://127.0.0.1:1/0"  # unreachable: described all the same
    _, out, _ = run("check", env=env)
    assert "queue caps: 5,000 items (dead letters included), items only (Redis:" in out


def test_token_less_tag_with_an_api_url_says_the_url_is_not_used(tmp_path: Path) -> None:
    path = write(tmp_path, '[[tags]]\npixel_code = "C1"\napi_url = "http://127.0.0.1:9"\n')
    code, out, _ = run("check", "--config", str(path))
    assert code == 0
    assert "built-in sandbox (no access token, so api_url http://127.0.0.1:9 is not used)" in out


def test_a_trigger_that_never_fires_is_flagged(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[tags]]\npixel_code = "C1"\n[tags.trigger]\ninclude_events = ["user_engagement"]\n',
    )
    code, out, _ = run("check", "--config", str(path))
    assert code == 0
    assert "warning: never fires: every included event is also excluded" in out


def test_describe_trigger_in_words() -> None:
    assert describe_trigger(TriggerSettings(exclude_events=())) == "everything"
    assert describe_trigger(TriggerSettings()) == "every event except user_engagement"
    both = TriggerSettings(measurement_ids=("G-1", "G-2", "G-3"), exclude_events=("a", "b"))
    assert describe_trigger(both) == "measurement id G-1, G-2 or G-3, except a and b"


def test_help_explains_exit_codes_and_shows_no_secret() -> None:
    code, out, _ = run("check", "--help", env={"TIKTOK_ACCESS_TOKEN": SECRET})
    assert code == 0
    assert "Exit status:" in out
    assert "1  a Redis queue cannot be reached; or --send-test: TikTok refused a test event" in out
    assert "--test-event-code" in out


def test_a_redis_queue_is_connected_to_and_described(tmp_path: Path) -> None:
    with redis_server.private_server(tmp_path) as server:
        url = server.url.replace("redis://", "redis://:hunter2@") + "?key_prefix=check"
        client = redis.Redis.from_url(server.url)
        client.config_set("requirepass", "hunter2")
        client.close()
        code, out, _ = run("check", env={"TIKTOK_PIXEL_CODE": "C1", "GATEWAY_QUEUE_URL": url})
    assert code == 0
    assert "queue redis://:***@127.0.0.1" in out
    assert "queue: Redis answers; 0 queued, 0 dead letters" in out
    assert "note: Redis keeps no append-only file" in out
    assert "hunter2" not in out


def test_an_unreachable_redis_queue_exits_1() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    code, out, _ = run("check", env={"TIKTOK_PIXEL_CODE": "C1", "GATEWAY_QUEUE_URL": url})
    assert code == 1
    assert out.splitlines()[-1] == f"queue: {url} cannot be reached (redis: ConnectionError)"


# -- invalid configurations -----------------------------------------------------------------------

GOOD_TAG = f'[[tags]]\nname = "shop"\npixel_code = "CSHOP"\naccess_token = "{SECRET}"\n'


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ('[[tags]]\nname = "b"\npixel_code = "C2"\nconsent = "maybe"\n', "tags[1].consent"),
        (f'[[tags]]\nname = "b"\npixel_code = "C2"\nconsent = "{OTHER}"\n', "tags[1].consent"),
        ('[[tags]]\nname = "shop"\npixel_code = "C2"\n', "tags.name"),
        ('[[tags]]\nname = "b"\n', "tags[1].pixel_code"),
        # A token pasted under a misspelt key: named, never echoed.
        (
            f'[[tags]]\nname = "b"\npixel_code = "C2"\nacess_token = "{OTHER}"\n',
            "tags[1].acess_token",
        ),
        (
            '[[tags]]\nname = "b"\npixel_code = "C2"\naccess_token_file = "{missing}"\n',
            "tags[1].access_token_file",
        ),
        (
            '[[tags]]\nname = "b"\npixel_code = "C2"\naccess_token_env = "NOT_SET_ANYWHERE"\n',
            "tags[1].access_token_env",
        ),
        (
            '[[tags]]\nname = "b"\npixel_code = "C2"\npurchase_event = "Buy"\n',
            "tags[1].purchase_event",
        ),
        ('[gateway]\nport = "http"\n', "gateway.port"),
        ("[gateway]\nheader_timeout_seconds = 0\n", "gateway.header_timeout_seconds"),
        ("[gateway]\nmax_connections = 0\n", "gateway.max_connections"),
        ("[[tags]]\nname = \n", "--config"),
    ],
)
def test_invalid_configuration_exits_2_naming_the_key(tmp_path: Path, bad: str, key: str) -> None:
    text = GOOD_TAG + bad.replace("{missing}", str(tmp_path / "missing.token"))
    path = write(tmp_path, text)
    code, out, err = run("check", "--config", str(path))
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: configuration: {key}: ")
    assert err.count("\n") == 1


def test_unreadable_token_file_names_the_reason(tmp_path: Path) -> None:
    folder = tmp_path / "token-folder"
    folder.mkdir()
    path = write(
        tmp_path,
        f'{GOOD_TAG}[[tags]]\nname = "b"\npixel_code = "C2"\naccess_token_file = "{folder}"\n',
    )
    code, _, err = run("check", "--config", str(path))
    assert code == 2
    assert err == (
        f"error: configuration: tags[1].access_token_file: cannot read {folder}: Is a directory\n"
    )


def test_invalid_environment_names_the_variable() -> None:
    env = {"TIKTOK_ACCESS_TOKEN": SECRET, "TIKTOK_CONSENT": "sometimes"}
    code, out, err = run("check", env=env)
    assert (code, out) == (2, "")
    assert err.startswith("error: configuration: TIKTOK_CONSENT: ")


def test_missing_config_file(tmp_path: Path) -> None:
    code, _, err = run("check", "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert err.startswith("error: configuration: --config: cannot read ")


# -- --send-test against the built-in sandbox ------------------------------------------------------


def test_send_test_to_the_built_in_sandbox_is_delivered(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[tags]]\nname = "local"\npixel_code = "CLOCAL"\ntest_event_code = "T1"\n'
    )
    code, out, err = run("check", "--config", str(path), "--send-test")
    assert code == 0, out + err
    line = next(line for line in out.splitlines() if line.startswith("send-test local: "))
    assert re.fullmatch(
        r'send-test local: delivered: code 0; message "OK"; request_id \w+ '
        rf"\(pixel CLOCAL, test event code T1, event_id {TEST_EVENT_ID_PREFIX}-\d+, "
        r"to built-in sandbox\)",
        line,
    ), line
    assert out.endswith("summary: 1 delivered\n")


def test_send_test_event_carries_the_tags_settings() -> None:
    tag = TikTokTagSettings(
        name="t",
        pixel_code="CT",
        limited_data_use=True,
        test_event_code="OWN",
        trigger=TriggerSettings(hostnames=("shop.example.com",)),
    )
    other = TikTokTagSettings(name="u", pixel_code="CU")
    config = Config(gateway=GatewaySettings(), tags=(tag, other))
    sandbox = create_sandbox_app()

    async def send() -> list[SendResult]:
        async with delivery_client(config, sandbox) as client:
            return await send_test_events(
                config.tags, client, SANDBOX_ORIGIN, "FALLBACK", now=1_700_000_000
            )

    results = asyncio.run(send())
    assert [(r.tag, r.status, r.code) for r in results] == [
        ("t", "delivered", 0),
        ("u", "delivered", 0),
    ]
    stored = sandbox_of(sandbox).store.events()
    assert [(s.pixel_code, s.test_event_code) for s in stored] == [
        ("CT", "OWN"),
        ("CU", "FALLBACK"),
    ]
    first = stored[0].event
    assert first["event"] == "Pageview"
    assert first["event_time"] == 1_700_000_000
    assert first["event_id"] == f"{TEST_EVENT_ID_PREFIX}-1700000000"
    assert first["limited_data_use"] is True
    assert first["page"] == {"url": "https://shop.example.com/"}
    assert "limited_data_use" not in stored[1].event
    assert results[0].request_id == stored[0].request_id


def test_send_test_refuses_a_tag_without_test_event_code(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[tags]]\nname = "a"\npixel_code = "CA"\ntest_event_code = "TA"\n'
        '[[tags]]\nname = "b"\npixel_code = "CB"\n',
    )
    code, out, _ = run("check", "--config", str(path), "--send-test")
    assert code == 2
    assert "send-test a: delivered: code 0" in out
    assert (
        "send-test b: not sent: no test event code: set test_event_code for this tag or pass "
        "--test-event-code; TikTok's Test Events tool shows only events with its code (pixel CB"
    ) in out
    assert "summary: 1 delivered, 1 not sent" in out

    code, out, _ = run("check", "--config", str(path), "--send-test", "--test-event-code", "TB")
    assert code == 0
    # The tag's own code wins over the option.
    assert 'send-test a: delivered: code 0; message "OK"; request_id ' in out
    assert "(pixel CA, test event code TA, " in out
    assert 'send-test b: delivered: code 0; message "OK"; request_id ' in out
    assert "(pixel CB, test event code TB, " in out


def test_send_test_to_an_unreachable_api(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    path = write(
        tmp_path,
        f'[gateway]\nrequest_timeout_seconds = 5\n[[tags]]\nname = "x"\npixel_code = "CX"\n'
        f'access_token = "{SECRET}"\napi_url = "http://127.0.0.1:{port}"\ntest_event_code = "T"\n',
    )
    code, out, _ = run("check", "--config", str(path), "--send-test")
    assert code == 1
    assert "send-test x: failed: connection (ConnectError" in out
    assert "summary: 1 failed" in out


# -- --send-test against a standalone sandbox that requires a token -------------------------------


@pytest.fixture
def standalone_sandbox(tmp_path: Path) -> Iterator[str]:
    """``tiktok-gateway sandbox`` in its own process, requiring ``SECRET``; yields its URL."""
    port = free_port()
    process = start(
        ["sandbox", "--port", str(port), "--access-token-env", "SANDBOX_TOKEN"],
        {"SANDBOX_TOKEN": SECRET},
        tmp_path / "sandbox.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/sandbox/", process)
        yield url
    finally:
        stop(process, signal.SIGTERM)


def test_send_test_with_a_wrong_token_gets_tiktoks_40105(
    tmp_path: Path, standalone_sandbox: str
) -> None:
    path = write(
        tmp_path,
        f"""
[[tags]]
name = "wrong"
pixel_code = "CWRONG"
access_token = "{WRONG}"
api_url = "{standalone_sandbox}"
test_event_code = "TW"

[[tags]]
name = "right"
pixel_code = "CRIGHT"
access_token_env = "RIGHT_TOKEN"
api_url = "{standalone_sandbox}"
test_event_code = "TR"
""",
    )
    code, out, err = run("check", "--config", str(path), "--send-test", env={"RIGHT_TOKEN": SECRET})
    assert code == 1, out + err
    wrong = next(line for line in out.splitlines() if line.startswith("send-test wrong: "))
    assert wrong.startswith("send-test wrong: refused by TikTok: code 40105; message ")
    assert re.search(r"; request_id \w+; token_invalid; the gateway would pause this tag ", wrong)
    assert f"to {standalone_sandbox})" in wrong
    assert "send-test right: delivered: code 0" in out
    assert "summary: 1 delivered, 1 refused by TikTok" in out

    accepted = httpx.get(f"{standalone_sandbox}/sandbox/events").json()["events"]
    assert [(e["pixel_code"], e["test_event_code"]) for e in accepted] == [("CRIGHT", "TR")]


# -- the example configuration ---------------------------------------------------------------------

EXAMPLE_ENV = {"TIKTOK_SHOP_TOKEN": SECRET, "TIKTOK_OUTLET_TOKEN": OTHER}


def test_example_loads() -> None:
    config = load_config(EXAMPLE, EXAMPLE_ENV)
    shop, outlet, staging = config.tags
    assert (shop.name, outlet.name, staging.name) == ("shop", "outlet", "staging")
    assert shop.access_token is not None
    assert shop.access_token.get_secret_value() == SECRET
    assert outlet.access_token is not None
    assert outlet.access_token.get_secret_value() == OTHER
    assert outlet.purchase_event == "CompletePayment"
    assert outlet.trigger.hostnames == ("outlet.example.com",)
    assert outlet.resolved_event_map["view_item_list"] == "ViewContent"
    assert staging.pixel_code == shop.pixel_code
    assert staging.test_event_code
    assert staging.trigger.include_events
    assert staging.trigger.exclude_events == ()


def test_example_passes_check() -> None:
    code, out, err = run("check", "--config", str(EXAMPLE), env=EXAMPLE_ENV)
    assert code == 0, err
    assert "3 tags" in out
    assert squeeze(out).count("access token: set\n") == 3


def test_example_names_and_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    keys = {
        *GatewaySettings.model_fields,
        *(name for name in TikTokTagSettings.model_fields if name not in ("trigger", "event_map")),
        *TriggerSettings.model_fields,
        *GA4Settings.model_fields,
        "access_token_env",
        "access_token_file",
    }
    paragraphs = [block.splitlines() for block in text.split("\n\n")]
    for key in sorted(keys):
        # Set (or, for secrets and alternatives, shown commented out) in a paragraph that says
        # what it does.
        pattern = re.compile(rf"^#?\s*(?:{key} = |\[gateway\.{key}\]$)")
        documented = [
            lines
            for lines in paragraphs
            if any(pattern.match(line) for line in lines)
            and any(line.startswith("#") and not pattern.match(line) for line in lines)
        ]
        assert documented, f"{key} is not in examples/gateway.toml with a comment"
    for table in ("[gateway]", "[ga4]", "[[tags]]", "[tags.trigger]", "[tags.event_map]"):
        assert table in text


def test_check_says_how_many_workers_and_divides_the_connection_cap() -> None:
    code, out, _ = run("check", env={"TIKTOK_PIXEL_CODE": "CENV"})
    assert code == 0
    assert "\nworkers: 1 process; GATEWAY_WORKERS=auto: one per CPU" in out
    env = {"TIKTOK_PIXEL_CODE": "CENV", "GATEWAY_WORKERS": "3", "GATEWAY_MAX_CONNECTIONS": "1000"}
    code, out, _ = run("check", env=env)
    assert code == 0
    assert "\nworkers: 3 processes sharing both listeners and the queue\n" in out
    assert "connections: at most 999 open, 333 per worker (request heads:" in out
