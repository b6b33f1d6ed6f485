"""The ``Queue`` contract (``queue/base.py``), run against every backend."""

from __future__ import annotations

from tests.fakes import FakeClock
from tests.queue.conftest import RunScenario
from tiktok_gateway.queue.base import DeadLetter, NewItem, Queue, QueueStats


def items(group: str, *payloads: bytes) -> list[NewItem]:
    return [NewItem(group, payload) for payload in payloads]


def test_put_lease_ack(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1", b"2"))
        await queue.put(items("h", b"3"))
        leased = await queue.lease(10, 30)
        assert [(i.group, i.payload, i.attempts) for i in leased] == [
            ("g", b"1", 0),
            ("g", b"2", 0),
            ("h", b"3", 0),
        ]
        assert all(i.enqueued_at == clock.now for i in leased)
        assert len({i.id for i in leased}) == 3
        await queue.ack([i.id for i in leased])
        assert await queue.stats() == QueueStats(depth=0, leased=0, oldest_age=0.0, dead=0)
        clock.advance(60)
        assert await queue.lease(10, 30) == []

    run_scenario(scenario)


def test_put_nothing_and_lease_nothing(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put([])
        await queue.put(items("g", b"1"))
        assert await queue.lease(0, 30) == []
        assert len(await queue.lease(1, 30)) == 1

    run_scenario(scenario)


def test_lease_respects_limit_and_hides_items(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1", b"2", b"3"))
        first = await queue.lease(2, 30)
        assert [i.payload for i in first] == [b"1", b"2"]
        second = await queue.lease(10, 30)
        assert [i.payload for i in second] == [b"3"]
        clock.advance(29)
        assert await queue.lease(10, 30) == []

    run_scenario(scenario)


def test_expired_lease_brings_items_back(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1"))
        (first,) = await queue.lease(10, 30)
        clock.advance(30)
        assert (await queue.stats()).leased == 0
        (again,) = await queue.lease(10, 30)
        assert again.payload == b"1"
        assert again.attempts == 0  # an expired lease is not a failed delivery
        assert again.id != first.id

    run_scenario(scenario)


def test_nack_delays_and_counts_attempts(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1"))
        (item,) = await queue.lease(10, 30)
        await queue.nack([item.id], delay=10)
        assert (await queue.stats()).leased == 0
        clock.advance(9.5)
        assert await queue.lease(10, 30) == []
        clock.advance(0.5)
        (item,) = await queue.lease(10, 30)
        assert item.attempts == 1
        await queue.nack([item.id], delay=0)
        (item,) = await queue.lease(10, 30)
        assert item.attempts == 2

    run_scenario(scenario)


def test_release_makes_available_now_and_keeps_attempts(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1"))
        (item,) = await queue.lease(10, 30)
        await queue.nack([item.id], delay=0)
        (item,) = await queue.lease(10, 30)
        await queue.release([item.id])
        (item,) = await queue.lease(10, 30)
        assert item.attempts == 1

    run_scenario(scenario)


def test_lease_order_is_availability_then_put_order(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"old"))
        (old,) = await queue.lease(10, 30)
        await queue.nack([old.id], delay=5)
        await queue.put(items("g", b"before retry"))
        clock.advance(6)
        await queue.put(items("g", b"after retry"))
        leased = await queue.lease(10, 30)
        assert [i.payload for i in leased] == [b"before retry", b"old", b"after retry"]

    run_scenario(scenario)


def test_exclude_groups(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("a", b"a1") + items("b", b"b1") + items("c", b"c1"))
        leased = await queue.lease(10, 30, exclude_groups={"a", "c"})
        assert [i.payload for i in leased] == [b"b1"]
        leased = await queue.lease(10, 30, exclude_groups=["a"])
        assert [i.payload for i in leased] == [b"c1"]
        assert [i.payload for i in await queue.lease(10, 30)] == [b"a1"]

    run_scenario(scenario)


def test_only_groups_leases_those_groups_alone(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("a", b"a1", b"a2", b"a3"))
        clock.advance(1)
        await queue.put(items("b", b"b1", b"b2"))
        # a's items are older, and more than the limit: none of them is taken or counted.
        leased = await queue.lease(2, 30, only_groups={"b"})
        assert [(i.group, i.payload) for i in leased] == [("b", b"b1"), ("b", b"b2")]
        assert await queue.lease(10, 30, only_groups=["b"]) == []
        leased = await queue.lease(10, 30, only_groups=("a",))
        assert [i.payload for i in leased] == [b"a1", b"a2", b"a3"]
        assert await queue.lease(10, 30) == []

    run_scenario(scenario)


def test_only_groups_with_exclude_groups(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("a", b"a1") + items("b", b"b1") + items("c", b"c1"))
        leased = await queue.lease(10, 30, exclude_groups={"b"}, only_groups={"a", "b"})
        assert [i.payload for i in leased] == [b"a1"]
        assert await queue.lease(10, 30, exclude_groups=["c"], only_groups=["c"]) == []
        leased = await queue.lease(10, 30, exclude_groups=["x"], only_groups=["b", "c"])
        assert [i.payload for i in leased] == [b"b1", b"c1"]

    run_scenario(scenario)


def test_empty_only_groups_leases_nothing(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1"))
        assert await queue.lease(10, 30, only_groups=()) == []
        assert await queue.lease(10, 30, only_groups=set()) == []
        assert (await queue.stats()).leased == 0
        assert [i.payload for i in await queue.lease(10, 30)] == [b"1"]

    run_scenario(scenario)


def test_only_groups_takes_nacked_items_once_due_and_released_ones_at_once(
    run_scenario: RunScenario,
) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("a", b"a1") + items("b", b"b1"))
        (first,) = await queue.lease(10, 30, only_groups={"a"})
        await queue.nack([first.id], delay=10)
        await queue.put(items("a", b"a2"))
        (second,) = await queue.lease(10, 30, only_groups={"a"})  # a1 waits for its retry
        assert second.payload == b"a2"
        await queue.release([second.id])
        clock.advance(9)
        assert [i.payload for i in await queue.lease(10, 30, only_groups={"a"})] == [b"a2"]
        clock.advance(1)
        (retried,) = await queue.lease(10, 30, only_groups={"a"})
        assert (retried.payload, retried.attempts) == (b"a1", 1)
        assert [i.payload for i in await queue.lease(10, 30, only_groups={"b"})] == [b"b1"]

    run_scenario(scenario)


def test_only_groups_keeps_the_lease_order_across_its_groups(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(
            items("a", b"a1") + items("c", b"c1") + items("b", b"b1") + items("a", b"a2")
        )
        leased = await queue.lease(2, 30, only_groups={"a", "b"})
        assert [i.payload for i in leased] == [b"a1", b"b1"]
        await queue.nack([leased[0].id], delay=5)
        await queue.put(items("b", b"b2"))
        clock.advance(6)
        await queue.put(items("a", b"a3") + items("c", b"c2"))
        leased = await queue.lease(10, 30, only_groups={"a", "b"})
        assert [i.payload for i in leased] == [b"a2", b"b2", b"a1", b"a3"]
        assert [i.payload for i in await queue.lease(10, 30)] == [b"c1", b"c2"]

    run_scenario(scenario)


def test_dead_letter_keeps_the_reason_and_attempts(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1", b"2"))
        first, second = await queue.lease(10, 30)
        await queue.nack([first.id], delay=0)
        (first,) = await queue.lease(10, 30)
        clock.advance(1)
        await queue.dead_letter([DeadLetter(first.id, "rejected", 40002, "bad pixel", "req-1")])
        clock.advance(1)
        await queue.dead_letter([DeadLetter(second.id, "expired")])
        newest, oldest = await queue.dead_letters()
        assert (newest.payload, newest.reason, newest.code, newest.message) == (
            b"2",
            "expired",
            None,
            "",
        )
        assert (oldest.group, oldest.payload, oldest.attempts) == ("g", b"1", 1)
        assert (oldest.reason, oldest.code, oldest.message) == ("rejected", 40002, "bad pixel")
        assert oldest.request_id == "req-1"
        assert oldest.enqueued_at == clock.now - 2
        assert oldest.dead_at == clock.now - 1
        assert [r.payload for r in await queue.dead_letters(limit=1)] == [b"2"]
        assert await queue.stats() == QueueStats(depth=0, leased=0, oldest_age=0.0, dead=2)

    run_scenario(scenario)


def test_replay_some_and_all_then_purge(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1", b"2", b"3"))
        leased = await queue.lease(10, 30)
        await queue.nack([leased[0].id], delay=0)
        (first,) = await queue.lease(10, 30)
        await queue.dead_letter([DeadLetter(i.id, "rejected") for i in [first, *leased[1:]]])
        by_payload = {r.payload: r.id for r in await queue.dead_letters()}
        clock.advance(100)
        unknown = ["no-such-id", "424242", "9" * 30, "\u0661"]
        assert await queue.replay([by_payload[b"1"], *unknown]) == 1
        (replayed,) = await queue.lease(10, 30)
        assert (replayed.payload, replayed.attempts) == (b"1", 0)
        assert replayed.enqueued_at == clock.now  # the expiry age starts again
        assert await queue.replay() == 2
        assert sorted(i.payload for i in await queue.lease(10, 30)) == [b"2", b"3"]
        assert (await queue.stats()).dead == 0
        await queue.dead_letter([DeadLetter(replayed.id, "rejected")])
        assert await queue.purge() == 1
        assert await queue.purge() == 0
        assert await queue.dead_letters() == []
        assert await queue.replay() == 0

    run_scenario(scenario)


def test_stats(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        assert await queue.stats() == QueueStats(depth=0, leased=0, oldest_age=0.0, dead=0)
        await queue.put(items("g", b"1", b"2"))
        clock.advance(10)
        await queue.put(items("g", b"3", b"4"))
        clock.advance(5)
        leased = await queue.lease(2, 30)
        await queue.dead_letter([DeadLetter(leased[0].id, "rejected")])
        assert await queue.stats() == QueueStats(depth=3, leased=1, oldest_age=15.0, dead=1)
        await queue.nack([leased[1].id], delay=60)
        assert await queue.stats() == QueueStats(depth=3, leased=0, oldest_age=15.0, dead=1)

    run_scenario(scenario)


def test_unknown_ids_are_harmless(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1"))
        (item,) = await queue.lease(10, 30)
        unknown = ["", "junk", "1", ":1", "1:", "1:x", "-1:1", "999:1", "1:1:1", item.id + " "]
        unknown += ["\u0661:1", "9" * 30 + ":1", "1:" + "9" * 5000]
        await queue.ack(unknown)
        await queue.nack(unknown, delay=0)
        await queue.release(unknown)
        await queue.dead_letter([DeadLetter(i, "rejected") for i in unknown])
        assert await queue.stats() == QueueStats(depth=1, leased=1, oldest_age=0.0, dead=0)
        await queue.ack([item.id, item.id])
        await queue.ack([item.id])
        await queue.nack([item.id], delay=0)
        assert await queue.stats() == QueueStats(depth=0, leased=0, oldest_age=0.0, dead=0)

    run_scenario(scenario)


def test_stale_nack_and_release_leave_the_new_lease_alone(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1"))
        (stale,) = await queue.lease(10, 30)
        clock.advance(31)
        (current,) = await queue.lease(10, 30)
        await queue.nack([stale.id], delay=0)
        await queue.release([stale.id])
        assert (await queue.stats()).leased == 1
        assert await queue.lease(10, 30) == []
        await queue.nack([current.id], delay=0)
        (item,) = await queue.lease(10, 30)
        assert item.attempts == 1  # one nack counted, not two

    run_scenario(scenario)


def test_nack_after_the_lease_expired_is_a_no_op(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1"))
        (item,) = await queue.lease(10, 30)
        clock.advance(30)
        await queue.nack([item.id], delay=100)
        (again,) = await queue.lease(10, 30)
        assert again.attempts == 0

    run_scenario(scenario)


def test_stale_ack_and_dead_letter_still_remove(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1", b"2"))
        stale = await queue.lease(10, 30)
        clock.advance(31)
        assert len(await queue.lease(10, 30)) == 2
        await queue.ack([stale[0].id])
        await queue.dead_letter([DeadLetter(stale[1].id, "rejected")])
        assert await queue.stats() == QueueStats(depth=0, leased=0, oldest_age=0.0, dead=1)

    run_scenario(scenario)


def test_dead_letter_twice_keeps_the_first(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("g", b"1"))
        (item,) = await queue.lease(10, 30)
        await queue.dead_letter([DeadLetter(item.id, "first"), DeadLetter(item.id, "second")])
        await queue.dead_letter([DeadLetter(item.id, "third")])
        assert [r.reason for r in await queue.dead_letters()] == ["first"]

    run_scenario(scenario)


def test_groups_are_those_of_undelivered_items(run_scenario: RunScenario) -> None:
    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put([NewItem("a", b"1"), NewItem("b", b"2"), NewItem("c", b"3")])
        # Redis knows an item's group once a lease has read it (every lease reads unread ones).
        assert await queue.lease(1, 30, only_groups=["none"]) == []
        assert await queue.groups() == {"a", "b", "c"}
        [a] = await queue.lease(1, 30, only_groups=["a"])
        assert await queue.groups() == {"a", "b", "c"}  # leased is still undelivered
        await queue.ack([a.id])
        [b] = await queue.lease(1, 30, only_groups=["b"])
        await queue.nack([b.id], 60)
        assert await queue.groups() == {"b", "c"}  # delayed is too
        [c] = await queue.lease(1, 30, only_groups=["c"])
        await queue.dead_letter([DeadLetter(c.id, "rejected")])
        assert await queue.groups() == {"b"}

    run_scenario(scenario)


def test_expire_moves_a_groups_old_items_not_leased_oldest_first(run_scenario: RunScenario) -> None:
    """What a held destination's lane relies on: old items of its group become dead letters
    without a lease; young ones, leased ones and other groups' items stay."""

    async def scenario(queue: Queue, clock: FakeClock) -> None:
        await queue.put(items("held", b"old-1", b"old-2", b"old-3", b"old-4"))
        await queue.put(items("other", b"other-old"))
        (probe,) = await queue.lease(1, 600, only_groups=["held"])  # old-1: a probe is out
        assert probe.payload == b"old-1"
        (nacked,) = await queue.lease(1, 600, only_groups=["held"])  # old-2: tried, nacked
        await queue.nack([nacked.id], delay=3600)  # available long after the expiry time
        clock.advance(100)
        before = clock.now
        clock.advance(1)
        await queue.put(items("held", b"young"))

        assert await queue.expire("held", before, 2, "paused: token_expired") == 2
        first = sorted(record.payload for record in await queue.dead_letters())
        assert first == [b"old-2", b"old-3"]  # the oldest not leased, nacked or not
        assert await queue.expire("held", before, 10, "paused: token_expired") == 1
        assert await queue.expire("held", before, 10, "paused: token_expired") == 0
        dead = await queue.dead_letters()
        assert sorted(record.payload for record in dead) == [b"old-2", b"old-3", b"old-4"]
        assert {(r.reason, r.code, r.message, r.request_id) for r in dead} == {
            ("expired", None, "paused: token_expired", "")
        }
        assert next(r for r in dead if r.payload == b"old-2").attempts == 1
        assert all(record.dead_at == clock.now for record in dead)
        assert await queue.stats() == QueueStats(depth=3, leased=1, oldest_age=101.0, dead=3)
        clock.advance(600)  # the probe's lease has ended: it expires too
        assert await queue.expire("held", before, 10, "m") == 1
        left = await queue.lease(10, 30)
        assert sorted(item.payload for item in left) == [b"other-old", b"young"]
        assert await queue.expire("held", before, 0, "m") == 0

    run_scenario(scenario)
