"""PostgresStore: threads in PostgreSQL, through psycopg 3 and an async connection pool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from agentkit._secrets import redact
from agentkit.errors import ConfigurationError, StoreError, StoreUnavailable
from agentkit.threads import _sql
from agentkit.threads._base import SQLStore
from agentkit.threads._sql import Conflict, Op, Rows

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresStore"]

T = TypeVar("T")


class PostgresStore(SQLStore):
    """A thread store in a PostgreSQL database (extra ``postgres``: psycopg 3 and
    psycopg-pool), for several processes or machines sharing threads.

    The schema is created (or upgraded) on first use. Connections come from a pool
    opened on first use in the running event loop.

    Args:
        dsn: A libpq connection string or URL, e.g. ``postgresql://user@host/db``.
        max_size: The most connections the pool opens.
        timeout: Seconds to wait for a connection before
            :class:`~agentkit.errors.StoreUnavailable`.
    """

    dialect = _sql.POSTGRES

    def __init__(self, dsn: str, *, max_size: int = 10, timeout: float = 10.0) -> None:
        self._dsn = dsn
        self.max_size = max_size
        self.timeout = timeout
        self._pool: AsyncConnectionPool[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({self._where()!r})"

    def _where(self) -> str:
        """The server and database, without user or password, for messages."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            info = conninfo_to_dict(self._dsn)
        except Exception:
            return "<unparsable dsn>"
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    async def close(self) -> None:
        """Close the pool (the store opens a new one if used again)."""
        pool, self._pool = self._pool, None
        # A pool opened in another, finished loop cannot be awaited any more: drop it.
        if pool is not None and self._loop is asyncio.get_running_loop():
            await pool.close()

    async def _connections(self) -> AsyncConnectionPool[Any]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A pool belongs to the loop it was opened in (each run_sync() has its own):
            # a new loop gets a new pool; the old loop is gone, and its pool with it.
            self._loop, self._pool, self._opening = loop, None, asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                try:
                    from psycopg_pool import AsyncConnectionPool
                except ImportError:
                    raise ConfigurationError(
                        "PostgresStore needs psycopg 3 and psycopg-pool: "
                        "pip install 'agentkit[postgres]'"
                    ) from None
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self._dsn,
                    min_size=1,
                    max_size=self.max_size,
                    timeout=self.timeout,
                    kwargs={"autocommit": True},
                    open=False,
                )
                try:
                    await self._guard(pool.open(wait=True, timeout=self.timeout))
                    await self._guard(_drive(pool, _sql.migrate(self.dialect)))
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    async def _execute(self, op: Op[T], write: bool) -> T:
        pool = await self._connections()
        return await self._guard(_drive(pool, op))

    async def _guard(self, work: Awaitable[T]) -> T:
        """Await ``work``, turning driver errors into agentkit's (without the password)."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            return await work
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(str(exc)) from None
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(
                f"cannot reach the PostgreSQL database {self._where()} "
                f"({self._redact(exc)}); check that the server is up and the dsn is right, "
                "then retry"
            ) from None
        except psycopg.Error as exc:
            raise StoreError(
                f"the PostgreSQL database {self._where()} failed: {self._redact(exc)}"
            ) from None

    def _redact(self, exc: BaseException) -> str:
        from psycopg.conninfo import conninfo_to_dict

        try:
            password = conninfo_to_dict(self._dsn).get("password")
        except Exception:
            password = None
        return redact(str(exc).strip(), [str(password)] if password else [])


async def _drive(pool: AsyncConnectionPool[Any], op: Op[T]) -> T:
    """Run ``op`` in one transaction: commit if it returns, roll back if anything raises."""
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        try:
            query = next(op)
            while True:
                rows: Rows = []
                sql = query.sql.replace("?", "%s")
                if query.many:
                    await cur.executemany(sql, query.params)
                else:
                    await cur.execute(sql, query.params)
                    if cur.description is not None:
                        rows = await cur.fetchall()
                query = op.send(rows)
        except StopIteration as stop:
            result: T = stop.value
    return result
