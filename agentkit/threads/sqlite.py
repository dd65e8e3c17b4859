"""SQLiteStore: threads in one SQLite file, shared safely by threads and processes."""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from typing import TypeVar

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
            conn = self._take()
            try:
                return _drive(conn, op, write)
            finally:
                with self._lock:
                    self._idle.append(conn)
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


def _drive(conn: sqlite3.Connection, op: Op[T], write: bool) -> T:
    """Run ``op`` in one transaction: commit if it returns, roll back if anything raises."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
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
    except BaseException:
        conn.rollback()
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise
    return result
