"""The embedded durable queue: one SQLite file, shareable by several processes.

Storage layout::

    items(id           INTEGER PRIMARY KEY AUTOINCREMENT  item number; AUTOINCREMENT: never reused
          grp          TEXT    NOT NULL                   delivery group
          payload      BLOB    NOT NULL
          attempts     INTEGER NOT NULL                   nacks so far
          leases       INTEGER NOT NULL                   leases so far: LeasedItem.id is
                                                          "<id>:<leases>"
          enqueued_at  REAL    NOT NULL                   put (or replay) time
          available_at REAL    NOT NULL                   leasable once <= now
          lease_until  REAL    NULL)                      leased while > now
    INDEX items_available ON items(available_at)          (+ the rowid): the lease order
    INDEX items_group_available                           (+ the rowid): the lease order within
          ON items(grp, available_at)                     one group, for leases of some groups
    INDEX items_group_enqueued                            (+ the rowid): one group's oldest
          ON items(grp, enqueued_at)                      items first, for expire; the oldest
                                                          of all is one seek per group (stats)
    INDEX items_leased ON items(lease_until)              stats: the leased items
          WHERE lease_until IS NOT NULL
    dead(id INTEGER PRIMARY KEY                           the item's number, kept
         grp, payload, attempts, enqueued_at              as they were in items
         dead_at REAL, reason TEXT, code INTEGER NULL, message TEXT, request_id TEXT)
    INDEX dead_newest ON dead(dead_at)
    counts(id INTEGER PRIMARY KEY CHECK (id = 1),         one row
           items INTEGER NOT NULL, dead INTEGER NOT NULL) the rows in items and in dead
    probe(id INTEGER PRIMARY KEY, data BLOB NOT NULL)     one row (4 KiB), replaced by each
                                                          probe_write: does the disk take writes?

Invariants:

* An item is in exactly one table: every move is one transaction. Nothing is deleted by
  reading: only ``ack``/``dead_letter`` remove from ``items``, ``replay``/``purge`` from ``dead``.
* Leased iff ``lease_until > now``; available iff ``available_at <= now``. Taking a lease sets
  ``available_at = lease_until``, so a lease hides the item and its expiry brings the item back
  with no write; ``lease_until`` is NULL or equal to ``available_at``.
* ``counts`` holds the number of rows of ``items`` and of ``dead``: every transaction that adds
  or removes rows updates it by the number changed, so it is exact after every commit (and so
  after kill -9). ``open`` creates the row, counting, where it is missing, and starts
  ``check_counts`` in the background: both tables counted on a connection and thread of its
  own, in one read transaction (WAL: it holds up no write), and only if they differ from the
  row, a recount in one write transaction. That repairs the counts after writes that bypassed
  this module (an older version sharing the file, an edit by hand) without making ``open``
  read every item: with 1,000,000 items the count took 0.4 s from a cold disk, before
  ``serve`` could answer ``/healthz`` (bench/million.py). ``close`` interrupts a check still
  running (``serve``'s write probe at start opens and closes the queue at once).
* Ids, lease order and stale-lease handling are those of the reference model, ``memory.py``.

``stats`` therefore reads the ``counts`` row, one end of ``items_group_enqueued`` per group
and a range of ``items_leased``. That index holds only items leased and not finished since:
current leases and expired ones (a crashed worker's); the range ``> now`` reads the current
ones only. ``expire`` reads one range of ``items_group_enqueued``: one group's oldest items.

Durability: WAL with ``synchronous=FULL`` fsyncs the log on every commit of a ``put``, ``replay``
or ``purge``, so a committed ``put`` survives kill -9 and power loss (given a disk that honours
fsync); NORMAL would only survive the former. The worker's own writes (``lease``, ``ack``,
``nack``, ``release``, ``dead_letter``) commit with ``synchronous=NORMAL``: they survive kill -9 of
the process (the log is in the operating system's hands), and the next FULL commit's fsync takes
them to the disk with it (the log is written in order). A power cut before that can only undo
them: an item leased, delivered or dead-lettered comes back and is tried again, which the
at-least-once contract allows. So finishing a GA4 forward (one item per request) costs no fsync
of its own, and the hits' puts do not wait behind such fsyncs. (With them, forwarding every hit
took the median answer at 1,000 hits/s from 1.7 to 23 ms in bench/ingest.py --ga4; without them
and with the aiohttp sender, 6.6 ms.)

Concurrency: every write is ``BEGIN IMMEDIATE`` (it takes the write lock up front, so lock
waits go to the busy timeout instead of failing as a deadlock), and ``lease`` selects and marks
in one such transaction: processes sharing the file never lease the same item. Nothing about the
items is kept in memory between calls (no cache, cursor or counter but ``commits``), so what a
process reads is what the file holds, whoever wrote it.

Writers take turns through a lock file first (``<file>-lock``, ``flock``): SQLite's own wait for
its write lock (the busy handler) sleeps 1, 2, 5, 10 ... 100 ms between tries, so with several
processes writing (``serve --workers``: each one's group commits, leases and acks) a writer
slept while the lock was free, hits waited hundreds of milliseconds and a process could starve;
a blocked ``flock`` wakes as soon as the holder lets go. The busy timeout still bounds waits on
writers that do not take the lock file (another program, an older version).

Every sqlite3 call runs on one dedicated thread, so the event loop never blocks on the disk and
the connection is only ever touched by the thread that opened it.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TypeVar

from tiktok_gateway.queue.base import (
    EXPIRED,
    MAX_EXPIRE_SCAN,
    Clock,
    DeadLetter,
    DeadRecord,
    LeasedItem,
    NewItem,
    QueueStats,
    QueueUnavailable,
    wall_clock,
)
from tiktok_gateway.queue.memory import lease_id, parse_dead_id, parse_lease_id

log = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 5.0

# What SQLite raises when its storage fails: "database or disk is full", "database is locked",
# "disk I/O error", "attempt to write a readonly database", "file is not a database"... (the
# operational and plain database errors). Those that are bugs of this module are left alone.
_STORAGE_ERRORS = (sqlite3.DatabaseError,)
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.NotSupportedError)

# Statements, not one script: ``executescript`` would commit the transaction they run in.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " grp TEXT NOT NULL, payload BLOB NOT NULL, attempts INTEGER NOT NULL,"
    " leases INTEGER NOT NULL, enqueued_at REAL NOT NULL, available_at REAL NOT NULL,"
    " lease_until REAL)",
    "CREATE INDEX IF NOT EXISTS items_available ON items(available_at)",
    "CREATE INDEX IF NOT EXISTS items_group_available ON items(grp, available_at)",
    # Files of earlier versions: items_enqueued(enqueued_at) served stats alone; its successor
    # serves stats and expire, for the same cost per put.
    "DROP INDEX IF EXISTS items_enqueued",
    "CREATE INDEX IF NOT EXISTS items_group_enqueued ON items(grp, enqueued_at)",
    "CREATE INDEX IF NOT EXISTS items_leased ON items(lease_until) WHERE lease_until IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY, grp TEXT NOT NULL,"
    " payload BLOB NOT NULL, attempts INTEGER NOT NULL, enqueued_at REAL NOT NULL,"
    " dead_at REAL NOT NULL, reason TEXT NOT NULL, code INTEGER, message TEXT NOT NULL,"
    " request_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dead_newest ON dead(dead_at)",
    "CREATE TABLE IF NOT EXISTS counts (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " items INTEGER NOT NULL, dead INTEGER NOT NULL)",
    # Counted here only when the row is missing (a new file, or one from before ``counts``):
    # a count reads a whole index (1,000,000 items: 0.4 s from a cold disk), so a file that has
    # the row is checked by ``check_counts`` in the background instead.
    "INSERT INTO counts (id, items, dead) SELECT 1, (SELECT count(*) FROM items),"
    " (SELECT count(*) FROM dead) WHERE NOT EXISTS (SELECT 1 FROM counts)",
    "CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
)
# A new row of 4 KiB, then the previous one deleted, committed with fsync as a put is: the new
# row needs pages before the old one's are freed, so it succeeds only where a put of its size
# would (free pages left by acks, or room for the file and its WAL to grow).
_PROBE = (
    "INSERT INTO probe (data) VALUES (randomblob(4096))",
    "DELETE FROM probe WHERE id <> last_insert_rowid()",
)
# Pages in use (the file's pages less the free ones), as the latest commit left them (the WAL
# included): the bytes the items, the dead letters and their indexes take. Two header reads.
_PAGES_IN_USE = (
    "SELECT (SELECT page_count FROM pragma_page_count())"
    " - (SELECT freelist_count FROM pragma_freelist_count()),"
    " (SELECT page_size FROM pragma_page_size())"
)
_INSERT = (
    "INSERT INTO items (grp, payload, attempts, leases, enqueued_at, available_at)"
    " VALUES (?, ?, 0, 0, ?, ?)"
)
_DEAD_COLUMNS = (
    "id, grp, payload, attempts, enqueued_at, dead_at, reason, code, message, request_id"
)

# Rows one write transaction of lease, ack, nack, release or dead_letter touches at most; larger
# calls take several transactions. The database thread runs one job at a time, so a put (the
# hit's answer waits for its commit) waits behind at most one such chunk, not a whole batch:
# alone on one core (1000 events put, leased and acked, 10 rounds), a 1000-row lease or ack
# took 8-12 ms (median; up to 29), a 250-row one 1-4 ms (up to 10).
CHUNK_ROWS = 250

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]
Row = tuple[str, bytes, float, float]
_Pending = tuple[list[Row], asyncio.Future[None]]


def _chunks(rows: Sequence[T]) -> Iterator[Sequence[T]]:
    """``rows`` in slices of at most ``CHUNK_ROWS``: one write transaction each."""
    for start in range(0, len(rows), CHUNK_ROWS):
        yield rows[start : start + CHUNK_ROWS]


class _Connection(sqlite3.Connection):
    """A connection with the descriptor of the queue's lock file (module docstring)."""

    writer_lock = -1


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions; each write below says BEGIN IMMEDIATE.
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, factory=_Connection
    )
    try:
        conn.writer_lock = os.open(f"{path}-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        _in_transaction(_create, conn)
    except BaseException:
        _close(conn)
        raise
    return conn


def _close(conn: sqlite3.Connection) -> None:
    conn.close()
    if isinstance(conn, _Connection) and conn.writer_lock >= 0:
        os.close(conn.writer_lock)
        conn.writer_lock = -1


def _in_transaction(job: Job[T], conn: sqlite3.Connection) -> T:
    """``job`` in one write transaction, this process's turn taken on the lock file first."""
    lock = conn.writer_lock if isinstance(conn, _Connection) else -1
    if lock >= 0:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError as error:  # a file system without locks: the storage's failure
            raise sqlite3.OperationalError(f"lock file: {error.strerror or error}") from error
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = job(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (disk full, ...)
                conn.execute("ROLLBACK")
            raise
        return result
    finally:
        if lock >= 0:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _relaxed(job: Job[T], conn: sqlite3.Connection) -> T:
    """``job`` in a transaction committed with ``synchronous=NORMAL``, FULL again afterwards."""
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        return _in_transaction(job, conn)
    finally:
        conn.execute("PRAGMA synchronous=FULL")


def _create(conn: sqlite3.Connection) -> None:
    """The tables and indexes where missing, and the counts recounted (see the invariants)."""
    for statement in _SCHEMA:
        conn.execute(statement)


def _changes(sql: str, rows: Sequence[tuple[object, ...]], conn: sqlite3.Connection) -> int:
    """``executemany``: how many rows it changed, its cursor closed here, on the database thread.

    A cursor returned to the event loop's thread would be finalised there, while this thread
    uses the connection: sqlite3 then fails with "bad parameter or other API misuse" (seen under
    load by bench/delivery.py, where it released a batch TikTok had accepted).
    """
    cursor = conn.executemany(sql, rows)
    try:
        return cursor.rowcount  # summed over all rows by executemany
    finally:
        cursor.close()


def _marks(count: int) -> str:
    """``?,?,...``: ``count`` parameters for an ``IN`` list.

    The lease's UPDATE and the ack's DELETE name their rows (at most ``CHUNK_ROWS``, far under
    SQLite's limit on parameters) in one statement: ``executemany`` of a statement per row took
    1.5-1.8 us more per row (7.2 against 5.7 us for the lease's UPDATE, 5.7 against 3.9 for the
    DELETE, in chunks of 250 rows).
    """
    return ",".join("?" * count)


def _count(items: int, dead: int, conn: sqlite3.Connection) -> None:
    """Add to ``counts``, in the transaction that changed the tables by that many rows."""
    if items or dead:
        conn.execute("UPDATE counts SET items = items + ?, dead = dead + ?", (items, dead))


def _insert(rows: list[Row], conn: sqlite3.Connection) -> None:
    _count(_changes(_INSERT, rows, conn), 0, conn)


_LEASE_COLUMNS = "id, grp, payload, attempts, enqueued_at, leases, available_at"
# One group's available items in lease order: a range of items_group_available, whose entries
# (grp, available_at, rowid) are in that order already, so no other group's rows and no sort.
_LEASE_GROUP = (
    f"SELECT {_LEASE_COLUMNS} FROM items WHERE grp = ? AND available_at <= ?"
    " ORDER BY available_at, id LIMIT ?"
)


def _lease(
    now: float,
    limit: int,
    lease_seconds: float,
    exclude: tuple[str, ...],
    only: tuple[str, ...] | None,
    conn: sqlite3.Connection,
) -> list[LeasedItem]:
    """Lease from the groups in ``only`` (the excluded ones taken out already), or from every
    group not in ``exclude`` when ``only`` is ``None``."""
    if only is None:
        marks = ",".join("?" * len(exclude))
        rows = conn.execute(
            f"SELECT {_LEASE_COLUMNS} FROM items WHERE available_at <= ? AND grp NOT IN ({marks})"
            " ORDER BY available_at, id LIMIT ?",
            (now, *exclude, limit),
        ).fetchall()
    elif len(only) == 1:  # a lane's lease: its group's range is in lease order already
        cursor = conn.execute(_LEASE_GROUP, (only[0], now, limit))
        rows = cursor.fetchall()
        cursor.close()
    else:
        # The first `limit` of each group, merged: the first `limit` of all of them. One query
        # with "grp IN (...)" would read and sort every available item of those groups.
        rows = sorted(
            (row for group in only for row in conn.execute(_LEASE_GROUP, (group, now, limit))),
            key=lambda row: (row[6], row[0]),
        )[:limit]
    until = now + lease_seconds
    if rows:
        numbers = [row[0] for row in rows]
        conn.execute(
            "UPDATE items SET leases = leases + 1, lease_until = ?, available_at = ?"
            f" WHERE id IN ({_marks(len(numbers))})",
            (until, until, *numbers),
        ).close()
    return [
        LeasedItem(lease_id(number, leases + 1), grp, payload, attempts, enqueued_at)
        for number, grp, payload, attempts, enqueued_at, leases, _ in rows
    ]


def _bury(
    now: float, letters: dict[int, tuple[str, int | None, str, str]], conn: sqlite3.Connection
) -> int:
    """Move items (number -> reason, code, message, request id) into the dead letters, in the
    counts too; returns how many left ``items``."""
    moved = _changes(
        f"INSERT INTO dead ({_DEAD_COLUMNS}) SELECT id, grp, payload, attempts, enqueued_at,"
        " ?, ?, ?, ?, ? FROM items WHERE id = ?",
        [(now, *why, n) for n, why in letters.items()],
        conn,
    )
    removed = _changes("DELETE FROM items WHERE id = ?", [(n,) for n in letters], conn)
    _count(-removed, moved, conn)
    return removed


def _dead_letter(now: float, letters: Sequence[DeadLetter], conn: sqlite3.Connection) -> None:
    first: dict[int, tuple[str, int | None, str, str]] = {}
    for letter in letters:
        parsed = parse_lease_id(letter.id)
        if parsed:
            why = (letter.reason, letter.code, letter.message, letter.request_id)
            first.setdefault(parsed[0], why)
    _bury(now, first, conn)


def _expire(
    now: float, group: str, before: float, limit: int, message: str, conn: sqlite3.Connection
) -> int:
    """Move up to ``limit`` of the group's oldest items put before ``before`` and not leased
    (of the first ``max(limit, MAX_EXPIRE_SCAN)`` the index gives) to the dead letters."""
    cursor = conn.execute(_OLDEST, (group, before, max(limit, MAX_EXPIRE_SCAN)))
    try:  # read only as far as the first ``limit`` that are not leased
        due = (n for n, lease_until in cursor if lease_until is None or lease_until <= now)
        numbers = list(islice(due, limit))
    finally:
        cursor.close()
    return _bury(now, dict.fromkeys(numbers, (EXPIRED, None, message, "")), conn)


def _ack(numbers: Sequence[int], conn: sqlite3.Connection) -> None:
    cursor = conn.execute(f"DELETE FROM items WHERE id IN ({_marks(len(numbers))})", numbers)
    try:
        _count(-cursor.rowcount, 0, conn)
    finally:
        cursor.close()  # here, on the database thread (see _changes)


def _update(sql: str, rows: Sequence[tuple[object, ...]], conn: sqlite3.Connection) -> None:
    """An UPDATE of ``items``: no rows come or go, so ``counts`` stays as it is."""
    _changes(sql, rows, conn)


def _replay(now: float, ids: Sequence[str] | None, conn: sqlite3.Connection) -> int:
    if ids is None:
        numbers = [int(row[0]) for row in conn.execute("SELECT id FROM dead ORDER BY id")]
    else:
        numbers = sorted({n for n in map(parse_dead_id, ids) if n is not None})
    moved = _changes(
        "INSERT INTO items (grp, payload, attempts, leases, enqueued_at, available_at)"
        " SELECT grp, payload, 0, 0, ?, ? FROM dead WHERE id = ?",
        [(now, now, n) for n in numbers],
        conn,
    )
    removed = _changes("DELETE FROM dead WHERE id = ?", [(n,) for n in numbers], conn)
    _count(moved, -removed, conn)
    return moved


def _purge(conn: sqlite3.Connection) -> int:
    removed = conn.execute("DELETE FROM dead").rowcount
    _count(0, -removed, conn)
    return removed


# The distinct groups, one index seek each (a skip-scan of a (grp, ...) index written out):
# as cheap with a million items as with ten, where DISTINCT would read them all.
_DISTINCT_GROUPS = (
    "WITH RECURSIVE g(grp) AS (SELECT min(grp) FROM items"
    " UNION ALL SELECT (SELECT min(grp) FROM items WHERE grp > g.grp) FROM g"
    " WHERE g.grp IS NOT NULL)"
)
_GROUPS = f"{_DISTINCT_GROUPS} SELECT grp FROM g WHERE grp IS NOT NULL"

# One statement, so one snapshot. "lease_until > now" alone means leased (the invariant:
# lease_until is NULL or available_at) and lets SQLite use the partial index items_leased. The
# oldest item: the least of each group's oldest, one seek of items_group_enqueued per group.
_STATS = (
    f"{_DISTINCT_GROUPS} SELECT items, (SELECT count(*) FROM items WHERE lease_until > ?),"
    " (SELECT min((SELECT min(enqueued_at) FROM items WHERE items.grp = g.grp)) FROM g"
    " WHERE g.grp IS NOT NULL), dead FROM counts"
)

# A group's oldest items put before a time, oldest first (the bounded read of expire).
_OLDEST = (
    "SELECT id, lease_until FROM items INDEXED BY items_group_enqueued"
    " WHERE grp = ? AND enqueued_at < ? ORDER BY enqueued_at, id LIMIT ?"
)


def _groups(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute(_GROUPS).fetchall()}


_COUNTED = "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM dead)"
_KEPT = "SELECT items, dead FROM counts"
_RECOUNT = (
    "UPDATE counts SET items = (SELECT count(*) FROM items), dead = (SELECT count(*) FROM dead)"
)


def _counts_differ(conn: sqlite3.Connection) -> bool:
    """Whether ``counts`` differs from the tables' rows, read in one snapshot (on a connection
    of its own: a read transaction, which no write waits for in WAL mode)."""
    conn.execute("BEGIN")
    try:
        kept = conn.execute(_KEPT).fetchone()
        counted = conn.execute(_COUNTED).fetchone()
    finally:
        conn.execute("COMMIT")
    return tuple(kept or ()) != tuple(counted)


def _recount(conn: sqlite3.Connection) -> None:
    """``counts`` set to the rows of both tables (in the caller's write transaction)."""
    conn.execute(_RECOUNT)


def _stats(now: float, conn: sqlite3.Connection) -> QueueStats:
    depth, leased, oldest, dead = conn.execute(_STATS, (now,)).fetchone()
    age = 0.0 if oldest is None else max(now - oldest, 0.0)
    return QueueStats(depth=depth, leased=leased, oldest_age=age, dead=dead)


def _stored_bytes(conn: sqlite3.Connection) -> int:
    pages, size = conn.execute(_PAGES_IN_USE).fetchone()
    return int(pages) * int(size)


def _probe(conn: sqlite3.Connection) -> None:
    for statement in _PROBE:
        conn.execute(statement)


def _dead_letters(limit: int, conn: sqlite3.Connection) -> list[DeadRecord]:
    rows = conn.execute(
        f"SELECT {_DEAD_COLUMNS} FROM dead ORDER BY dead_at DESC, id DESC LIMIT ?",
        (max(limit, 0),),
    )
    return [DeadRecord(str(row[0]), *row[1:]) for row in rows]


class SQLiteQueue:
    """The ``Queue`` contract on one SQLite file (layout above). Create it with ``open``.

    ``put`` is group-committed: the puts that arrive while a commit runs (or within
    ``commit_window`` seconds of an idle queue; 0 by default, since under load the puts that
    arrive during one fsync already fill the next) share the next transaction and its one fsync;
    each caller returns once that commit is done, or raises its error. ``commits`` counts the
    write transactions this object committed, for tests and benchmarks.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        clock: Clock,
        commit_window: float,
        path: Path | None = None,
    ) -> None:
        self._conn = conn
        self._executor = executor
        self._clock = clock
        self._commit_window = commit_window
        self._path = path
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._closing = False  # set by close(): no new work, pending puts still commit
        self._checking: asyncio.Task[bool] | None = None  # check_counts, started by open
        self._checker: sqlite3.Connection | None = None  # its connection while it reads
        self.commits = 0

    @classmethod
    async def open(
        cls, path: Path, *, clock: Clock = wall_clock, commit_window: float = 0.0
    ) -> SQLiteQueue:
        """Open (creating the directories, file and tables if needed) the queue at ``path``,
        and start ``check_counts`` in the background (the module docstring).

        Reads no item: as quick with 1,000,000 queued as with none. Raises
        ``QueueUnavailable`` (naming the path and the cause) when the storage refuses: a full
        disk, a folder that cannot be created, an unreadable or locked file."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-queue")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, _connect, path)
        except (*_STORAGE_ERRORS, OSError) as error:
            executor.shutdown(wait=True)
            if type(error) in _BUGS:
                raise
            cause = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
            raise QueueUnavailable(f"SQLite: {cause} ({path})") from error
        except BaseException:
            executor.shutdown(wait=True)
            raise
        queue = cls(conn, executor, clock, commit_window, path)
        queue._checking = asyncio.create_task(queue._check_quietly(), name="sqlite-queue:counts")
        return queue

    async def check_counts(self) -> bool:
        """Count both tables in one snapshot on a connection and thread of their own, and only
        if ``counts`` differs, recount it in one write transaction (on the database thread,
        where puts wait for it; the pages are in the cache by then). Returns whether it
        repaired the counts. Runs once in the background after ``open``; ``counts_checked``
        awaits that run."""
        self._check_open()
        if self._path is None:
            return False
        path = self._path

        def differ() -> bool:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            self._checker = conn  # for close() to interrupt
            try:
                return not self._closing and _counts_differ(conn)
            finally:
                self._checker = None
                conn.close()

        try:
            if not await asyncio.to_thread(differ):
                return False
        except _STORAGE_ERRORS as error:
            if type(error) in _BUGS:
                raise
            raise QueueUnavailable(f"SQLite: {error}") from error
        await self._write(_recount)
        log.warning(
            "the queue's counts differed from its rows (written by another program?): recounted"
        )
        return True

    async def _check_quietly(self) -> bool:
        """``check_counts`` for the background: a storage failure, or ``close`` interrupting
        it, leaves the counts as they are (the next open checks again)."""
        try:
            return await self.check_counts()
        except (QueueUnavailable, RuntimeError) as error:  # RuntimeError: closed meanwhile
            if not self._closing:  # else close() interrupted it: nothing to tell
                log.warning("the queue's counts were not checked: %s", error)
            return False

    async def counts_checked(self) -> bool:
        """Wait for the check ``open`` started; whether it repaired the counts."""
        return await asyncio.shield(self._checking) if self._checking is not None else False

    def _check_open(self) -> None:
        if self._closing:
            raise RuntimeError("the SQLite queue is closed")

    async def _call(self, job: Job[T]) -> T:
        """Run ``job`` on the database thread; the storage failing (a full disk, a locked or
        unreadable file) raises ``QueueUnavailable``, as the contract says."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, job, self._conn)
        except _STORAGE_ERRORS as error:
            if type(error) in _BUGS:  # our SQL or our use of the API: not the storage's fault
                raise
            raise QueueUnavailable(f"SQLite: {error}") from error

    async def _run(self, job: Job[T]) -> T:
        self._check_open()
        return await self._call(job)

    async def _write(self, job: Job[T]) -> T:
        """Run ``job`` in one write transaction on the database thread (durable: FULL)."""
        self._check_open()
        return await self._commit(job)

    async def _finish(self, job: Job[T]) -> T:
        """Run a worker's ``job`` (lease or finishing calls) in one write transaction that does
        not wait for the disk (NORMAL; module docstring)."""
        self._check_open()
        result = await self._call(partial(_relaxed, job))
        self.commits += 1
        return result

    async def _commit(self, job: Job[T]) -> T:
        result = await self._call(partial(_in_transaction, job))
        self.commits += 1
        return result

    async def put(self, items: Sequence[NewItem]) -> None:
        self._check_open()
        if not items:
            return
        now = self._clock()
        future = asyncio.get_running_loop().create_future()
        self._pending.append(([(i.group, i.payload, now, now) for i in items], future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await future

    async def _write_pending(self) -> None:
        """Commit the pending puts, group by group, until none are left."""
        if self._commit_window > 0:  # an idle queue waits a moment for company
            await asyncio.sleep(self._commit_window)
        while self._pending:
            # Everything that arrived during the previous commit goes into this one.
            group, self._pending = self._pending, []
            rows = [row for put_rows, _ in group for row in put_rows]
            try:
                await self._commit(partial(_insert, rows))
            except asyncio.CancelledError:
                for _, future in group:
                    future.cancel()
                raise
            except Exception as error:
                for _, future in group:
                    if not future.done():  # its caller may have been cancelled
                        future.set_exception(error)
            else:
                for _, future in group:
                    if not future.done():
                        future.set_result(None)

    async def lease(
        self,
        limit: int,
        lease_seconds: float,
        exclude_groups: Collection[str] = (),
        only_groups: Collection[str] | None = None,
    ) -> list[LeasedItem]:
        """Up to ``limit`` available items in the order they became available, then put order.

        The scan walks ``items_available``; rows of excluded groups are read and skipped. With
        ``only_groups`` it walks ``items_group_available`` instead, one range per group, and
        reads no row of any other group: a lease of a small group stays cheap while another
        group holds a backlog. Takes one transaction per ``CHUNK_ROWS`` items.
        """
        exclude = tuple(sorted(set(exclude_groups)))
        only = None if only_groups is None else tuple(sorted(set(only_groups) - set(exclude)))
        if only == ():
            return []
        now = self._clock()
        leased: list[LeasedItem] = []
        while len(leased) < limit:  # chunk by chunk (CHUNK_ROWS); a short chunk was the last
            size = min(limit - len(leased), CHUNK_ROWS)
            chunk = await self._finish(partial(_lease, now, size, lease_seconds, exclude, only))
            leased += chunk
            if len(chunk) < size:
                break
        return leased

    async def ack(self, ids: Sequence[str]) -> None:
        numbers = [p[0] for p in map(parse_lease_id, ids) if p]
        for chunk in _chunks(numbers):
            await self._finish(partial(_ack, chunk))

    async def nack(self, ids: Sequence[str], delay: float) -> None:
        now = self._clock()
        rows = [(now + max(delay, 0.0), *p, now) for p in map(parse_lease_id, ids) if p]
        sql = (
            "UPDATE items SET attempts = attempts + 1, available_at = ?, lease_until = NULL"
            " WHERE id = ? AND leases = ? AND lease_until > ?"
        )
        for chunk in _chunks(rows):
            await self._finish(partial(_update, sql, chunk))

    async def release(self, ids: Sequence[str]) -> None:
        now = self._clock()
        rows = [(now, *p, now) for p in map(parse_lease_id, ids) if p]
        sql = (
            "UPDATE items SET available_at = ?, lease_until = NULL"
            " WHERE id = ? AND leases = ? AND lease_until > ?"
        )
        for chunk in _chunks(rows):
            await self._finish(partial(_update, sql, chunk))

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        now = self._clock()
        for chunk in _chunks(letters):
            await self._finish(partial(_dead_letter, now, chunk))

    async def expire(self, group: str, enqueued_before: float, limit: int, message: str) -> int:
        """One range of ``items_group_enqueued`` per ``CHUNK_ROWS`` items moved (a transaction
        each): no other group's rows, and none of this group's younger ones, are read."""
        now = self._clock()
        moved = 0
        while moved < limit:  # chunk by chunk (CHUNK_ROWS); a short chunk was the last
            size = min(limit - moved, CHUNK_ROWS)
            count = await self._finish(partial(_expire, now, group, enqueued_before, size, message))
            moved += count
            if count < size:
                break
        return moved

    async def groups(self) -> set[str]:
        return await self._run(_groups)

    async def stats(self) -> QueueStats:
        """Exact, and cheap at any depth: one row and two index lookups (see the layout).

        The leased count walks the current leases only, which the workers bound."""
        return await self._run(partial(_stats, self._clock()))

    async def dead_letters(self, limit: int = 100) -> list[DeadRecord]:
        return await self._run(partial(_dead_letters, limit))

    async def stored_bytes(self) -> int | None:
        """The pages in use times the page size: what the items and dead letters (with their
        indexes) take in the file, read from its header; space freed by acks is reused by
        later puts, so it is not counted."""
        return await self._run(_stored_bytes)

    async def probe_write(self) -> None:
        """Replace the ``probe`` row (4 KiB) in one durable transaction (see ``_PROBE``)."""
        await self._write(_probe)

    async def replay(self, ids: Sequence[str] | None = None) -> int:
        """Move dead letters back as new items (new ids, attempts 0, ``enqueued_at`` now)."""
        return await self._write(partial(_replay, self._clock(), ids))

    async def purge(self) -> int:
        return await self._write(_purge)

    async def close(self) -> None:
        """Stop the counts' check (``open``), commit the pending puts, close the connection
        and stop the thread; idempotent."""
        if self._closing:
            return
        self._closing = True
        try:
            if self._checking is not None:
                if (checker := self._checker) is not None:
                    checker.interrupt()  # thread-safe: its count stops with "interrupted"
                await asyncio.wait([self._checking])  # soon, then; raises nothing of its own
            if self._writer is not None:
                await self._writer
        finally:  # even if cancelled meanwhile: never leak the connection or the thread
            await self._call(_close)
            self._executor.shutdown(wait=True)
