"""Run hooks (agentkit/hooks.py and their call points in agentkit/run.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from agentkit import Agent, HookContext, HookError, RunHooks, RunResult, tool
from agentkit.hooks import use_hooks
from agentkit.messages import ToolCall
from agentkit.models import ModelRequest, ModelResponse
from agentkit.testing import ScriptedModel, capture_run, tool_call_response
from agentkit.threads import SQLiteStore
from agentkit.tools import ToolResult

pytestmark = pytest.mark.anyio


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"14C in {city}"


class Recorder(RunHooks):
    def __init__(self) -> None:
        self.log: list[str] = []
        self.contexts: set[int] = set()

    def on_run_start(self, ctx: HookContext) -> None:
        self.contexts.add(id(ctx))
        self.log.append(f"run_start {ctx.agent_name}: {ctx.messages[-1].text}")

    async def on_model_start(self, ctx: HookContext, request: ModelRequest) -> None:
        await anyio.sleep(0)  # async hooks are awaited
        self.contexts.add(id(ctx))
        self.log.append(f"model_start {ctx.agent_name} turn {ctx.turn}")

    def on_model_end(self, ctx: HookContext, response: ModelResponse) -> None:
        self.log.append(f"model_end {ctx.agent_name} turn {ctx.turn}")

    def on_tool_start(self, ctx: HookContext, call: ToolCall) -> None:
        self.log.append(f"tool_start {call.name}")

    async def on_tool_end(self, ctx: HookContext, call: ToolCall, result: ToolResult) -> None:
        self.log.append(f"tool_end {call.name}: {result.content}")

    def on_handoff(self, ctx: HookContext, from_agent: Any, to_agent: Any) -> None:
        self.log.append(f"handoff {from_agent.name} -> {to_agent.name}")

    def on_run_end(self, ctx: HookContext, result_or_error: Any) -> None:
        self.contexts.add(id(ctx))
        assert isinstance(result_or_error, RunResult)
        self.log.append(f"run_end {ctx.agent_name}: {result_or_error.output}")


async def test_hooks_are_called_in_order_across_a_handoff() -> None:
    model = ScriptedModel([
        tool_call_response(("get_weather", {"city": "Oslo"}), "transfer_to_forecaster"),
        "Cold.",
    ])  # fmt: skip
    forecaster = Agent(name="forecaster", model=model)
    hooks = Recorder()
    front = Agent(name="front", model=model, tools=[get_weather], handoffs=[forecaster],
                  hooks=[hooks])
    result = await front.run("Weather in Oslo?")
    assert result.output == "Cold."
    # The two calls run concurrently: each starts before it ends, in either order.
    tools = hooks.log[3:7]
    assert sorted(tools) == [
        "tool_end get_weather: 14C in Oslo",
        "tool_end transfer_to_forecaster: Transferred to forecaster.",
        "tool_start get_weather",
        "tool_start transfer_to_forecaster",
    ]
    for name in ("get_weather", "transfer_to_forecaster"):
        starts = [i for i, e in enumerate(tools) if e.startswith(f"tool_start {name}")]
        ends = [i for i, e in enumerate(tools) if e.startswith(f"tool_end {name}")]
        assert starts < ends
    assert hooks.log[:3] + hooks.log[7:] == [
        "run_start front: Weather in Oslo?",
        "model_start front turn 0",
        "model_end front turn 1",
        "handoff front -> forecaster",
        "model_start forecaster turn 1",
        "model_end forecaster turn 2",
        "run_end forecaster: Cold.",
    ]
    assert len(hooks.contexts) == 1  # one context object for the whole run


async def test_hooks_of_a_block_and_of_the_agent_both_watch() -> None:
    block, own = Recorder(), Recorder()
    agent = Agent(name="a", model=ScriptedModel(["hi"]), hooks=[own])
    with use_hooks(block):
        await agent.run("hello")
    assert block.log == own.log == [
        "run_start a: hello", "model_start a turn 0", "model_end a turn 1", "run_end a: hi"]


class Raising(RunHooks):
    def __init__(self, where: str) -> None:
        self.where = where

    def on_model_start(self, ctx: HookContext, request: ModelRequest) -> None:
        if self.where == "model":
            raise ValueError("hook bug")

    async def on_tool_end(self, ctx: HookContext, call: ToolCall, result: ToolResult) -> None:
        if self.where == "tool":
            raise KeyError("missing")

    def on_run_end(self, ctx: HookContext, result_or_error: Any) -> None:
        if self.where == "end":
            raise RuntimeError("end bug")


@pytest.mark.parametrize("where", ["model", "tool", "end"])
async def test_a_raising_hook_stops_the_run_with_a_hook_error(where: str) -> None:
    model = ScriptedModel([tool_call_response(("get_weather", {"city": "Oslo"})), "Cold."])
    agent = Agent(name="a", model=model, tools=[get_weather], hooks=[Raising(where)])
    with anyio.fail_after(10), pytest.raises(HookError) as caught:
        await agent.run("Weather?")
    error = caught.value
    method = {"model": "on_model_start", "tool": "on_tool_end", "end": "on_run_end"}[where]
    assert f"Raising.{method}" in str(error)
    assert error.__cause__ is not None and error.messages  # the run so far is attached


def test_a_raising_hook_in_run_sync_and_stream_does_not_hang() -> None:
    agent = Agent(name="a", model=ScriptedModel(["hi"] * 3), hooks=[Raising("model")])
    with pytest.raises(HookError, match="ValueError: hook bug"):
        agent.run_sync("x")

    async def consume() -> None:
        with anyio.fail_after(10):
            async for _ in agent.stream("x"):
                pass

    with pytest.raises(HookError):
        anyio.run(consume)


async def test_a_raising_hook_fails_a_thread_run_and_frees_the_thread(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    thread = await store.create_thread()
    agent = Agent(name="a", model=ScriptedModel(["hi", "again"]), hooks=[Raising("end")])
    with anyio.fail_after(10), pytest.raises(HookError):
        await agent.run("x", thread=thread.id, store=store)
    (run,) = await store.list_runs(thread.id)
    assert run.status == "failed" and "end bug" in (run.error or "")
    # The thread is not blocked: another agent runs on it.
    ok = await Agent(name="b", model=ScriptedModel(["fine"])).run("y", thread=thread.id,
                                                                  store=store)
    assert ok.output == "fine"


async def test_capture_run_records_each_request_with_its_response() -> None:
    model = ScriptedModel([tool_call_response(("get_weather", {"city": "Oslo"})), "Cold."])
    with capture_run() as captured:
        async with anyio.create_task_group() as group:
            for _ in range(2):
                group.start_soon(Agent(model=ScriptedModel(
                    [tool_call_response(("get_weather", {"city": "Oslo"})), "Cold."]),
                    tools=[get_weather]).run, "?")
        await Agent(model=model, tools=[get_weather]).run("?")
    assert len(captured.runs) == 3 and len(captured.requests) == 6
    for request, response in zip(captured.requests, captured.responses, strict=True):
        # Each response answers its own request: tool calls first, then the answer.
        asked_after_tool = request.messages[-1].role == "tool"
        assert bool(response.message.tool_calls) is not asked_after_tool
