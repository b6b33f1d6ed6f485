"""`tiktok-gateway inspect` as a user runs it: stdout JSON, stderr notes, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tiktok_gateway.cli import main

HIT = (
    "https://region1.google-analytics.com/g/collect?v=2&tid=G-ABC123&cid=1.2&_p=9&_s=1"
    "&en=add_to_cart&cu=usd&pr1=id42~nmSock~pr3.5~qt2&dl=https%3A%2F%2Fshop.example%2Fp%3Fttclid%3DCLICK1"
)


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_hit_url_prints_the_events_api_body() -> None:
    code, out, err = run("inspect", HIT, "--user-agent", "UA/1", "--ip", "198.51.100.4")
    assert code == 0, err
    body = json.loads(out)
    assert body["event_source"] == "web"
    assert body["event_source_id"] == "PIXELCODENOTSET"
    (event,) = body["data"]
    assert event["event"] == "AddToCart"
    assert event["user"] == {"ip": "198.51.100.4", "user_agent": "UA/1", "ttclid": "CLICK1"}
    assert event["properties"]["value"] == 7
    assert "placeholder pixel code" in err
    assert "ttclid=CLICK1" in err


def test_pixel_and_test_code_from_environment() -> None:
    result = CliRunner(env={"TIKTOK_PIXEL_CODE": "CREAL", "TIKTOK_TEST_EVENT_CODE": "T1"}).invoke(
        main, ["inspect", HIT]
    )
    body = json.loads(result.stdout)
    assert (body["event_source_id"], body["test_event_code"]) == ("CREAL", "T1")
    assert "placeholder" not in result.stderr


def test_stdin_and_body_file_for_a_batched_hit(tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_bytes(b"en=page_view\r\nen=view_item&pr1=idA\r\n\r\nen=user_engagement\r\n")
    code, out, err = run("inspect", "-", "--body", str(body), stdin="v=2&tid=G-1&cid=1.2\n")
    assert code == 0, err
    events = json.loads(out)["data"]
    assert [event["event"] for event in events] == ["Pageview", "ViewContent"]
    assert "user_engagement: no tag's trigger fires" in err


def test_dropped_events_are_reported_not_printed() -> None:
    code, out, err = run("inspect", "v=2&tid=G-1&cid=1.2&en=page_view&gcs=G100")
    assert code == 0
    assert json.loads(out) == []
    assert "dropped: page_view for tag default: consent" in err


def test_explain_names_sources() -> None:
    code, _, err = run("inspect", HIT, "--explain")
    assert code == 0
    assert "properties.contents  <- items" in err
    assert "user.ttclid" in err


def test_events_and_mp_files(tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    events.write_text(json.dumps({"x-ttq-event-name": "CompletePayment", "x-ttq-event-id": 77}))
    code, out, _ = run("inspect", "--events", str(events))
    assert code == 0
    assert json.loads(out)["data"][0]["event_id"] == "77"
    mp = tmp_path / "mp.json"
    mp.write_text(json.dumps({"client_id": "1.2", "events": [{"name": "sign_up"}]}))
    code, out, _ = run("inspect", "/mp/collect?measurement_id=G-1", "--mp", str(mp))
    assert code == 0
    assert json.loads(out)["data"][0]["event"] == "CompleteRegistration"


def test_cookies_feed_ttp_and_ttclid() -> None:
    code, out, _ = run(
        "inspect",
        "v=2&tid=G-1&cid=1&en=page_view",
        "--cookie",
        "_ttp=TTP1",
        "--cookie",
        "ttclid=C9",
    )
    assert code == 0
    assert json.loads(out)["data"][0]["user"] == {"ttp": "TTP1", "ttclid": "C9"}


def test_bad_input_exits_2_with_one_line() -> None:
    for args in (
        ["inspect", "v=1&tid=G-1&en=x"],
        ["inspect"],
        ["inspect", "v=2&tid=G-1", "--cookie", "novalue"],
        ["inspect", "--events", "/nonexistent/file.json"],
    ):
        code, _, err = run(*args)
        assert code == 2, args
        assert len(err.strip().splitlines()) <= 2, err
        assert err.strip().splitlines()[-1].startswith("error: ")


def test_line_error_still_prints_good_events_and_exits_2() -> None:
    code, out, err = run(
        "inspect", "v=2&tid=G-1&cid=1", "--body", "-", stdin="en=page_view\nfoo=1\n"
    )
    assert code == 2
    assert json.loads(out)["data"][0]["event"] == "Pageview"
    assert "missing_event_name" in err


def test_invalid_configuration_exits_2_naming_the_key() -> None:
    result = CliRunner(env={"TIKTOK_CONTENT_TYPE": "things"}).invoke(main, ["inspect", HIT])
    assert result.exit_code == 2
    assert "TIKTOK_CONTENT_TYPE" in result.stderr


@pytest.mark.parametrize("args", [["--help"], [HIT], [HIT, "--explain"]])
def test_inspect_never_shows_the_access_token(args: list[str]) -> None:
    result = CliRunner(env={"TIKTOK_ACCESS_TOKEN": "sekret-token-xyz"}).invoke(
        main, ["inspect", *args]
    )
    assert result.exit_code == 0
    assert "sekret-token-xyz" not in result.stdout + result.stderr
