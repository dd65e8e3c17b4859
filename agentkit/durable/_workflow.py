"""The DBOS workflow that is one durable run (imported only where DBOS runs).

Everything that leaves a mark (a model request, a tool call, a write to the thread store,
a wait for a person) is a DBOS step or a DBOS message, so that the workflow, replayed
after a crash, goes through the same code and gets the recorded results back; the code
between steps is the loop of :mod:`agentkit.run`, which is deterministic given them.

Writes to the store are steps whose effect is checked before it is repeated: a step in
flight at a crash runs again, and finds its transaction (the run's saved state) already
committed. So every thread item is stored exactly once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dbos import DBOS

from agentkit.durable._steps import StepModel, StepTool
from agentkit.errors import (
    AgentkitError,
    ConfigurationError,
    NotPending,
    RunCancelled,
    RunStatusError,
)
from agentkit.messages import Message
from agentkit.run import RunEvent, RunFinished, RunState, RunStatus, iterate_run
from agentkit.threads import Store

if TYPE_CHECKING:
    from agentkit.durable.runner import DurableRunner

__all__ = ["DECISION_TOPIC", "WORKFLOW", "bind", "durable_run"]

logger = logging.getLogger("agentkit")

WORKFLOW = "agentkit.durable.run"
DECISION_TOPIC = "agentkit.decision"
# How often a run that waits for a person looks at its record (a resume or a cancel that
# did not go through DBOS messages).
WAIT_CHECK = 300.0

_runner: DurableRunner | None = None


def bind(runner: DurableRunner) -> None:
    """Make ``runner`` (its agents, its store) the one this process's workflows use."""
    global _runner
    _runner = runner


@DBOS.workflow(name=WORKFLOW, max_recovery_attempts=None)
async def durable_run(agent: str, thread_id: str, input: list[dict[str, Any]]) -> str:
    """One run of ``agent`` on ``thread_id``; returns the run's final status."""
    if _runner is None:
        raise ConfigurationError(
            "a durable run started in a process without a DurableRunner worker: start "
            "workers with `agentkit worker module:runner` or runner.start()"
        )
    run_id = DBOS.workflow_id
    assert run_id is not None
    return await _Execution(_runner, run_id, agent, thread_id, input).run()


async def _step(name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    return await DBOS.run_step_async({"name": name}, fn)


class _Execution:
    def __init__(
        self,
        runner: DurableRunner,
        run_id: str,
        agent: str,
        thread_id: str,
        input: list[dict[str, Any]],
    ) -> None:
        self.runner = runner
        self.store: Store = runner.worker_store()
        self.run_id = run_id
        self.agent_name = agent
        self.thread_id = thread_id
        self.input = [Message.from_openai(m) for m in input]
        self.head = 0
        self.stored = 0
        self.status: RunStatus = "in_progress"
        # True when this execution ran the first step itself: no step after it can have
        # been tried before, so saves need not look for an earlier attempt's commit.
        self.fresh = False
        self.history: list[Message] | None = None

    async def run(self) -> str:
        begun = await _step("agentkit.begin", self.begin)
        if begun["status"] not in ("in_progress", "cancelling"):
            return str(begun["status"])  # cancelled while it was queued
        history = self.history
        if history is None:
            history = (await self.store.messages(self.thread_id))[: begun["history"]]
        agent = self.runner.agents[self.agent_name]
        spec = agent._spec({})
        spec = dataclasses.replace(
            spec,
            model=StepModel(spec.model),
            tools=[StepTool(t, self.run_id) for t in spec.tools],
            after_step=self.after_step,
        )
        replaces = bool(history) and history[0].role in ("system", "developer")
        self.head = 1 if spec.instructions is not None and not replaces else 0
        self.stored = len(history)
        state = RunState()
        events = iterate_run(spec, self.input, history, state=state)
        while True:
            status = await self.drive(events, state)
            if status != "requires_action":
                return status
            if not await self.wait(state):
                return self.status
            events = iterate_run(spec, None, state=state)

    async def begin(self) -> dict[str, Any]:
        """Take the run from ``queued`` to ``in_progress``; count the history it starts
        from (a replay must see the same history, not the items the run added since)."""
        try:
            status = (
                await self.store.update_run(self.run_id, status="in_progress", expect=["queued"])
            ).status
        except RunStatusError as exc:
            status = exc.status  # type: ignore[assignment]  # begun by an attempt that died, or cancelled meanwhile
        self.history = await self.store.messages(self.thread_id)
        self.fresh = True
        return {"status": status, "history": len(self.history)}

    async def drive(self, events: AsyncGenerator[RunEvent, None], state: RunState) -> str:
        try:
            async for event in events:
                if isinstance(event, RunFinished):
                    status = event.result.status
                    await self.save(state, status)
                    return self.status
        except RunCancelled:
            await self.save(state, "cancelled")
            return self.status
        except AgentkitError as exc:
            await self.save(state, "failed", f"{type(exc).__name__}: {exc}")
            return self.status
        finally:
            await events.aclose()
        raise AssertionError("a run ends with RunFinished")  # pragma: no cover

    async def after_step(self, state: RunState) -> None:
        if state.next_step != "model":
            # Done: the final save stores this step. Tools next (the model asked for some):
            # the save after them stores both steps, one transaction less per turn; a
            # crash in between replays the model's recorded answer anyway.
            return
        await self.save(state, None)
        if self.status == "cancelling":
            raise RunCancelled(f"run {self.run_id} was cancelled")
        if self.status not in ("in_progress", "requires_action"):
            raise RunCancelled(f"run {self.run_id} is {self.status}")

    async def save(
        self, state: RunState, status: RunStatus | None, error: str | None = None
    ) -> None:
        """Store the step's new messages and the run's state in one transaction, once."""
        new = state.messages[self.head + self.stored :]
        saved = dataclasses.replace(
            state, messages=[], new_message_index=max(state.new_message_index - self.head, 0)
        ).to_json()
        store, run_id, thread_id, fresh = self.store, self.run_id, self.thread_id, self.fresh

        async def write() -> str:
            if not fresh:
                current = await store.get_run(run_id)
                if current.state == saved and (status is None or current.status == status):
                    return current.status  # committed by an attempt that died unrecorded
            try:
                record = await store.save_step(
                    thread_id, run_id, new, status=status, usage=state.usage, error=error,
                    pending=state.pending, state=saved,
                )  # fmt: skip
            except RunStatusError as exc:
                # Cancelled (or ended) from outside: the run stops here, storing nothing.
                return exc.status
            return record.status

        self.status = await _step("agentkit.save", write)
        self.stored += len(new)

    async def wait(self, state: RunState) -> bool:
        """Wait, durably, for decisions on the pending calls; False if the run ended."""
        store, run_id = self.store, self.run_id
        while True:
            message = await DBOS.recv_async(DECISION_TOPIC, timeout_seconds=WAIT_CHECK)
            if message is None:

                async def check() -> str:
                    return (await store.get_run(run_id)).status

                self.status = await _step("agentkit.check", check)
                if self.status != "requires_action":
                    return False  # cancelled, or resumed by agent.resume outside DBOS
                continue
            if message.get("cancel"):

                async def cancelled() -> str:
                    return (await store.get_run(run_id)).status

                self.status = await _step("agentkit.check", cancelled)
                if self.status != "requires_action":
                    return False
                continue
            try:
                state.decide(message["approve"], message["reject"], message["outputs"])
            except (NotPending, ConfigurationError) as exc:
                logger.warning("run %s: decisions ignored: %s", run_id, exc)
                continue
            await self.save(state, "in_progress")
            return self.status == "in_progress"
