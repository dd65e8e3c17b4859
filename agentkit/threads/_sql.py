"""The schema and every store operation, written once for both databases.

An operation is a generator: it yields :class:`Q` queries and receives each one's rows,
so the same logic runs in one transaction on sqlite3 (in a worker thread) and on
psycopg (async). A driver runs the generator inside a transaction, commits when it
returns and rolls back when it raises. Queries use ``?`` placeholders; the Postgres
driver rewrites them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from agentkit.errors import (
    ConfigurationError,
    NotFound,
    RunStatusError,
    StoreVersionError,
    ThreadBusy,
)
from agentkit.messages import Message
from agentkit.threads._records import (
    ACTIVE,
    ITEM_FORMAT,
    STATUSES,
    TERMINAL,
    PendingCall,
    RunRecord,
    RunStatus,
    Thread,
    check_metadata,
    decode_items,
    decode_pending,
    decode_usage,
    encode_item,
    encode_pending,
    encode_usage,
    new_id,
    utc,
)
from agentkit.usage import Usage

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Q:
    """One statement; ``many`` runs it once per parameter tuple of ``params``."""

    sql: str
    params: Sequence[Any] = ()
    many: bool = False


Op = Generator[Q, Rows, T]


class Conflict(Exception):
    """A driver's translation of a unique-constraint violation (the transaction is gone)."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the two databases: column types, a JSON lookup, a lock."""

    real: str
    bigint: str
    # SQL true when the thread's metadata has key ? with value ?.
    metadata_match: str
    # Statements that serialise migrations across processes (SQLite: BEGIN IMMEDIATE does).
    migration_lock: tuple[str, ...] = ()


SQLITE = Dialect(
    "REAL",
    "INTEGER",
    "EXISTS (SELECT 1 FROM json_each(threads.metadata) WHERE key = ? AND value = ?)",
)
POSTGRES = Dialect(
    "DOUBLE PRECISION",
    "BIGINT",
    "(threads.metadata::jsonb ->> ?) = ?",
    ("SELECT pg_advisory_xact_lock(7346102155)",),
)

SCHEMA_VERSION = 1
_IN_ACTIVE = "status IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE))
_IN_OWNED = "status IN ('queued', 'in_progress', 'cancelling')"
# Statements that bring a database from version n-1 to n; never edit a released one, add
# the next version instead.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE threads (
            id TEXT PRIMARY KEY,
            created_at {real} NOT NULL,
            metadata TEXT NOT NULL,
            item_count {bigint} NOT NULL DEFAULT 0)""",
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
            agent TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ({statuses})),
            usage TEXT NOT NULL,
            error TEXT,
            pending TEXT NOT NULL,
            state TEXT,
            lease_until {real},
            idempotency_key TEXT,
            created_at {real} NOT NULL,
            ended_at {real})""",
        f"CREATE UNIQUE INDEX runs_one_active ON runs (thread_id) WHERE {_IN_ACTIVE}",
        "CREATE INDEX runs_by_thread ON runs (thread_id, id)",
        """CREATE UNIQUE INDEX runs_idempotency ON runs (idempotency_key)
            WHERE idempotency_key IS NOT NULL""",
        """CREATE TABLE items (
            thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
            position {bigint} NOT NULL,
            run_id TEXT,
            kind TEXT NOT NULL,
            format INTEGER NOT NULL,
            data TEXT NOT NULL,
            created_at {real} NOT NULL,
            PRIMARY KEY (thread_id, position))""",
    ),
}

# For each status a run may be set to, the statuses it may come from.
_FROM: dict[RunStatus, tuple[RunStatus, ...]] = {
    "queued": ("queued",),
    "in_progress": ("queued", "in_progress", "requires_action"),
    "requires_action": ("in_progress",),
    "cancelling": ("in_progress", "cancelling"),
    "cancelled": ACTIVE,
    "failed": ACTIVE,
    "expired": ACTIVE,
    "completed": ("in_progress", "cancelling"),
    "incomplete": ("in_progress", "cancelling"),
}
_EXPIRED_ERROR = "the process running it stopped renewing its lease (it probably died)"


def migrate(dialect: Dialect) -> Op[int]:
    """Create or upgrade the schema; returns the version the database is at."""
    for sql in dialect.migration_lock:
        yield Q(sql)
    yield Q(
        f"CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        f"applied_at {dialect.real} NOT NULL)"
    )
    current = (yield Q("SELECT MAX(version) FROM schema_version"))[0][0] or 0
    if current > SCHEMA_VERSION:
        raise StoreVersionError(
            f"this database was written by a newer agentkit (schema version {current}; "
            f"this one knows up to {SCHEMA_VERSION}); upgrade agentkit "
            "(pip install -U agentkit) or use another database"
        )
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for sql in MIGRATIONS[version]:
            yield Q(sql.format(real=dialect.real, bigint=dialect.bigint, statuses=statuses))
        yield Q("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
    return SCHEMA_VERSION


# --- threads ---------------------------------------------------------------------------

_THREAD_COLUMNS = "id, created_at, metadata, item_count"


def _thread(row: tuple[Any, ...]) -> Thread:
    created = utc(row[1])
    assert created is not None
    return Thread(row[0], created, json.loads(row[2]), row[3])


def _missing(kind: str, ident: str) -> NotFound:
    source = "store.list_threads()" if kind == "thread" else "store.list_runs(thread_id)"
    return NotFound(
        f"no {kind} with id {ident!r} in this store; check the id (ids come from "
        f"create_{kind}() or {source}) and that you opened the right database"
    )


def create_thread(metadata: Mapping[str, str] | None) -> Op[Thread]:
    """Insert a new, empty thread."""
    row = (new_id("thread"), time.time(), json.dumps(check_metadata(metadata)), 0)
    yield Q(f"INSERT INTO threads ({_THREAD_COLUMNS}) VALUES (?, ?, ?, ?)", row)
    return _thread(row)


def get_thread(thread_id: str) -> Op[Thread]:
    """The thread, or NotFound."""
    rows = yield Q(f"SELECT {_THREAD_COLUMNS} FROM threads WHERE id = ?", (thread_id,))
    if not rows:
        raise _missing("thread", thread_id)
    return _thread(rows[0])


def list_threads(
    dialect: Dialect,
    limit: int,
    before: str | None,
    after: str | None,
    metadata: Mapping[str, str] | None,
) -> Op[list[Thread]]:
    """Threads newest first (ids sort by creation time), one page."""
    where: list[str] = []
    params: list[Any] = []
    if after is not None:
        where.append("id < ?")
        params.append(after)
    if before is not None:
        where.append("id > ?")
        params.append(before)
    for key, value in check_metadata(metadata).items():
        where.append(dialect.metadata_match)
        params += [key, value]
    # A "before" page is the one just above the cursor: read it upwards, then flip it.
    order = "ASC" if before is not None and after is None else "DESC"
    sql = f"SELECT {_THREAD_COLUMNS} FROM threads"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = yield Q(f"{sql} ORDER BY id {order} LIMIT ?", (*params, max(0, limit)))
    threads = [_thread(row) for row in rows]
    return threads[::-1] if order == "ASC" else threads


def delete_thread(thread_id: str) -> Op[None]:
    """Delete a thread, its items and its runs."""
    yield Q("DELETE FROM items WHERE thread_id = ?", (thread_id,))
    yield Q("DELETE FROM runs WHERE thread_id = ?", (thread_id,))
    if not (yield Q("DELETE FROM threads WHERE id = ? RETURNING id", (thread_id,))):
        raise _missing("thread", thread_id)


def messages(thread_id: str, start: int) -> Op[list[Message]]:
    """The thread's message items from position ``start`` (negative: from the end), in
    order, read in one snapshot (the same transaction)."""
    thread = yield from get_thread(thread_id)
    rows = yield Q(
        "SELECT position, format, data FROM items WHERE thread_id = ? AND kind = 'message' "
        "AND position >= ? ORDER BY position",
        (thread_id, start if start >= 0 else max(0, thread.item_count + start)),
    )
    return decode_items(thread_id, rows)


def _lock_thread(thread_id: str, added: int = 0) -> Op[int]:
    """Take the thread's row lock (Postgres; SQLite holds the whole file) so appends and
    run creation on one thread happen one at a time; returns the new item count."""
    rows = yield Q(
        "UPDATE threads SET item_count = item_count + ? WHERE id = ? RETURNING item_count",
        (added, thread_id),
    )
    if not rows:
        raise _missing("thread", thread_id)
    return int(rows[0][0])


def _expire(thread_id: str, now: float) -> Op[None]:
    """Mark the thread's owned runs whose lease ran out as ``expired``."""
    yield Q(
        f"UPDATE runs SET status = 'expired', ended_at = ?, lease_until = NULL, error = ? "
        f"WHERE thread_id = ? AND {_IN_OWNED} AND lease_until < ?",
        (now, _EXPIRED_ERROR, thread_id, now),
    )


def _claim(thread_id: str, now: float) -> Op[None]:
    """Check that the thread has no active run, expiring first the ones whose lease ran
    out (one read when the thread is idle, the common case)."""
    rows = yield Q(
        f"SELECT id, status, lease_until FROM runs WHERE thread_id = ? AND {_IN_ACTIVE}",
        (thread_id,),
    )
    for run_id, status, lease_until in rows:
        if status == "requires_action" or lease_until is None or lease_until >= now:
            raise thread_busy(thread_id, run_id, status)
    if rows:
        yield from _expire(thread_id, now)


def thread_busy(thread_id: str, run_id: str | None, status: str | None) -> ThreadBusy:
    """The error for a thread that already has an active run."""
    return ThreadBusy(
        f"thread {thread_id} already has an active run ({run_id}, status {status!r}); "
        "wait for it to finish, resume it if it waits for approval, or cancel it with "
        "store.cancel_run(run_id)",
        thread_id=thread_id,
        run_id=run_id,
    )


def append_items(thread_id: str, run_id: str | None, items: Sequence[Message]) -> Op[int]:
    """Append messages at the next positions, all or nothing.

    With a ``run_id``, that run must be an active run of this thread (a run that lost its
    lease to a newer one can no longer write); without one, the thread must be idle.
    """
    encoded = [encode_item(message) for message in items]
    now = time.time()
    count = yield from _lock_thread(thread_id, len(encoded))
    if run_id is None:
        yield from _claim(thread_id, now)
    else:
        rows = yield Q("SELECT thread_id, status FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise _missing("run", run_id)
        owner, status = rows[0]
        if owner != thread_id or status not in ACTIVE:
            where = "" if owner == thread_id else f" on thread {owner}"
            raise RunStatusError(
                f"run {run_id} is {status!r}{where}, so it cannot append to thread "
                f"{thread_id}; start a new run on the thread",
                run_id=run_id,
                status=status,
            )
    start = count - len(encoded)
    yield Q(
        "INSERT INTO items (thread_id, position, run_id, kind, format, data, created_at) "
        "VALUES (?, ?, ?, 'message', ?, ?, ?)",
        [(thread_id, start + i, run_id, ITEM_FORMAT, e, now) for i, e in enumerate(encoded)],
        many=True,
    )
    return count


def save_step(
    thread_id: str,
    run_id: str,
    items: Sequence[Message],
    status: RunStatus | None,
    usage: Usage | None,
    error: str | None,
    pending: Sequence[PendingCall] | None,
    state: str | None,
    lease_until: float | None,
) -> Op[RunRecord]:
    """Append a step's messages and update its run, in one transaction."""
    if items:
        yield from append_items(thread_id, run_id, items)
    return (
        yield from update_run(run_id, status, None, usage, error, pending, state, lease_until)
    )


def save_summary(thread_id: str, key: str, text: str) -> Op[None]:
    """Store a summary of the thread's earlier messages (``key``: what it covers) as an
    item of kind 'summary': never a message, never sent as one."""
    count = yield from _lock_thread(thread_id, 1)
    yield Q(
        "INSERT INTO items (thread_id, position, run_id, kind, format, data, created_at) "
        "VALUES (?, ?, NULL, 'summary', ?, ?, ?)",
        (thread_id, count - 1, ITEM_FORMAT, json.dumps({"key": key, "text": text}), time.time()),
    )


def summaries(thread_id: str) -> Op[dict[str, str]]:
    """The thread's stored summaries, by the key of what each covers."""
    yield from get_thread(thread_id)
    rows = yield Q(
        "SELECT data FROM items WHERE thread_id = ? AND kind = 'summary' ORDER BY position",
        (thread_id,),
    )
    return {item["key"]: item["text"] for item in (json.loads(row[0]) for row in rows)}


# --- runs ------------------------------------------------------------------------------

_RUN_COLUMNS = (
    "id, thread_id, agent, status, usage, error, pending, created_at, ended_at, state, "
    "lease_until, idempotency_key"
)


def _run(row: tuple[Any, ...]) -> RunRecord:
    created = utc(row[7])
    assert created is not None
    return RunRecord(
        id=row[0],
        thread_id=row[1],
        agent=row[2],
        status=row[3],
        usage=decode_usage(row[4]),
        error=row[5],
        pending=decode_pending(row[6]),
        created_at=created,
        ended_at=utc(row[8]),
        state=row[9],
        lease_until=utc(row[10]),
        idempotency_key=row[11],
    )


def stale(run: RunRecord, now: float) -> bool:
    """Whether an owned run's lease has run out (it still shows as active)."""
    return (
        run.status in ("queued", "in_progress", "cancelling")
        and run.lease_until is not None
        and run.lease_until.timestamp() < now
    )


def create_run(
    thread_id: str,
    agent: str,
    status: RunStatus,
    state: str | None,
    lease: float | None,
    idempotency_key: str | None,
) -> Op[RunRecord]:
    """Insert the thread's one active run, after expiring runs whose owner died."""
    if status not in ("queued", "in_progress"):
        raise ConfigurationError(f"a run starts 'queued' or 'in_progress', not {status!r}")
    now = time.time()
    yield from _lock_thread(thread_id)
    if idempotency_key is not None:
        rows = yield Q(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE idempotency_key = ?", (idempotency_key,)
        )
        if rows:
            return _run(rows[0])
    yield from _claim(thread_id, now)
    row = (
        new_id("run"),
        thread_id,
        agent,
        status,
        encode_usage(Usage()),
        None,
        "[]",
        now,
        None,
        state,
        None if lease is None else now + lease,
        idempotency_key,
    )
    yield Q(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * len(row))})", row)
    return _run(row)


def get_run(run_id: str) -> Op[RunRecord]:
    """The run, or NotFound."""
    rows = yield Q(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
    if not rows:
        raise _missing("run", run_id)
    return _run(rows[0])


def list_runs(thread_id: str) -> Op[list[RunRecord]]:
    """The thread's runs, oldest first."""
    yield from get_thread(thread_id)
    rows = yield Q(f"SELECT {_RUN_COLUMNS} FROM runs WHERE thread_id = ? ORDER BY id", (thread_id,))
    return [_run(row) for row in rows]


def expire_stale(thread_id: str) -> Op[None]:
    """Expire the thread's runs whose lease ran out (readers call this when they see one)."""
    yield from _expire(thread_id, time.time())


def update_run(
    run_id: str,
    status: RunStatus | None,
    expect: Sequence[RunStatus] | None,
    usage: Usage | None,
    error: str | None,
    pending: Sequence[PendingCall] | None,
    state: str | None,
    lease_until: float | None,
) -> Op[RunRecord]:
    """Change a run if its current status allows it (checked in the UPDATE itself, so two
    processes cannot both win); ``expect`` narrows the statuses it may come from."""
    if status is not None and status not in STATUSES:
        raise RunStatusError(
            f"unknown run status {status!r}; use one of {', '.join(STATUSES)}",
            run_id=run_id,
            status=str(status),
        )
    allowed = set(ACTIVE if status is None else _FROM[status])
    if expect is not None:
        allowed &= set(expect)
    sets: list[str] = []
    params: list[Any] = []
    owned = status not in TERMINAL and status != "requires_action"
    for column, value in (
        ("status", status),
        ("usage", None if usage is None else encode_usage(usage)),
        ("error", error),
        ("pending", None if pending is None else encode_pending(pending)),
        ("state", state),
        ("lease_until", lease_until if owned else None),
    ):
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(value)
    if not owned:
        # Nobody owns a finished run or one that waits for a person: no lease.
        sets.append("lease_until = NULL")
    if status in TERMINAL:
        sets.append("ended_at = ?")
        params.append(time.time())
    if not sets:
        return (yield from get_run(run_id))
    marks = ", ".join("?" * len(allowed)) or "NULL"
    rows = yield Q(
        f"UPDATE runs SET {', '.join(sets)} WHERE id = ? AND status IN ({marks}) "
        f"RETURNING {_RUN_COLUMNS}",
        (*params, run_id, *sorted(allowed)),
    )
    if rows:
        return _run(rows[0])
    current = yield from get_run(run_id)
    target = f"become {status!r}" if status else "be changed"
    raise RunStatusError(
        f"run {run_id} is {current.status!r} and cannot {target}"
        + (f" (expected one of {', '.join(expect)})" if expect is not None else "")
        + "; read it again with store.get_run() and act on its current status",
        run_id=run_id,
        status=current.status,
    )


def cancel_run(run_id: str) -> Op[RunRecord]:
    """Cancel a run: at once if no process works on it (waiting, queued, or its owner's
    lease ran out), else ask its owner to stop at the next step (``cancelling``)."""
    now = time.time()
    done = yield Q(
        "UPDATE runs SET status = 'cancelled', ended_at = ?, lease_until = NULL "
        "WHERE id = ? AND (status IN ('queued', 'requires_action') "
        f"OR ({_IN_OWNED} AND lease_until < ?)) RETURNING id",
        (now, run_id, now),
    )
    asked = yield Q(
        "UPDATE runs SET status = 'cancelling' WHERE id = ? AND status = 'in_progress' "
        "RETURNING id",
        (run_id,),
    )
    run = yield from get_run(run_id)
    if not done and not asked and run.status != "cancelling":
        raise RunStatusError(
            f"run {run_id} already ended with status {run.status!r}; only an active run "
            "can be cancelled",
            run_id=run_id,
            status=run.status,
        )
    return run
