"""SQLiteStore: threads in one SQLite file, shared safely by threads and processes."""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread

from agentkit.errors import StoreError, StoreUnavailable
from agentkit.threads import _sql
from agentkit.threads._base import SQLStore
from agentkit.threads._sql import Conflict, Op, Rows

__all__ = ["SQLiteStore"]

T = TypeVar("T")


class SQLiteStore(SQLStore):
    """A thread store in one SQLite file (stdlib ``sqlite3``, no extra dependency).

    The file is in WAL mode, so readers never wait for the writer; writes take the
    file's write lock up front (``BEGIN IMMEDIATE``) and wait up to ``timeout`` seconds
    for it, so several processes may share one file. Database work runs in worker
    threads, never on the event loop.

    Args:
        path: The database file, created if missing (with its schema).
        timeout: Seconds to wait for another process's write lock before
            :class:`~agentkit.errors.StoreUnavailable`.
    """

    dialect = _sql.SQLITE

    def __init__(self, path: str | os.PathLike[str] = "agentkit.db", *, timeout: float = 10.0):
        self.path = os.fspath(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queue: list[_Job] = []
        self._idle: list[sqlite3.Connection] = []
        self._ready = False

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    async def _execute(self, op: Op[T], write: bool) -> T:
        return await anyio.to_thread.run_sync(functools.partial(self._run, op, write))

    async def close(self) -> None:
        """Close the idle connections (the store reconnects if used again)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _run(self, op: Op[T], write: bool) -> T:
        try:
            if write:
                return self._write(op)
            conn = self._take()
            try:
                return _drive(conn, op, write)
            finally:
                self._give(conn)
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from None
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreUnavailable(
                    f"the SQLite database {self.path} stayed locked by another connection "
                    f"for more than {self.timeout:g} s; retry, or give "
                    "SQLiteStore(timeout=...) more seconds"
                ) from None
            raise StoreUnavailable(
                f"cannot use the SQLite database {self.path}: {exc}; check that its "
                "directory exists and is writable"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a usable SQLite database ({exc}); point SQLiteStore at "
                "an agentkit database or a new file"
            ) from None

    def _write(self, op: Op[T]) -> T:
        """Group commit: writers of this process queue their operations; whoever holds
        the write lock runs every queued one in a single transaction, each in its own
        savepoint (so each stays all-or-nothing), and commits once for all. Writers
        also wait here rather than in SQLite's busy handler, which polls with sleeps."""
        job = _Job(op)
        with self._lock:
            self._queue.append(job)
        with self._write_lock:
            if not job.finished:
                with self._lock:
                    batch, self._queue = self._queue, []
                conn = self._take()
                try:
                    _commit(conn, batch)
                finally:
                    self._give(conn)
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def _give(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._idle.append(conn)

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                # With WAL, NORMAL loses no committed data on a process crash (only on an
                # OS crash or power loss, the last transactions) and skips an fsync per
                # commit.
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                if not self._ready:
                    _drive(conn, _sql.migrate(self.dialect), True)
                    self._ready = True
            except BaseException:
                conn.close()
                raise
            return conn


@dataclass(eq=False)
class _Job:
    op: Op[Any]
    finished: bool = False
    result: Any = None
    error: BaseException | None = None


def _steps(conn: sqlite3.Connection, op: Op[T]) -> T:
    """Run the statements of ``op`` (inside the caller's transaction)."""
    try:
        query = next(op)
        while True:
            rows: Rows = []
            if query.many:
                conn.executemany(query.sql, query.params)
            else:
                rows = conn.execute(query.sql, query.params).fetchall()
            query = op.send(rows)
    except StopIteration as stop:
        result: T = stop.value
        return result


def _drive(conn: sqlite3.Connection, op: Op[T], write: bool) -> T:
    """Run ``op`` in one transaction: commit if it returns, roll back if anything raises."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        result = _steps(conn, op)
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
    return result


def _commit(conn: sqlite3.Connection, batch: list[_Job]) -> None:
    """Run a batch of write operations in one transaction, one savepoint each: an
    operation that raises is undone alone; the commit (or its failure) is everyone's."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        for job in batch:
            conn.execute("SAVEPOINT op")
            try:
                job.result = _steps(conn, job.op)
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                job.error = exc
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.rollback()
        for job in batch:
            job.result = None
            job.error = (
                exc
                if isinstance(exc, Exception)
                else StoreError("the write was interrupted; nothing was stored: retry it")
            )
        if not isinstance(exc, Exception):
            raise
    finally:
        for job in batch:
            job.finished = True
