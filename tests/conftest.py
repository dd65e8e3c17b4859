"""Shared fixtures for agentkit's own tests."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _postgres import PostgresServer

from agentkit.threads import PostgresStore, SQLiteStore

# A shell starts background jobs with SIGINT ignored, and children inherit that: the tests
# that press Ctrl-C in a child (run_sync, chat) need the handler a terminal user has.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- thread stores: every store test runs on SQLite and on a real PostgreSQL ----------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Backend:
    """How a test reaches one database: a store, a way to open more, raw SQL."""

    kind: str
    url: str  # a file path (SQLite) or a dsn (Postgres)

    def open(self, **options: Any) -> Any:
        if self.kind == "sqlite":
            return SQLiteStore(self.url, **options)
        return PostgresStore(self.url, **options)

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement outside agentkit (what another tool or version could do)."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.url) as conn:
                return conn.execute(statement, params).fetchall()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "agentkit.db"))
    server: PostgresServer = request.getfixturevalue("postgres")
    return Backend("postgres", server.new_database())


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Any]:
    opened = backend.open()
    try:
        yield opened
    finally:
        await opened.close()
