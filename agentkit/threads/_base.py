"""The public methods both stores share; a store only says how to run an operation."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TypeVar

from agentkit.messages import Message
from agentkit.threads import _sql
from agentkit.threads._records import PendingCall, RunRecord, RunStatus, Thread
from agentkit.threads._sql import Conflict, Op
from agentkit.usage import Usage

T = TypeVar("T")


class SQLStore:
    """Implements :class:`~agentkit.threads.Store` over :meth:`_execute`, which runs one
    operation in one transaction (``write``: a writing one) and returns its result."""

    dialect: _sql.Dialect

    async def _execute(self, op: Op[T], write: bool) -> T:
        raise NotImplementedError

    async def close(self) -> None:
        """Release the store's connections (it reconnects if used again)."""

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def create_thread(self, metadata: Mapping[str, str] | None = None) -> Thread:
        """Create an empty thread; ``metadata`` maps strings to strings (a list filter)."""
        return await self._execute(_sql.create_thread(metadata), True)

    async def get_thread(self, thread_id: str) -> Thread:
        """The thread ``thread_id``; :class:`~agentkit.errors.NotFound` if there is none."""
        return await self._execute(_sql.get_thread(thread_id), False)

    async def list_threads(
        self,
        *,
        limit: int = 20,
        before: str | None = None,
        after: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> list[Thread]:
        """Up to ``limit`` threads, newest first. ``after=id`` gives the page after (older
        than) that thread, ``before=id`` the page before (newer); ``metadata`` keeps the
        threads having all of these key/value pairs."""
        op = _sql.list_threads(self.dialect, limit, before, after, metadata)
        return await self._execute(op, False)

    async def delete_thread(self, thread_id: str) -> None:
        """Delete a thread with all its items and runs."""
        await self._execute(_sql.delete_thread(thread_id), True)

    async def messages(self, thread_id: str, *, start: int = 0) -> list[Message]:
        """The thread's messages in the order they were appended: all of them, or from
        position ``start`` on; a negative ``start`` counts from the end (``-100``: the
        last 100), so a long thread's tail loads without reading the rest."""
        return await self._execute(_sql.messages(thread_id, start), False)

    async def save_step(
        self,
        thread_id: str,
        run_id: str,
        messages: Sequence[Message],
        *,
        status: RunStatus | None = None,
        usage: Usage | None = None,
        error: str | None = None,
        pending: Sequence[PendingCall] | None = None,
        state: str | None = None,
        lease_until: datetime | None = None,
    ) -> RunRecord:
        """``append_items`` and ``update_run`` in one transaction: a run's step is stored
        whole or not at all."""
        op = _sql.save_step(
            thread_id, run_id, messages, status, usage, error, pending, state,
            None if lease_until is None else lease_until.timestamp(),
        )  # fmt: skip
        return await self._execute(op, True)

    async def save_summary(self, thread_id: str, key: str, text: str) -> None:
        """Keep a summary of earlier messages (made by the ``summarize`` history policy)
        with the thread; ``key`` identifies the messages it covers."""
        await self._execute(_sql.save_summary(thread_id, key, text), True)

    async def summaries(self, thread_id: str) -> dict[str, str]:
        """The thread's stored summaries, by key."""
        return await self._execute(_sql.summaries(thread_id), False)

    async def append_items(
        self, thread_id: str, run_id: str | None, messages: Sequence[Message]
    ) -> int:
        """Append ``messages`` at the end of the thread in one transaction (all or none)
        and return the thread's new item count.

        With ``run_id``, that run must be the thread's active run: a run that was
        expired or cancelled can no longer write (:class:`~agentkit.errors.RunStatusError`).
        Without, the thread must have no active run (:class:`~agentkit.errors.ThreadBusy`).
        """
        return await self._execute(_sql.append_items(thread_id, run_id, messages), True)

    async def create_run(
        self,
        thread_id: str,
        agent: str,
        *,
        status: RunStatus = "in_progress",
        state: str | None = None,
        lease: float | None = 30.0,
        idempotency_key: str | None = None,
    ) -> RunRecord:
        """Start a run on a thread, owned by the caller for ``lease`` seconds (renew it with
        ``update_run(lease_until=...)``; ``None``: never expires).

        The database allows one active run per thread: if there is one, this raises
        :class:`~agentkit.errors.ThreadBusy`, unless its lease ran out (its process died),
        in which case it is marked ``expired`` first. With an ``idempotency_key`` already
        used, the existing run is returned.
        """
        args = (thread_id, agent, status, state, lease, idempotency_key)
        try:
            return await self._execute(_sql.create_run(*args), True)
        except Conflict:
            # Lost a race the row lock does not cover (e.g. the same key on two threads):
            # run again, now seeing the winner, to return or report it.
            try:
                return await self._execute(_sql.create_run(*args), True)
            except Conflict:
                raise _sql.thread_busy(thread_id, None, None) from None

    async def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id``; one whose owner's lease ran out is reported ``expired``."""
        run = await self._execute(_sql.get_run(run_id), False)
        if _sql.stale(run, time.time()):
            await self._execute(_sql.expire_stale(run.thread_id), True)
            run = await self._execute(_sql.get_run(run_id), False)
        return run

    async def list_runs(self, thread_id: str) -> list[RunRecord]:
        """The thread's runs, oldest first."""
        runs = await self._execute(_sql.list_runs(thread_id), False)
        now = time.time()
        if any(_sql.stale(run, now) for run in runs):
            await self._execute(_sql.expire_stale(thread_id), True)
            runs = await self._execute(_sql.list_runs(thread_id), False)
        return runs

    async def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        expect: Sequence[RunStatus] | None = None,
        usage: Usage | None = None,
        error: str | None = None,
        pending: Sequence[PendingCall] | None = None,
        state: str | None = None,
        lease_until: datetime | None = None,
    ) -> RunRecord:
        """Change a run and return it; arguments left ``None`` are kept.

        The status may only move along the run life cycle (e.g. ``in_progress`` →
        ``requires_action`` → ``in_progress`` → ``completed``; a terminal status never
        changes); ``expect`` further requires the current status to be one of these (a
        compare-and-set: of two processes resuming a waiting run, one wins). Otherwise
        :class:`~agentkit.errors.RunStatusError`. Entering ``requires_action`` or a
        terminal status drops the lease.
        """
        op = _sql.update_run(
            run_id,
            status,
            expect,
            usage,
            error,
            pending,
            state,
            None if lease_until is None else lease_until.timestamp(),
        )
        return await self._execute(op, True)

    async def cancel_run(self, run_id: str) -> RunRecord:
        """Cancel a run. A queued or waiting run (or one whose owner died) becomes
        ``cancelled`` at once; a running one ``cancelling``, and its owner ends it
        ``cancelled`` at its next step. A run already ended raises
        :class:`~agentkit.errors.RunStatusError`."""
        return await self._execute(_sql.cancel_run(run_id), True)
