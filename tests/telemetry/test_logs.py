"""One log line per hit and per delivery, one shape for structlog and stdlib lines (item 3)."""

from __future__ import annotations

import io
import logging
import re
import time
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from tests.harness import config_of, running
from tests.telemetry.helpers import HIT, json_lines, run
from tiktok_gateway.delivery.ledger import DeliveryResult
from tiktok_gateway.observe import HitRecord
from tiktok_gateway.telemetry import Telemetry, configure_logging, logs, scrub
from tiktok_gateway.telemetry.logs import (
    configure_from_environment,
    register_secrets,
    scrub_processor,
)

SHAPE = {"event", "level", "logger", "timestamp"}


def test_one_hit_line_per_request_with_its_request_id(log_stream: io.StringIO) -> None:
    environ = {"GATEWAY_INGEST_TOKEN": "ingest-secret"}

    async def scenario() -> list[str]:
        async with running(config_of(environ)) as gw:
            answers = [
                await gw.client.get(f"/g/collect?{HIT}"),
                await gw.client.post("/g/collect?v=2&tid=G-1&cid=1.2", content="en=a\r\nfoo=b"),
                await gw.client.get("/g/collect?v=1&tid=G-1&en=x"),
                await gw.client.post("/events", json={"event_name": "Lead"}),
                await gw.client.post(
                    "/mp/collect?measurement_id=G-1&api_secret=x",
                    json={"client_id": "1.2", "events": [{"name": "purchase"}]},
                ),
            ]
            return [answer.headers["x-request-id"] for answer in answers]

    request_ids = run(scenario())
    hits = [line for line in json_lines(log_stream.getvalue()) if line["event"] == "hit"]
    assert [line["request_id"] for line in hits] == request_ids
    first, partial, invalid, refused, mp = hits
    assert first["source"] == "ga4"
    assert (first["status"], first["outcome"], first["events"], first["queued"]) == (
        204,
        "accepted",
        1,
        1,
    )
    assert first["dropped"] == {}
    assert first["errors"] == 0
    assert first["error"] is None
    assert first["ms"] >= 0
    assert set(first) >= SHAPE
    assert first["level"] == "info"
    assert (partial["outcome"], partial["errors"], partial["queued"]) == ("partial", 1, 1)
    assert (invalid["status"], invalid["error"]) == (400, "unsupported_protocol_version")
    assert (refused["source"], refused["status"], refused["error"]) == (
        "events",
        401,
        "unauthorized",
    )
    assert mp["source"] == "mp"


def test_one_delivery_line_per_batch(log_stream: io.StringIO) -> None:
    async def scenario() -> None:
        async with running() as gw:
            for _ in range(3):
                await gw.client.get(f"/g/collect?{HIT}")
            assert gw.runtime.worker is not None
            await gw.runtime.worker.drain()

    run(scenario())
    lines = [line for line in json_lines(log_stream.getvalue()) if line["event"] == "delivery"]
    (line,) = lines
    assert (line["destination"], line["kind"]) == ("default", "tiktok")
    assert (line["outcome"], line["events"], line["code_class"]) == ("delivered", 3, "ok")
    assert line["destination_request_id"]
    assert line["latency_ms"] >= 0
    assert line["level"] == "info"
    assert set(line) >= SHAPE


def test_failed_deliveries_are_warnings_with_tiktoks_words(log_stream: io.StringIO) -> None:
    async def scenario() -> None:
        async with running(peer="127.0.0.1") as gw:  # the mounted sandbox is loopback-only
            await gw.client.get(f"/g/collect?{HIT}")
            await gw.admin.post("/sandbox/outage", json={})
            assert gw.runtime.worker is not None
            await gw.runtime.worker.drain()

    run(scenario())
    (line,) = [line for line in json_lines(log_stream.getvalue()) if line["event"] == "delivery"]
    assert (line["outcome"], line["level"], line["code_class"]) == ("retry", "warning", "server")
    assert line["message"] == "HTTP 503"


def test_stdlib_lines_have_the_same_shape(log_stream: io.StringIO) -> None:
    logger = logging.getLogger("tiktok_gateway.delivery.worker")
    logger.warning("tag %s paused: %s", "default", "token_invalid")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("delivery step failed")
    structlog.get_logger("tiktok_gateway.test").info("own", answer=42)
    paused, failed, own = json_lines(log_stream.getvalue())
    assert paused["event"] == "tag default paused: token_invalid"
    assert (paused["level"], paused["logger"]) == ("warning", "tiktok_gateway.delivery.worker")
    assert set(paused) >= SHAPE
    assert failed["level"] == "error"
    assert "RuntimeError: boom" in failed["exception"]
    assert (own["event"], own["answer"], own["logger"]) == ("own", 42, "tiktok_gateway.test")
    assert set(own) >= SHAPE


def test_levels_below_the_configured_one_are_skipped() -> None:
    stream = io.StringIO()
    configure_logging(json=True, level="warning", stream=stream)
    structlog.get_logger("x").info("quiet")
    logging.getLogger("y").info("quiet too")
    structlog.get_logger("x").warning("loud")
    assert [line["event"] for line in json_lines(stream.getvalue())] == ["loud"]
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="chatty")


def test_console_format_for_terminals_and_json_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    configure_logging(stream=terminal)  # json=None: console lines on a terminal
    structlog.get_logger("x").info("hit", request_id="abc", status=204)
    text = terminal.getvalue()
    assert "\x1b[" in text  # coloured
    bare = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "hit" in bare
    assert "request_id=abc" in bare
    assert not bare.lstrip().startswith("{")
    piped = io.StringIO()
    configure_logging(stream=piped)  # json=None, not a terminal: JSON
    structlog.get_logger("x").info("hit", request_id="abc")
    assert json_lines(piped.getvalue())[0]["request_id"] == "abc"
    plain = io.StringIO()
    configure_logging(json=False, stream=plain)
    structlog.get_logger("x").info("hit", request_id="abc")
    assert "\x1b[" not in plain.getvalue()  # no colours when not on a terminal
    # configuring again replaced the handler: earlier streams got nothing more
    assert terminal.getvalue() == text


def test_log_format_from_the_environment() -> None:
    configure_from_environment({"GATEWAY_LOG_FORMAT": "console", "GATEWAY_LOG_LEVEL": "debug"})
    assert logging.getLogger().level == logging.DEBUG
    with pytest.raises(ValueError, match="GATEWAY_LOG_FORMAT"):
        configure_from_environment({"GATEWAY_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="GATEWAY_LOG_LEVEL"):
        configure_from_environment({"GATEWAY_LOG_LEVEL": "loud"})


def test_capture_logs_sees_the_structured_lines() -> None:
    telemetry = Telemetry()
    telemetry.set_secrets(["tok-123456789"])
    with capture_logs() as lines:
        telemetry.on_hit(HitRecord("r1", "ga4", 0.0, 204, "accepted", queued=1))
        telemetry.on_delivery(
            DeliveryResult(
                "t",
                "tiktok",
                "rejected",
                1,
                40002,
                "Batch.0.user.email: a@b.co is not tok-123456789 nor +1 415 555 0100",
                sent=True,
                cause="invalid",
            )
        )
    hit, delivery = lines
    assert (hit["event"], hit["request_id"], hit["queued"]) == ("hit", "r1", 1)
    assert delivery["code_class"] == "invalid"
    assert delivery["log_level"] == "warning"


def test_tiktok_messages_are_scrubbed_in_the_delivery_line(log_stream: io.StringIO) -> None:
    telemetry = Telemetry()
    telemetry.set_secrets(["tok-123456789"])
    message = "Batch.0.user.email: a@b.co is not tok-123456789 nor +1 415 555 0100"
    telemetry.on_delivery(DeliveryResult("t", "tiktok", "rejected", 1, 40002, message, sent=True))
    (line,) = json_lines(log_stream.getvalue())
    assert line["message"] == "Batch.0.user.email: [email] is not [secret] nor [number]"


def test_nothing_is_logged_before_logging_is_configured(capsys: pytest.CaptureFixture[str]) -> None:
    telemetry = Telemetry()
    telemetry.on_hit(HitRecord("r1", "ga4", 0.0, 204, "accepted"))
    telemetry.on_delivery(DeliveryResult("t", "tiktok", "delivered", 1, sent=True))
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")
    assert (
        telemetry.registry.get_sample_value(
            "gateway_hits_total", {"source": "ga4", "outcome": "accepted"}
        )
        == 1.0
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail alice.b+x@shop.example.com now", "mail [email] now"),
        ("q=alice%40example.com&x=1", "q=[email]&x=1"),
        ("for élise@bücher.de", "for [email]"),
        ("next=%2Fa%3Fe%3Dalice%2540example.com", "next=%2Fa%3Fe%3D[email]"),
        ("q=%C3%A9lise%40b%C3%BCcher.de", "q=[email]"),
        ("call +1 (415) 555-0100", "call [number]"),
        ("call 0151 2345 6789.", "call [number]."),
        ("tel:+4915123456789", "tel:[number]"),
        (
            "Batch.12.properties.value: must be a number",
            "Batch.12.properties.value: must be a number",
        ),
        ("token s3cr3t-token in Bearer s3cr3t-token", "token [secret] in Bearer [secret]"),
        ("encoded s3cr3t%2Ftoken", "encoded [secret]"),
        ("short 123456 stays", "short 123456 stays"),
    ],
)
def test_scrub(text: str, expected: str) -> None:
    assert scrub(text, ["s3cr3t-token", "s3cr3t/token", "ab"]) == expected


@pytest.mark.parametrize("text", ["@" + "a" * 100_000, "a" * 100_000 + "@", "a@" * 50_000])
def test_long_lines_are_scrubbed_in_one_pass(text: str) -> None:
    # The former e-mail pattern backtracked on local-part characters: ~60 s for 100 KB.
    began = time.perf_counter()
    assert scrub(text) == text
    assert time.perf_counter() - began < 1.0


def test_ids_keep_their_digits_but_free_text_does_not(log_stream: io.StringIO) -> None:
    structlog.get_logger("x").info(
        "mail bob@example.com or 5551234567",
        request_id="1234567890abcdef",
        destination_request_id="20240101123456789",
        detail="5551234567",
    )
    (line,) = json_lines(log_stream.getvalue())
    assert line["event"] == "mail [email] or [number]"
    assert line["request_id"] == "1234567890abcdef"
    assert line["destination_request_id"] == "20240101123456789"
    assert line["detail"] == "[number]"


@pytest.fixture
def own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets and remembered texts of this test only (they are process-wide)."""
    monkeypatch.setattr(logs, "_known_secrets", set())
    monkeypatch.setattr(logs, "_secret_order", ())
    monkeypatch.setattr(logs, "_clean_texts", set())


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque mail me@example.org>"


def _emit_lines(secret: str) -> None:
    """structlog lines of every kind the gateway writes, and some it may one day."""
    log = structlog.get_logger("tiktok_gateway.telemetry")
    log.info(
        "hit",
        request_id="0123456789abcdef",
        source="ga4",
        status=204,
        outcome="accepted",
        events=2,
        dropped={"consent": 1},
        error=None,
        ms=1.5,
    )
    log.warning(
        "delivery",
        destination="shop",
        message=f"Batch.0.user.email: a@b.co is not {secret} nor +1 415 555 0100",
        destination_request_id="20240101123456789",
        ids=["x@y.org", 5551234567],
    )
    log.info("umlaut \u00e4 and \U0001f600", thing=_Opaque(), ratio=float("nan"))
    try:
        raise RuntimeError(f"boom {secret}")
    except RuntimeError:
        log.exception("failed", stage="send")
    structlog.get_logger().debug("below the level")
    structlog.get_logger().info("unnamed")  # named after this module
    log.info("again")


def _through_the_stdlib_bridge(level: int) -> None:
    """structlog as configured before its lines bypassed stdlib logging: each line a LogRecord
    formatted by the root handler's ProcessorFormatter."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )


@pytest.mark.usefixtures("own_secrets")
@pytest.mark.parametrize("as_json", [True, False])
def test_structlog_lines_are_the_lines_the_stdlib_bridge_wrote(as_json: bool) -> None:
    secret = "tok-123456789"
    register_secrets([secret])
    direct, bridged = io.StringIO(), io.StringIO()
    configure_logging(json=as_json, level="info", stream=direct)
    _emit_lines(secret)
    configure_logging(json=as_json, level="info", stream=bridged)
    _through_the_stdlib_bridge(logging.INFO)
    _emit_lines(secret)
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z")
    lines = stamp.sub("T", direct.getvalue()), stamp.sub("T", bridged.getvalue())
    assert lines[0] == lines[1]
    assert "tests.telemetry.test_logs" in lines[0]
    for event in ("hit", "delivery", "umlaut", "failed", "unnamed", "again"):
        assert len(re.findall(rf"\b{event}\b", lines[0])) == 1, event
    assert "below the level" not in lines[0]
    assert "RuntimeError: boom [secret]" in lines[0]
    assert secret not in lines[0]
    assert "a@b.co" not in lines[0]
    assert "x@y.org" not in lines[0]


def test_a_failing_stream_fails_no_caller(capsys: pytest.CaptureFixture[str]) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    configure_logging(json=True, level="info", stream=Broken())
    structlog.get_logger("tiktok_gateway.telemetry").info("hit", request_id="r1")
    assert "--- Logging error ---" in capsys.readouterr().err  # as logging's handlers report it


class _Structured:
    def __structlog__(self) -> dict[str, int]:
        return {"as": 1}


def test_json_lines_are_what_structlogs_renderer_writes() -> None:
    reference = structlog.processors.JSONRenderer(sort_keys=False)
    cases: list[dict[str, Any]] = [
        {"event": "hit", "status": 204, "ms": 1.25, "error": None, "ok": True},
        {"event": '\u00e4\u00f6 \U0001f600 "quoted" \\ \n', "ratio": float("inf")},
        {"nested": {"b": [1, 2.5, None], "a": ("x", "y")}, "empty": {}, "none": []},
        {"opaque": _Opaque(), "structured": _Structured()},
    ]
    for event_dict in cases:
        assert logs._render_json(None, "info", dict(event_dict)) == reference(
            None, "info", dict(event_dict)
        )


@pytest.mark.usefixtures("own_secrets")
def test_clean_texts_are_remembered_only_while_nothing_would_be_masked() -> None:
    line = {"event": "accepted", "source": "ga4", "detail": "mail a@b.co", "phone": "5551234567"}
    assert scrub_processor(None, "info", dict(line)) == {
        "event": "accepted",
        "source": "ga4",
        "detail": "mail [email]",
        "phone": "[number]",
    }
    assert logs._clean_texts == {"accepted", "ga4"}  # never what was masked
    register_secrets(["ccep"])  # a (silly) secret inside a remembered word
    assert not logs._clean_texts
    assert scrub_processor(None, "info", {"event": "accepted"}) == {"event": "a[secret]ted"}


@pytest.mark.usefixtures("own_secrets")
def test_clean_texts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_CLEAN_TEXTS_LIMIT", 3)
    for word in ("a1", "b2", "c3", "d4"):
        scrub_processor(None, "info", {"event": word})
    assert logs._clean_texts == {"d4"}
    scrub_processor(None, "info", {"event": "x" * (logs._CLEAN_TEXT_LENGTH + 1)})
    assert logs._clean_texts == {"d4"}


def test_json_lines_start_with_the_common_keys() -> None:
    event_dict = {"a": 1, "event": "e", "b": 2, "timestamp": "t", "level": "info"}
    ordered = logs._leading_keys(None, "info", event_dict)
    assert list(ordered.items()) == [
        ("timestamp", "t"),
        ("level", "info"),
        ("event", "e"),
        ("a", 1),
        ("b", 2),
    ]


def _rendered(write: Any) -> dict[str, Any]:
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    write()
    (line,) = stream.getvalue().splitlines()
    parsed: dict[str, Any] = dict(json_lines(line)[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", parsed.pop("timestamp"))
    return parsed


def test_the_direct_json_line_is_the_line_structlog_writes() -> None:
    # The hit and delivery lines skip structlog's processors (write_json_line): same keys in
    # the same order, same values, same encoding.
    fields = {"request_id": "r-1", "status": 204, "dropped": {"consent": 1}, "error": None}
    structlog.contextvars.bind_contextvars(worker=4321)  # as each of several workers binds it
    try:
        direct = _rendered(
            lambda: logs.write_json_line("tiktok_gateway.telemetry", 20, "hit", fields)
        )
        through = _rendered(
            lambda: structlog.get_logger("tiktok_gateway.telemetry").info("hit", **fields)
        )
    finally:
        structlog.contextvars.clear_contextvars()
    assert list(direct.items()) == list(through.items())
    assert list(direct)[:4] == ["level", "logger", "event", "request_id"]
    assert direct["worker"] == 4321


def test_direct_json_lines_follow_the_level_and_leave_console_lines_to_structlog() -> None:
    stream = io.StringIO()
    configure_logging(json=True, level="warning", stream=stream)
    assert logs.write_json_line("x", logging.INFO, "hit", {"a": 1})  # filtered: nothing written
    assert logs.write_json_line("x", logging.WARNING, "delivery", {"a": 2})
    assert [line["a"] for line in json_lines(stream.getvalue())] == [2]
    configure_logging(json=False, level="info", stream=io.StringIO())
    assert not logs.write_json_line("x", logging.WARNING, "delivery", {"a": 3})


def test_a_delivery_message_is_scrubbed_on_the_direct_path() -> None:
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    result = DeliveryResult(
        kind="tiktok",
        destination="shop",
        outcome_kind="rejected",
        events=1,
        code=40002,
        cause="invalid",
        message="bad email a@b.co and phone +49 151 2345678",
        request_id="req-1",
        latency_seconds=0.01,
        sent=True,
        keys=["k"],
    )
    Telemetry().on_delivery(result)
    (line,) = json_lines(stream.getvalue())
    assert "a@b.co" not in line["message"]
    assert "2345678" not in line["message"]
    assert line["destination_request_id"] == "req-1"
