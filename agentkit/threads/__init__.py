"""Threads, runs and their storage: conversations that persist in your own database.

A :class:`Store` keeps *threads* (ordered, typed, versioned items: the messages of a
conversation) and *runs* of agents on them (status, usage, error, pending calls). Two
stores share one logical schema and the same behaviour: :class:`SQLiteStore` (stdlib
``sqlite3``, the embedded default) and :class:`PostgresStore` (extra ``postgres``). The
database guarantees at most one active run per thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentkit.history import HistoryPolicy, keep_last, keep_tokens, summarize
from agentkit.threads._records import PendingCall, RunRecord, RunStatus, Store, Thread
from agentkit.threads.sqlite import SQLiteStore
from agentkit.threads.urls import store_from_url

if TYPE_CHECKING:
    from agentkit.threads.postgres import PostgresStore

    def _conforms(sqlite: SQLiteStore, postgres: PostgresStore) -> tuple[Store, Store]:
        return sqlite, postgres  # mypy checks both stores against the protocol here

__all__ = [
    "HistoryPolicy",
    "PendingCall",
    "PostgresStore",
    "RunRecord",
    "RunStatus",
    "SQLiteStore",
    "Store",
    "Thread",
    "keep_last",
    "keep_tokens",
    "store_from_url",
    "summarize",
]


def __getattr__(name: str) -> Any:
    # psycopg is optional and slow to import: load the Postgres store on first use only.
    if name == "PostgresStore":
        from agentkit.threads.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'agentkit.threads' has no attribute {name!r}")
