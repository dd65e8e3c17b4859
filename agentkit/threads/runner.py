"""Runs on threads: the loop of :mod:`agentkit.run`, with every step stored.

``agent.run(input, thread=..., store=...)`` comes here. The run is recorded first (the
database refuses a second active run on the thread), the thread's messages become the
history, and after every step the step's new messages are appended in one transaction
and the run record takes the state (without its messages: the thread holds them), the
usage, the pending calls and a renewed lease. A process killed at any instant leaves a
thread that loads and continues, and a run record whose lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import anyio

from agentkit._secrets import redact
from agentkit.errors import AgentkitError, RunCancelled, RunStatusError
from agentkit.history import summarize
from agentkit.messages import Message
from agentkit.run import RunEvent, RunFinished, RunResult, RunSpec, RunState, iterate_run
from agentkit.threads._records import RunRecord, RunStatus, Store

__all__ = ["load_history", "resume_on_thread", "run_on_thread"]

logger = logging.getLogger("agentkit")

LEASE = 30.0
"""Seconds a run's owner holds it without renewing; a dead owner's run stops blocking its
thread after this."""


async def run_on_thread(
    agent: str,
    spec: RunSpec,
    input: str | Message | Sequence[Message],
    thread_id: str,
    store: Store,
    *,
    stream: bool = False,
) -> AsyncGenerator[RunEvent, None]:
    """Run ``spec`` on the stored thread ``thread_id``, storing every step."""
    record = await store.create_run(thread_id, agent, lease=LEASE)
    try:
        spec = await _bind_policy(spec, store, thread_id)
        history = await load_history(store, thread_id, spec)
    except BaseException as exc:
        await _end_quietly(store, record.id, "failed", f"could not load the thread: {exc}")
        raise
    run = _ThreadRun(store, record, spec, history)
    events = iterate_run(run.spec, input, history, stream=stream, state=run.state)
    # aclosing: a consumer that stops early ends (and stores) the run now, not at GC.
    async with contextlib.aclosing(run.drive(events)) as driven:
        async for event in driven:
            yield event


async def resume_on_thread(
    agent: str,
    spec: RunSpec,
    run_id: str,
    store: Store,
    *,
    approve: Sequence[str] = (),
    reject: Mapping[str, str] | None = None,
    outputs: Mapping[str, Any] | None = None,
    stream: bool = False,
) -> AsyncGenerator[RunEvent, None]:
    """Continue the stored run ``run_id``, which waits with ``requires_action``."""
    record = await store.get_run(run_id)
    if record.status != "requires_action" or record.state is None:
        raise RunStatusError(
            f"run {run_id!r} is {record.status}, not waiting (requires_action): only a run "
            "that stopped for approvals or external outputs can be resumed; start a new "
            "run on the thread instead",
            run_id=run_id, status=record.status,
        )
    if record.agent != agent:
        logger.warning("run %s was started by agent %r, resumed by %r", run_id, record.agent,
                       agent)
    saved, waiting = record.state, record.pending
    state = RunState.from_json(saved)
    state.decide(approve, reject, outputs)  # before any change: a bad id changes nothing
    # Compare-and-set: of two processes resuming the same run, one wins.
    record = await store.update_run(
        run_id, status="in_progress", expect=["requires_action"], lease_until=_lease(),
        pending=state.pending, state=state.to_json(),
    )
    try:
        spec = await _bind_policy(spec, store, record.thread_id)
        history = await load_history(store, record.thread_id, spec)
    except BaseException:
        # Give the run back as it was, waiting, so the same resume can be tried again.
        with contextlib.suppress(Exception), anyio.CancelScope(shield=True):
            await store.update_run(run_id, status="requires_action", state=saved,
                                   pending=waiting)
        raise
    run = _ThreadRun(store, record, spec, history, state)
    events = iterate_run(run.spec, None, history, stream=stream, state=state)
    async with contextlib.aclosing(run.drive(events)) as driven:
        async for event in driven:
            yield event


class _ThreadSummaries:
    """The ``summarize`` policy's summaries, kept with the thread."""

    def __init__(self, store: Store, thread_id: str, known: dict[str, str]) -> None:
        self.store = store
        self.thread_id = thread_id
        self.known = known

    async def get(self, key: str) -> str | None:
        return self.known.get(key)

    async def put(self, key: str, text: str) -> None:
        await self.store.save_summary(self.thread_id, key, text)
        self.known[key] = text


async def _bind_policy(spec: RunSpec, store: Store, thread_id: str) -> RunSpec:
    policy = spec.history_policy
    if not isinstance(policy, summarize):
        return spec
    cache = _ThreadSummaries(store, thread_id, await store.summaries(thread_id))
    return dataclasses.replace(spec, history_policy=policy.with_cache(cache))


async def load_history(store: Store, thread_id: str, spec: RunSpec) -> list[Message]:
    """The thread's messages; with a history policy that can send only the last N, only
    about those (a 10,000-item thread then loads in milliseconds)."""
    window = getattr(spec.history_policy, "window", None)
    if window is None:
        return await store.messages(thread_id)
    history = await store.messages(thread_id, start=-(window + _MARGIN))
    # The tail may start inside a turn: results whose call was not loaded go too.
    first = 0
    while first < len(history) and history[first].role == "tool":
        first += 1
    return history[first:]


class _ThreadRun:
    """One run on a thread: what of its state is stored, and storing the rest."""

    def __init__(
        self,
        store: Store,
        record: RunRecord,
        spec: RunSpec,
        history: list[Message],
        state: RunState | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.spec = dataclasses.replace(
            spec, after_step=self.after_step, thread_id=record.thread_id
        )
        self.state = state if state is not None else RunState()
        self.stored = len(history)
        # The instructions lead the run's messages but are not stored in the thread
        # (unless the thread starts with its own system message, which they replace).
        replaces = bool(history) and history[0].role in ("system", "developer")
        self.head = 1 if spec.instructions is not None and not replaces else 0
        self.renewal: asyncio.Task[None] | None = None

    async def drive(self, events: AsyncGenerator[RunEvent, None]) -> AsyncGenerator[RunEvent, None]:
        self.start_renewal()
        ended = False
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, RunFinished):
                        self.stop_renewal()
                        result = event.result
                        await self.save(result.status)
                        result.run_id = self.record.id
                        ended = True
                    yield event
        except RunCancelled:
            self.stop_renewal()
            await self.save("cancelled")
            ended = True
            state = self.state
            yield RunFinished(RunResult(
                output=None, messages=state.messages, usage=state.usage, turns=state.turn,
                new_message_index=state.new_message_index, state=state, status="cancelled",
                run_id=self.record.id,
            ))  # fmt: skip
        except AgentkitError as exc:
            self.stop_renewal()
            ended = True
            with anyio.CancelScope(shield=True):
                await self.save_quietly("failed", redact(str(exc)))
            raise
        finally:
            self.stop_renewal()
            if not ended:  # cancelled, interrupted, or abandoned by the consumer
                with anyio.CancelScope(shield=True):
                    await self.save_quietly("cancelled", "the run was interrupted")

    async def after_step(self, state: RunState) -> None:
        if state.next_step == "done":
            return  # the run ends here: its final save stores this step too
        await self.save()
        if self.record.status == "cancelling":
            raise RunCancelled(f"run {self.record.id} was cancelled")

    async def save(self, status: RunStatus | None = None, error: str | None = None) -> None:
        """Store the messages not stored yet and the run's state, in one transaction."""
        state = self.state
        new = state.messages[self.head + self.stored :]
        saved = dataclasses.replace(
            state, messages=[], new_message_index=max(state.new_message_index - self.head, 0),
            handoff_at=max(state.handoff_at - self.head, 0),
        )
        terminal = status not in (None, "requires_action")
        self.record = await self.store.save_step(
            self.record.thread_id,
            self.record.id,
            new,
            status=status,
            usage=state.usage,
            error=error,
            pending=state.pending,
            state=saved.to_json(),
            lease_until=None if terminal or status == "requires_action" else _lease(),
        )
        self.stored += len(new)

    async def save_quietly(self, status: RunStatus, error: str) -> None:
        try:
            await self.save(status, error)
        except Exception as exc:  # the store itself failed: the run's own error wins
            logger.warning("run %s: could not store its end (%s): %s", self.record.id,
                           status, exc)

    def start_renewal(self) -> None:
        # A step may take longer than the lease (a slow tool): renew in the background,
        # so a live run never looks dead. Only under asyncio (trio runs renew per step).
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.renewal = asyncio.ensure_future(self._renew())

    def stop_renewal(self) -> None:
        if self.renewal is not None:
            self.renewal.cancel()
            self.renewal = None

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(LEASE / 3)
            try:
                await self.store.update_run(self.record.id, lease_until=_lease())
            except Exception as exc:
                logger.warning("run %s: could not renew its lease: %s", self.record.id, exc)


# Extra messages loaded before a policy's window, so that the cut can move back to the
# call that leading tool results answer.
_MARGIN = 32


def _lease() -> datetime:
    return datetime.fromtimestamp(time.time() + LEASE, timezone.utc)


async def _end_quietly(store: Store, run_id: str, status: RunStatus, error: str) -> None:
    with contextlib.suppress(Exception), anyio.CancelScope(shield=True):
        await store.update_run(run_id, status=status, error=error)
