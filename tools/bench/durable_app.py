"""The runner the durable benchmark's workers run (``agentkit worker durable_app:runner``).

The standard 2-tool workload (the model calls ``get_weather`` and ``get_time`` at once,
then answers) on a fake model that takes ``BENCH_MODEL_DELAY`` seconds (default 0.05) per
request. ``BENCH_DSN`` names the database; ``BENCH_CONCURRENCY`` is each worker's limit.
"""

from __future__ import annotations

import asyncio
import os

from agentkit import Agent, Message, ToolCall, tool
from agentkit.durable import DurableRunner
from agentkit.models import ModelRequest
from agentkit.testing import FunctionModel
from agentkit.threads import PostgresStore


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The city.
    """
    return '{"temp_c": 21, "sky": "clear"}'


@tool
def get_time(tz: str) -> str:
    """Get the current time in a timezone.

    Args:
        tz: An IANA timezone.
    """
    return '{"time": "12:00"}'


async def slow_model(request: ModelRequest) -> Message:
    await asyncio.sleep(float(os.environ.get("BENCH_MODEL_DELAY", "0.05")))
    if request.messages[-1].role == "tool":
        return Message.assistant("It is sunny in Paris and the time is 12:00.")
    return Message.assistant(None, tool_calls=[
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "get_time", '{"tz": "Europe/Paris"}'),
    ])  # fmt: skip


agent = Agent(name="bench", model=FunctionModel(slow_model), tools=[get_weather, get_time])

runner = DurableRunner(
    PostgresStore(os.environ.get("BENCH_DSN", "postgresql://localhost/agentkit")),
    agents={"bench": agent},
    worker_concurrency=int(os.environ.get("BENCH_CONCURRENCY", "4")),
    poll_interval=float(os.environ.get("BENCH_POLL", "0.1")),
)
