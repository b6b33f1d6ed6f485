"""`tiktok-gateway queue stats|dead|replay|purge` against the configured SQLite queue."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.system.processes import free_port
from tiktok_gateway import wire_json
from tiktok_gateway.cli import main
from tiktok_gateway.queue.base import DeadLetter, NewItem
from tiktok_gateway.queue.sqlite import SQLiteQueue
from tiktok_gateway.tags.tiktok.envelope import Envelope

MESSAGE = "Batch.0.properties.contents.0.content_id: Not a valid string"


def prepare(path: Path, dead: int = 1) -> None:
    """Three queued events, ``dead`` of them dead with TikTok's code and message."""

    async def fill() -> None:
        queue = await SQLiteQueue.open(path)
        envelopes = [
            Envelope("shop", "CSHOP", None, {"event": "Purchase", "event_id": f"order-{i}"})
            for i in range(3)
        ]
        await queue.put([NewItem(e.group, e.to_bytes()) for e in envelopes])
        leased = await queue.lease(dead, 60)
        await queue.dead_letter(
            [DeadLetter(i.id, "rejected", 40002, MESSAGE, "REQ-42") for i in leased]
        )
        await queue.close()

    asyncio.run(fill())


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    runner = CliRunner(env={"GATEWAY_DATA_DIR": str(data_dir)})
    result = runner.invoke(main, ["queue", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_stats_dead_replay_purge(tmp_path: Path) -> None:
    prepare(tmp_path / "queue.db")
    code, out, _ = cli(tmp_path, "stats")
    assert code == 0
    stats = json.loads(out)
    assert (stats["depth"], stats["dead_letters"]) == (2, 1)

    code, out, _ = cli(tmp_path, "dead")
    assert code == 0
    assert "shop Purchase order-0" in out
    assert f"rejected code 40002: {MESSAGE} request REQ-42" in out  # TikTok's own words

    code, out, _ = cli(tmp_path, "dead", "--json")
    (record,) = json.loads(out)
    assert (record["code"], record["message"], record["event"]["tag"]) == (40002, MESSAGE, "shop")

    code, out, _ = cli(tmp_path, "replay", record["id"])
    assert (code, out.strip()) == (0, "replayed 1 dead letter(s)")
    assert json.loads(cli(tmp_path, "stats")[1])["depth"] == 3
    assert cli(tmp_path, "dead")[1].strip() == "no dead letters"


def test_purge_asks_unless_yes(tmp_path: Path) -> None:
    prepare(tmp_path / "queue.db")
    code, _, _ = cli(tmp_path, "purge", stdin="n\n")
    assert code == 1  # aborted
    assert json.loads(cli(tmp_path, "stats")[1])["dead_letters"] == 1
    code, out, _ = cli(tmp_path, "purge", "--yes")
    assert (code, out.strip()) == (0, "purged 1 dead letter(s)")
    assert json.loads(cli(tmp_path, "stats")[1])["dead_letters"] == 0


def test_replay_needs_ids_or_all(tmp_path: Path) -> None:
    prepare(tmp_path / "queue.db")
    code, _, err = cli(tmp_path, "replay")
    assert code == 2
    assert err.startswith("error: ")
    code, _, _ = cli(tmp_path, "replay", "--all", "1")
    assert code == 2
    code, out, _ = cli(tmp_path, "replay", "--all")
    assert (code, out.strip()) == (0, "replayed 1 dead letter(s)")


def test_unsupported_queue_url_exits_2(tmp_path: Path) -> None:
    result = CliRunner(env={"GATEWAY_QUEUE_URL": "amqp://127.0.0.1:5672/"}).invoke(
        main, ["queue", "stats"]
    )
    assert result.exit_code == 2
    assert "GATEWAY_QUEUE_URL" in result.stderr
    assert "unsupported queue 'amqp'" in result.stderr


def test_an_unreachable_redis_queue_is_one_line_without_the_password() -> None:
    port = free_port()  # nothing listens there
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    result = CliRunner(env={"GATEWAY_QUEUE_URL": url}).invoke(main, ["queue", "stats"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: the queue at redis://:***@127.0.0.1:{port}/0 cannot be reached"
        " (redis: ConnectionError)\n"
    )


def test_dead_lists_letters_whose_payload_is_not_an_envelope(tmp_path: Path) -> None:
    """The worker dead-letters payloads it cannot read as invalid_payload; listing them works."""

    async def fill() -> None:
        queue = await SQLiteQueue.open(tmp_path / "queue.db")
        await queue.put([NewItem("shop\x1f", b"not json"), NewItem("shop\x1f", b'{"event":[1]}')])
        leased = await queue.lease(2, 60)
        await queue.dead_letter(
            [DeadLetter(i.id, "invalid_payload", None, "bad", "") for i in leased]
        )
        await queue.close()

    asyncio.run(fill())
    code, out, _ = cli(tmp_path, "dead")
    assert code == 0
    assert out.count("(unreadable payload)") == 2
    code, out, _ = cli(tmp_path, "dead", "--json")
    assert code == 0
    events = sorted(json.dumps(record["event"]) for record in json.loads(out))
    assert events == [
        '{"unreadable_payload": "not json"}',
        '{"unreadable_payload": "{\\"event\\":[1]}"}',
    ]


def test_dead_json_parses_each_payload_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: the listing reads each dead letter's payload once (its kind's view gives both
    the summary and the raw event), not once for the view and again for the JSON."""
    prepare(tmp_path / "queue.db", dead=3)
    parsed: list[bytes] = []
    real_loads = wire_json.loads

    def counting_loads(data: bytes | str) -> object:
        if isinstance(data, bytes) and b'"tag":"shop"' in data:
            parsed.append(data)
        return real_loads(data)

    monkeypatch.setattr(wire_json, "loads", counting_loads)
    code, out, _ = cli(tmp_path, "dead", "--json")
    assert code == 0
    assert sorted(record["event"]["event"]["event_id"] for record in json.loads(out)) == [
        "order-0",
        "order-1",
        "order-2",
    ]
    assert len(parsed) == 3 == len(set(parsed))
