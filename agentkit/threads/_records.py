"""The values a thread store hands out, and the :class:`Store` protocol both stores meet."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, get_args

from agentkit.errors import ConfigurationError, StoreError, StoreVersionError
from agentkit.messages import Message, ToolCall, to_saved
from agentkit.run import PendingCall, RunStatus
from agentkit.usage import Usage

__all__ = [
    "ACTIVE",
    "ITEM_FORMAT",
    "TERMINAL",
    "PendingCall",
    "RunRecord",
    "RunStatus",
    "Store",
    "Thread",
    "decode_items",
    "encode_item",
    "new_id",
]

STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
# A thread has at most one run in these statuses (a unique partial index says so).
ACTIVE: tuple[RunStatus, ...] = ("queued", "in_progress", "requires_action", "cancelling")
TERMINAL: tuple[RunStatus, ...] = tuple(s for s in STATUSES if s not in ACTIVE)

# Version of the JSON of one stored item; a reader refuses items newer than it knows.
ITEM_FORMAT = 1


def new_id(prefix: str) -> str:
    """A unique id that sorts by creation time (microseconds, then 48 random bits), so
    listings and cursors need no second ordering column."""
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(6)}"


def utc(timestamp: float | None) -> datetime | None:
    """A stored epoch timestamp as an aware UTC datetime."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc)


@dataclass(frozen=True, slots=True)
class Thread:
    """A stored conversation: an ordered list of items.

    Attributes:
        id: ``thread_...``.
        created_at: When it was created (UTC).
        metadata: The string key/value pairs given at creation, usable as a list filter.
        item_count: How many items it holds.
    """

    id: str
    created_at: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    item_count: int = 0


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of an agent on a thread, as stored.

    Attributes:
        id: ``run_...``.
        thread_id: The thread the run reads and appends to.
        agent: The agent's name.
        status: One of :data:`RunStatus`; ``queued``, ``in_progress``, ``requires_action``
            and ``cancelling`` are active (at most one active run per thread).
        usage: What the run has spent so far.
        error: Why the run failed or expired (``None`` otherwise).
        pending: The calls a ``requires_action`` run waits on.
        created_at: When it was created (UTC).
        ended_at: When it reached a terminal status (UTC), else ``None``.
        state: The serialized :class:`~agentkit.RunState` to resume from, if saved.
        lease_until: Until when its owner holds it; past this, an ``in_progress``,
            ``queued`` or ``cancelling`` run no longer blocks its thread (it is marked
            ``expired`` by the next run). ``None`` for runs no process owns.
        idempotency_key: The key the run was created with, if any.
    """

    id: str
    thread_id: str
    agent: str
    status: RunStatus
    usage: Usage
    error: str | None
    pending: list[PendingCall]
    created_at: datetime
    ended_at: datetime | None
    state: str | None = None
    lease_until: datetime | None = None
    idempotency_key: str | None = None

    @property
    def active(self) -> bool:
        """Whether the run still holds its thread (not in a terminal status)."""
        return self.status in ACTIVE


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """``metadata`` as a plain dict, refused unless every key and value is a string."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ConfigurationError(
            f"thread metadata must map strings to strings, got {metadata!r:.200}; "
            "convert the values with str() or json.dumps()"
        )
    return dict(metadata)


def encode_usage(usage: Usage) -> str:
    """``usage`` as JSON text."""
    return json.dumps(dataclasses.asdict(usage))


def decode_usage(text: str) -> Usage:
    """A usage read back; fields this version does not know are ignored."""
    known = {f.name for f in dataclasses.fields(Usage)}
    return Usage(**{k: v for k, v in json.loads(text).items() if k in known})


def encode_pending(pending: Sequence[PendingCall]) -> str:
    """``pending`` as JSON text."""
    return json.dumps([dataclasses.asdict(call) for call in pending], ensure_ascii=False)


def decode_pending(text: str) -> list[PendingCall]:
    """Pending calls read back."""
    return [PendingCall(**call) for call in json.loads(text)]


def encode_item(message: Message) -> str:
    """One message as the JSON of a stored item (see :func:`agentkit.messages.to_saved`)."""
    return json.dumps(to_saved(message), ensure_ascii=False)


def decode_items(thread_id: str, rows: Sequence[tuple[int, int, str]]) -> list[Message]:
    """Stored ``(position, format, data)`` items read back as messages. Items written by
    a newer agentkit are refused rather than misread."""
    for position, format, _ in rows:
        if format > ITEM_FORMAT:
            raise StoreVersionError(
                f"item {position} of thread {thread_id} has format version {format}, newer "
                f"than this agentkit understands ({ITEM_FORMAT}); upgrade agentkit "
                "(pip install -U agentkit) to read it"
            )
    try:
        # One parse for the whole thread: long threads load much faster this way.
        items = json.loads(f"[{','.join(row[2] for row in rows)}]")
    except ValueError as exc:
        raise StoreError(
            f"thread {thread_id} holds an item that is not valid JSON ({exc}); it was not "
            "written by agentkit: restore it from a backup or delete the thread"
        ) from None
    return [_message(item) for item in items]


def _message(data: dict[str, Any]) -> Message:
    role = data.get("role")
    try:
        calls = tuple(
            ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
            for c in data.get("tool_calls") or ()
        )
    except (KeyError, TypeError):
        calls = None
    if role not in _ROLES or calls is None or (role == "tool") != ("tool_call_id" in data):
        # Not what encode_item writes: the wire parser validates (and explains) it.
        return Message.from_openai(data)
    # Direct construction skips re-validating what encode_item wrote: 2-3x faster.
    return Message(
        role,
        data.get("content"),
        calls,
        data.get("tool_call_id"),
        data.get("name"),
        data.get("refusal"),
        bool(data.get("is_error", False)),
    )


_ROLES = frozenset(("system", "developer", "user", "assistant", "tool"))


class Store(Protocol):
    """Where threads, their items and their runs live: :class:`SQLiteStore` or
    :class:`PostgresStore` (one logical schema, the same behaviour)."""

    async def create_thread(self, metadata: Mapping[str, str] | None = None) -> Thread:
        """Create an empty thread."""
        ...

    async def get_thread(self, thread_id: str) -> Thread:
        """The thread ``thread_id``; :class:`~agentkit.errors.NotFound` if there is none."""
        ...

    async def list_threads(
        self,
        *,
        limit: int = 20,
        before: str | None = None,
        after: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> list[Thread]:
        """Threads newest first; ``after``/``before`` are thread ids (page cursors)."""
        ...

    async def delete_thread(self, thread_id: str) -> None:
        """Delete a thread with its items and runs."""
        ...

    async def messages(self, thread_id: str, *, start: int = 0) -> list[Message]:
        """The thread's messages in order, from position ``start`` (negative: from the
        end)."""
        ...

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
        """Append a step's messages and update its run, in one transaction."""
        ...

    async def save_summary(self, thread_id: str, key: str, text: str) -> None:
        """Keep a summary of earlier messages with the thread (``key``: what it covers)."""
        ...

    async def summaries(self, thread_id: str) -> dict[str, str]:
        """The thread's stored summaries, by key."""
        ...

    async def append_items(
        self, thread_id: str, run_id: str | None, messages: Sequence[Message]
    ) -> int:
        """Append messages in one transaction; returns the thread's new item count."""
        ...

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
        """Start a run on a thread; :class:`~agentkit.errors.ThreadBusy` if it has an
        active run."""
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """The run ``run_id``."""
        ...

    async def list_runs(self, thread_id: str) -> list[RunRecord]:
        """The thread's runs, oldest first."""
        ...

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
        """Change a run, checking the status transition."""
        ...

    async def cancel_run(self, run_id: str) -> RunRecord:
        """Ask a run to stop."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
