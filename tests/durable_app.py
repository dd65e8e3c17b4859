"""The app the durable tests run in worker processes: `agentkit worker durable_app:runner`.

Configured by the environment: AGENTKIT_TEST_DSN (the database), AGENTKIT_TEST_EFFECTS
(the file the tools append to), AGENTKIT_TEST_DELAY (model latency, seconds).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

from agentkit import Agent, Message, RunContext, ToolCall, tool
from agentkit.durable import DurableRunner
from agentkit.models import ModelRequest
from agentkit.testing import FunctionModel
from agentkit.threads import PostgresStore

CALLS = 3


def _effects() -> Path:
    return Path(os.environ.get("AGENTKIT_TEST_EFFECTS", "effects.log"))


def _append(path: Path, line: str, unless_present: bool) -> bool:
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        if unless_present and line in f.read().splitlines():
            return False
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
        return True


@tool
async def record(n: int, ctx: RunContext[Any]) -> str:
    """Record step n of the job (an idempotent side effect, keyed by the call).

    Args:
        n: The step number.
    """
    key = ctx.idempotency_key
    assert key is not None
    _append(_effects().with_suffix(".attempts"), key, unless_present=False)
    await asyncio.sleep(float(os.environ.get("AGENTKIT_TEST_TOOL_DELAY", "0.02")))
    _append(_effects(), key, unless_present=True)
    return f"recorded {n}"


@tool(needs_approval=True)
def refund(amount: int, ctx: RunContext[Any]) -> str:
    """Refund an amount to the customer.

    Args:
        amount: Euros.
    """
    assert ctx.idempotency_key is not None
    _append(_effects(), f"refund {amount} {ctx.idempotency_key}", unless_present=True)
    return f"refunded {amount}"


def _done_calls(request: ModelRequest) -> int:
    count = 0
    for message in reversed(request.messages):
        if message.role == "user":
            break
        if message.role == "tool":
            count += 1
    return count


async def _job_model(request: ModelRequest) -> Message:
    await asyncio.sleep(float(os.environ.get("AGENTKIT_TEST_DELAY", "0.01")))
    done = _done_calls(request)
    if done < CALLS:  # one call per turn: at most one tool step in flight per run
        call = ToolCall(f"call_{done}", "record", f'{{"n": {done}}}')
        return Message.assistant(None, tool_calls=[call])
    return Message.assistant("all recorded")


async def _refund_model(request: ModelRequest) -> Message:
    if _done_calls(request) == 0:
        return Message.assistant(None, tool_calls=[ToolCall("call_r", "refund", '{"amount": 30}')])
    return Message.assistant("refund handled: " + (request.messages[-1].text or ""))


jobs = Agent(name="jobs", model=FunctionModel(_job_model), tools=[record])
support = Agent(name="support", model=FunctionModel(_refund_model), tools=[refund])

runner = DurableRunner(
    PostgresStore(os.environ.get("AGENTKIT_TEST_DSN", "postgresql://localhost/agentkit")),
    agents={"jobs": jobs, "support": support},
    worker_concurrency=int(os.environ.get("AGENTKIT_TEST_CONCURRENCY", "10")),
    heartbeat=float(os.environ.get("AGENTKIT_TEST_HEARTBEAT", "0.5")),
    dead_after=float(os.environ.get("AGENTKIT_TEST_DEAD_AFTER", "3")),
)
