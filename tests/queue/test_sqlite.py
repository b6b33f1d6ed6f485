"""What only the SQLite backend promises: durability, group commit and several processes."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import cast

import pytest

from tests.fakes import FakeClock
from tiktok_gateway.queue import sqlite as sqlite_module
from tiktok_gateway.queue.base import DeadLetter, NewItem, QueueStats
from tiktok_gateway.queue.sqlite import _STATS, SQLiteQueue


def test_everything_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "queue.db"
    clock = FakeClock()

    async def main() -> None:
        queue = await SQLiteQueue.open(path, clock=clock)
        await queue.put([NewItem("g", b"1"), NewItem("g", b"2"), NewItem("g", b"3")])
        first, second = await queue.lease(2, 30)
        await queue.dead_letter([DeadLetter(first.id, "rejected", 1, "no", "r")])
        await queue.close()

        queue = await SQLiteQueue.open(path, clock=clock)
        assert await queue.stats() == QueueStats(depth=2, leased=1, oldest_age=0.0, dead=1)
        (third,) = await queue.lease(10, 30)
        assert third.payload == b"3"
        await queue.ack([second.id])  # a lease taken before the reopen still counts
        (record,) = await queue.dead_letters()
        assert (record.payload, record.reason, record.code) == (b"1", "rejected", 1)
        assert await queue.replay() == 1
        await queue.put([NewItem("g", b"4")])
        leased = await queue.lease(10, 30)
        # Numbers are never reused: the replayed item and the new one come after item 3.
        assert [(i.payload, i.id) for i in leased] == [(b"1", "4:1"), (b"4", "5:1")]
        await queue.close()

    asyncio.run(main())


def test_close_commits_pending_puts_and_then_refuses_work(tmp_path: Path) -> None:
    async def main() -> None:
        queue = await SQLiteQueue.open(tmp_path / "q.db", commit_window=0.05)
        puts = [asyncio.create_task(queue.put([NewItem("g", b"x")])) for _ in range(10)]
        await asyncio.sleep(0)  # the puts are waiting for the commit window
        await queue.close()
        await asyncio.gather(*puts)
        await queue.close()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            await queue.put([NewItem("g", b"y")])
        with pytest.raises(RuntimeError, match="closed"):
            await queue.stats()
        queue = await SQLiteQueue.open(tmp_path / "q.db")
        assert (await queue.stats()).depth == 10
        await queue.close()

    asyncio.run(main())


def test_concurrent_puts_share_a_few_commits(tmp_path: Path) -> None:
    async def main() -> None:
        queue = await SQLiteQueue.open(tmp_path / "q.db")
        await asyncio.gather(*(queue.put([NewItem("g", b"%d" % n)]) for n in range(200)))
        assert queue.commits <= 3
        leased = await queue.lease(1000, 30)
        assert sorted(i.payload for i in leased) == sorted(b"%d" % n for n in range(200))
        await queue.close()

    asyncio.run(main())


def test_large_calls_take_one_transaction_per_chunk_and_puts_get_in_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "CHUNK_ROWS", 4)
    ack_chunk = sqlite_module._ack

    def slow_ack(numbers: Sequence[int], conn: sqlite3.Connection) -> None:
        time.sleep(0.05)  # a chunk long enough for the put below to come in between
        ack_chunk(numbers, conn)

    monkeypatch.setattr(sqlite_module, "_ack", slow_ack)

    async def main() -> None:
        queue = await SQLiteQueue.open(tmp_path / "q.db", clock=FakeClock())
        await queue.put([NewItem("g", b"%d" % n) for n in range(10)])
        commits = queue.commits
        leased = await queue.lease(9, 30)  # chunks of 4, 4 and 1
        assert [i.payload for i in leased] == [b"%d" % n for n in range(9)]  # in order
        assert queue.commits == commits + 3
        assert [i.payload for i in await queue.lease(9, 30)] == [b"9"]  # a short chunk ends it
        commits = queue.commits
        # A put issued while a large ack runs commits between its chunks, not after all of them.
        ack = asyncio.create_task(queue.ack([i.id for i in leased[:8]]))
        await asyncio.sleep(0)
        await queue.put([NewItem("g", b"new")])
        assert not ack.done()
        await ack
        assert queue.commits == commits + 3  # 2 ack chunks and the put's commit
        assert (await queue.stats()).depth == 3  # items 8 and 9 (leased), and the new one
        await queue.nack([leased[8].id], 0)
        letters = [DeadLetter(i.id, "rejected", 1, "no", "r") for i in await queue.lease(9, 30)]
        commits = queue.commits
        await queue.dead_letter(letters * 3)  # 6 letters (duplicates): 2 chunks
        assert queue.commits == commits + 2
        assert await queue.stats() == QueueStats(depth=1, leased=1, oldest_age=0.0, dead=2)
        await queue.close()

    asyncio.run(main())


def test_a_lease_of_some_groups_takes_one_transaction_per_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "CHUNK_ROWS", 4)

    async def main() -> None:
        queue = await SQLiteQueue.open(tmp_path / "q.db", clock=FakeClock())
        await queue.put([NewItem(g, b"%s%d" % (g.encode(), n)) for n in range(4) for g in "abc"])
        commits = queue.commits
        leased = await queue.lease(7, 30, only_groups={"a", "c"})  # chunks of 4 and 3
        assert [i.payload for i in leased] == [b"a0", b"c0", b"a1", b"c1", b"a2", b"c2", b"a3"]
        assert queue.commits == commits + 2
        assert [i.payload for i in await queue.lease(7, 30, only_groups={"a", "c"})] == [b"c3"]
        await queue.close()

    asyncio.run(main())


def test_a_failed_group_commit_fails_every_put_in_it(tmp_path: Path) -> None:
    async def main() -> None:
        queue = await SQLiteQueue.open(tmp_path / "q.db")
        bad = NewItem("g", cast(bytes, None))  # violates NOT NULL
        results = await asyncio.gather(
            queue.put([NewItem("g", b"ok")]), queue.put([bad]), return_exceptions=True
        )
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
        assert (await queue.stats()).depth == 0
        await queue.put([NewItem("g", b"ok")])  # the writer recovers
        assert (await queue.stats()).depth == 1
        await queue.close()

    asyncio.run(main())


def test_two_queues_on_one_file_never_lease_the_same_item(tmp_path: Path) -> None:
    async def main() -> None:
        one = await SQLiteQueue.open(tmp_path / "q.db")
        two = await SQLiteQueue.open(tmp_path / "q.db")
        await one.put([NewItem("g", b"%d" % n) for n in range(300)])

        async def drain(queue: SQLiteQueue) -> list[bytes]:
            taken: list[bytes] = []
            while leased := await queue.lease(7, 60):
                taken += [i.payload for i in leased]
            return taken

        from_one, from_two = await asyncio.gather(drain(one), drain(two))
        assert len(from_one) + len(from_two) == 300
        assert set(from_one) | set(from_two) == {b"%d" % n for n in range(300)}
        await one.close()
        await two.close()

    asyncio.run(main())


DRAIN_AND_ACK = """
import asyncio, json, sys
from pathlib import Path
from tiktok_gateway.queue.sqlite import SQLiteQueue

async def main() -> None:
    queue = await SQLiteQueue.open(Path(sys.argv[1]))
    taken = []
    while leased := await queue.lease(7, 60):
        taken += [item.payload.decode() for item in leased]
        await queue.ack([item.id for item in leased])
    await queue.close()
    print(json.dumps(taken))

asyncio.run(main())
"""


def test_processes_sharing_the_file_never_lease_the_same_item(tmp_path: Path) -> None:
    """As serve's workers do: three processes lease and ack from one file at once."""
    path = tmp_path / "q.db"

    async def fill() -> None:
        queue = await SQLiteQueue.open(path)
        await queue.put([NewItem("g", b"%d" % n) for n in range(3000)])
        await queue.close()

    asyncio.run(fill())
    command = [sys.executable, "-c", DRAIN_AND_ACK, str(path)]
    drains = [subprocess.Popen(command, stdout=subprocess.PIPE) for _ in range(3)]
    taken = [json.loads(drain.communicate(timeout=60)[0]) for drain in drains]
    assert all(drain.returncode == 0 for drain in drains)
    assert sum(map(len, taken)) == 3000  # none twice
    assert set().union(*taken) == {str(n) for n in range(3000)}


def test_writers_take_turns_on_the_lock_file(tmp_path: Path) -> None:
    """Every write transaction first takes ``<file>-lock`` (flock): a writer waits there, woken
    when the holder lets go, not in SQLite's busy handler, which sleeps up to 100 ms a try."""

    async def main() -> None:
        queue = await SQLiteQueue.open(tmp_path / "q.db")
        with (tmp_path / "q.db-lock").open("rb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # as another process's writer would
            put = asyncio.create_task(queue.put([NewItem("g", b"x")]))
            await asyncio.sleep(0.3)
            assert not put.done()  # waiting for its turn
            fcntl.flock(held, fcntl.LOCK_UN)
            async with asyncio.timeout(5):
                await put
        assert (await queue.stats()).depth == 1
        await queue.close()

    asyncio.run(main())


def test_stats_stay_exact_when_two_queues_share_the_file(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock()
        one = await SQLiteQueue.open(tmp_path / "q.db", clock=clock)
        two = await SQLiteQueue.open(tmp_path / "q.db", clock=clock)
        await one.put([NewItem("g", b"%d" % n) for n in range(10)])
        clock.advance(5)
        await two.put([NewItem("g", b"late")])
        leased = await two.lease(4, 60)
        await one.ack([leased[0].id])
        await one.dead_letter([DeadLetter(leased[1].id, "rejected")])
        expected = QueueStats(depth=9, leased=2, oldest_age=5.0, dead=1)
        assert await one.stats() == expected
        assert await two.stats() == expected
        assert await two.replay() == 1
        assert await one.stats() == QueueStats(depth=10, leased=2, oldest_age=5.0, dead=0)
        await one.close()
        await two.close()

    asyncio.run(main())


OLD_LAYOUT = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, payload BLOB NOT NULL,
    attempts INTEGER NOT NULL, leases INTEGER NOT NULL, enqueued_at REAL NOT NULL,
    available_at REAL NOT NULL, lease_until REAL);
CREATE INDEX items_available ON items(available_at);
CREATE INDEX items_enqueued ON items(enqueued_at);
CREATE TABLE dead (
    id INTEGER PRIMARY KEY, grp TEXT NOT NULL, payload BLOB NOT NULL, attempts INTEGER NOT NULL,
    enqueued_at REAL NOT NULL, dead_at REAL NOT NULL, reason TEXT NOT NULL, code INTEGER,
    message TEXT NOT NULL, request_id TEXT NOT NULL);
CREATE INDEX dead_newest ON dead(dead_at);
INSERT INTO items VALUES (1, 'g', x'31', 0, 0, 100.0, 100.0, NULL);
INSERT INTO items VALUES (2, 'g', x'32', 0, 1, 90.0, 200.0, 200.0);
INSERT INTO dead VALUES (3, 'g', x'33', 2, 80.0, 150.0, 'rejected', 40002, 'bad', 'r');
"""


def test_a_file_of_the_old_layout_opens_with_exact_counts(tmp_path: Path) -> None:
    """Files written before ``counts`` existed get it, and the indexes added since, when opened."""
    path = tmp_path / "q.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(OLD_LAYOUT)

    async def main() -> None:
        queue = await SQLiteQueue.open(path, clock=FakeClock(now=160.0))
        assert await queue.stats() == QueueStats(depth=2, leased=1, oldest_age=70.0, dead=1)
        (item,) = await queue.lease(10, 60)
        assert item.payload == b"1"
        await queue.ack([item.id])
        assert await queue.stats() == QueueStats(depth=1, leased=1, oldest_age=70.0, dead=1)
        await queue.close()

    asyncio.run(main())
    with closing(sqlite3.connect(path)) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"items_group_enqueued", "items_leased", "items_group_available"} <= indexes
    assert "items_enqueued" not in indexes  # replaced by items_group_enqueued


def test_open_repairs_counts_after_writes_that_bypassed_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "q.db"

    async def main() -> None:
        queue = await SQLiteQueue.open(path)
        await queue.put([NewItem("g", b"%d" % n) for n in range(5)])
        assert not await queue.counts_checked()  # they agreed: no recount
        await queue.close()
        with closing(sqlite3.connect(path)) as conn, conn:  # as an older version would write
            conn.execute("DELETE FROM items WHERE id <= 2")
            conn.execute("INSERT INTO dead SELECT 9, 'g', x'00', 0, 0, 0, 'rejected', NULL, '', ''")
        queue = await SQLiteQueue.open(path)
        commits = queue.commits
        assert await queue.counts_checked()  # in the background, after open
        assert queue.commits == commits + 1  # the recount: one write transaction
        stats = await queue.stats()
        assert (stats.depth, stats.dead) == (3, 1)
        await queue.put([NewItem("g", b"6")])  # and kept exact from there on
        assert (await queue.stats()).depth == 4
        await queue.close()

    asyncio.run(main())


def _bytes_open_reads(path: Path) -> int:
    """Bytes a fresh connection reads from ``path`` (and its WAL) running ``open``'s statements:
    SQLite reads pages with pread(), which ``rchar`` of this thread counts, cached or not."""

    def rchar() -> int:
        io = Path("/proc/thread-self/io").read_text().split()
        return int(io[io.index("rchar:") + 1])

    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        before = rchar()
        sqlite_module._in_transaction(sqlite_module._create, conn)
        return rchar() - before


def test_open_reads_no_item_however_many_are_queued(tmp_path: Path) -> None:
    """``open`` counts nothing when the ``counts`` row exists (the background check does), so
    ``serve`` starts as fast with a large backlog as with none: its statements read as many
    bytes with 20,000 items (2.5 MB of pages) as with 10."""
    for name, count in (("small.db", 10), ("large.db", 20_000)):

        async def fill(path: Path = tmp_path / name, count: int = count) -> None:
            queue = await SQLiteQueue.open(path)
            await queue.put([NewItem("g", b"x" * 100) for _ in range(count)])
            await queue.close()

        asyncio.run(fill())
    small, large = (_bytes_open_reads(tmp_path / name) for name in ("small.db", "large.db"))
    assert large - small <= 16 * 4096  # a count of items alone would read 60 pages and more


def test_close_interrupts_the_count_check_and_counts_stay_exact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue closed at once (``serve``'s write probe) stops the background check rather than
    waiting for it, silently; the counts it leaves are the exact ones the puts kept. The check
    here is one statement that never ends unless interrupted (the test's own guard interrupts
    it after 10 s, so a close that waited for it would take that long)."""
    caplog.set_level(logging.INFO, logger=sqlite_module.__name__)
    path = tmp_path / "q.db"
    counting = threading.Event()
    endless = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    )

    def running() -> int:
        counting.set()  # from inside the statement: an interrupt between statements does nothing
        return 0  # go on

    def count_until_interrupted(conn: sqlite3.Connection) -> bool:
        conn.set_progress_handler(running, 10_000)
        guard = threading.Timer(10, conn.interrupt)
        guard.start()
        try:
            conn.execute(endless).fetchone()
        finally:
            guard.cancel()
        return False

    async def main() -> None:
        queue = await SQLiteQueue.open(path)
        await queue.put([NewItem("g", b"x" * 200) for _ in range(5_000)])
        await queue.close()
        monkeypatch.setattr(sqlite_module, "_counts_differ", count_until_interrupted)
        queue = await SQLiteQueue.open(path)
        assert await asyncio.to_thread(counting.wait, 10)
        began = time.monotonic()
        await queue.close()
        assert time.monotonic() - began < 5
        assert not await queue.counts_checked()
        monkeypatch.undo()
        queue = await SQLiteQueue.open(path)
        assert not await queue.counts_checked()  # the kept counts were exact
        assert (await queue.stats()).depth == 5_000
        await queue.close()

    asyncio.run(main())
    assert caplog.records == []


def test_stats_read_indexes_and_one_row_never_a_table_scan(tmp_path: Path) -> None:
    async def main() -> None:
        queue = await SQLiteQueue.open(tmp_path / "q.db")
        await queue.close()

    asyncio.run(main())
    with closing(sqlite3.connect(tmp_path / "q.db")) as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + _STATS, (0.0,))]
    assert "SEARCH items USING COVERING INDEX items_leased (lease_until>?)" in plan
    # The oldest item: one seek per group (the groups found by seeks as well).
    assert "SEARCH items USING COVERING INDEX items_group_enqueued (grp=?)" in plan
    assert "SEARCH items USING COVERING INDEX items_group_enqueued (grp>?)" in plan
    assert [step for step in plan if step.startswith("SCAN")] == ["SCAN counts", "SCAN g"]


def test_a_lease_of_one_group_reads_that_group_alone_in_lease_order(tmp_path: Path) -> None:
    """The statements a lease runs, planned: one group's lease searches ``items_group_available``
    (no other group's rows, no sort, however large their backlog); an unrestricted one still
    walks ``items_available``."""
    path = tmp_path / "q.db"
    statements: list[str] = []

    async def main() -> None:
        queue = await SQLiteQueue.open(path, clock=FakeClock())
        await queue.put([NewItem("big", b"1"), NewItem("small", b"2"), NewItem("big", b"3")])
        await queue._run(lambda conn: conn.set_trace_callback(statements.append))
        small = await queue.lease(10, 30, only_groups=["small"])
        rest = await queue.lease(10, 30, exclude_groups=["small"])
        assert ([i.payload for i in small], [i.payload for i in rest]) == ([b"2"], [b"1", b"3"])
        await queue.close()

    asyncio.run(main())
    selects = [sql for sql in statements if sql.startswith("SELECT")]  # as run, values bound
    with closing(sqlite3.connect(path)) as conn:
        one_group, any_group = (
            [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)] for sql in selects
        )
    assert one_group == [
        "SEARCH items USING INDEX items_group_available (grp=? AND available_at<?)"
    ]
    assert any_group == ["SEARCH items USING INDEX items_available (available_at<?)"]


KILLED_AFTER_PUT = """
import asyncio, os, signal, sys
from pathlib import Path
from tiktok_gateway.queue.base import NewItem
from tiktok_gateway.queue.sqlite import SQLiteQueue

async def main() -> None:
    queue = await SQLiteQueue.open(Path(sys.argv[1]))
    await asyncio.gather(*(queue.put([NewItem("g", b"%d" % n)]) for n in range(50)))
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no cleanup

asyncio.run(main())
"""


def test_a_returned_put_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    script = textwrap.dedent(KILLED_AFTER_PUT)
    done = subprocess.run([sys.executable, "-c", script, str(path)], check=False, timeout=60)
    assert done.returncode == -9

    async def main() -> None:
        queue = await SQLiteQueue.open(path)
        assert (await queue.stats()).depth == 50
        await queue.close()

    asyncio.run(main())


def test_puts_wait_for_the_disk_and_the_workers_writes_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put's commit is fsync'd (synchronous=FULL: the 2xx promise); a lease or an ack commits
    with NORMAL (a power cut can only undo it: the item is tried again), then FULL again."""
    seen: dict[str, int] = {}

    def spy(name: str, job: Callable[..., object]) -> Callable[..., object]:
        def wrapped(*args: object) -> object:
            conn = args[-1]
            assert isinstance(conn, sqlite3.Connection)
            seen[name] = conn.execute("PRAGMA synchronous").fetchone()[0]
            return job(*args)

        return wrapped

    for name in ("_insert", "_lease", "_ack"):
        monkeypatch.setattr(sqlite_module, name, spy(name, getattr(sqlite_module, name)))

    async def main() -> int:
        queue = await SQLiteQueue.open(tmp_path / "q.db", clock=FakeClock())
        await queue.put([NewItem("g", b"1")])
        [item] = await queue.lease(1, 30)
        await queue.ack([item.id])
        after: int = await queue._call(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        await queue.close()
        return after

    after = asyncio.run(main())
    full, normal = 2, 1
    assert seen == {"_insert": full, "_lease": normal, "_ack": normal}
    assert after == full
