"""The loop as resumable steps (agentkit/run.py): RunState, resume, timeouts, history
repair and forced tool choices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from agentkit import (
    Agent,
    ConfigurationError,
    Message,
    ModelConnectionError,
    ModelSettings,
    RunFinished,
    RunState,
    RunTimeout,
    ToolCall,
    ToolChoiceIgnored,
    tool,
)
from agentkit.models import ModelRequest, ModelResponse
from agentkit.run import iterate_run
from agentkit.testing import FunctionModel
from agentkit.usage import Usage

pytestmark = pytest.mark.anyio

executed: Counter[str] = Counter()


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    executed[f"weather:{city}"] += 1
    return f"rain in {city}"


@tool
async def get_time(zone: str) -> str:
    """Time in a zone."""
    executed[f"time:{zone}"] += 1
    return f"12:00 in {zone}"


def scripted(request: ModelRequest) -> ModelResponse:
    """Three turns decided only by the conversation, so any restart replays the same."""
    turn = sum(1 for m in request.messages if m.role == "assistant") + 1
    if turn == 1:
        calls = [ToolCall("c1", "get_weather", '{"city": "Paris"}'),
                 ToolCall("c2", "get_time", '{"zone": "CET"}')]
        return ModelResponse(Message.assistant("Checking.", calls), "tool_calls")
    if turn == 2:
        calls = [ToolCall("c3", "get_weather", '{"city": "Oslo"}')]
        return ModelResponse(Message.assistant(None, calls), "tool_calls",
                             Usage(requests=1, input_tokens=7, output_tokens=3, total_tokens=10))
    results = [m.text for m in request.messages if m.role == "tool"]
    return ModelResponse(Message.assistant("Done: " + "; ".join(results)))


def make_agent() -> Agent[str]:
    return Agent(instructions="Be brief.", model=FunctionModel(scripted),
                 tools=[get_weather, get_time])


async def test_a_run_stopped_after_any_event_resumes_to_the_same_result() -> None:
    executed.clear()
    reference = await make_agent().run("Weather?")
    reference_executions = Counter(executed)
    events = 0
    async for _ in make_agent().stream("Weather?"):
        events += 1
    assert events >= 8

    for stop_after in range(1, events):
        executed.clear()
        agent = make_agent()
        state = RunState()
        run = iterate_run(agent._spec({}), "Weather?", state=state, stream=True)
        seen = 0
        async for event in run:
            assert not isinstance(event, RunFinished)
            seen += 1
            if seen == stop_after:
                break
        await run.aclose()
        saved = state.to_json()
        resumed = await make_agent().resume(RunState.from_json(saved))
        assert resumed.output == reference.output, stop_after
        assert resumed.to_openai() == reference.to_openai(), stop_after
        assert resumed.usage == reference.usage, stop_after
        # A tool whose result was recorded before the stop never runs again.
        assert executed == reference_executions, stop_after


async def test_a_failed_run_resumes_from_the_error_state() -> None:
    failures = [ModelConnectionError("connection refused (test)")]

    def flaky(request: ModelRequest) -> ModelResponse:
        if sum(m.role == "assistant" for m in request.messages) == 1 and failures:
            raise failures.pop()
        return scripted(request)

    agent = Agent(instructions="Be brief.", model=FunctionModel(flaky),
                  tools=[get_weather, get_time])
    with pytest.raises(ModelConnectionError) as info:
        await agent.run("Weather?")
    state = info.value.state
    assert state is not None and state.next_step == "model"
    assert [m.role for m in info.value.messages][-2:] == ["tool", "tool"]
    result = await agent.resume(state)
    assert result.output == (await make_agent().run("Weather?")).output


class Forecast(BaseModel):
    city: str
    rain: bool


def test_a_state_saved_in_one_process_finishes_in_another(tmp_path: Path) -> None:
    module = tmp_path / "resume_app.py"
    module.write_text(textwrap.dedent('''
        import json
        from agentkit import Agent, Message, ToolCall, tool
        from agentkit.models import ModelResponse
        from agentkit.testing import FunctionModel

        @tool
        def get_weather(city: str) -> str:
            """Weather."""
            return f"rain in {city}"

        def reply(request):
            if not any(m.role == "tool" for m in request.messages):
                call = ToolCall("c1", "get_weather", '{"city": "Paris"}')
                return ModelResponse(Message.assistant(None, [call]), "tool_calls")
            return json.dumps({"city": "Paris", "rain": True})

        def agent(output_type):
            return Agent(model=FunctionModel(reply), tools=[get_weather],
                         output_type=output_type)
    '''))
    script = textwrap.dedent('''
        import sys
        sys.path.insert(0, sys.argv[1])
        from pydantic import BaseModel
        from agentkit import RunState
        from resume_app import agent

        class Forecast(BaseModel):
            city: str
            rain: bool

        import anyio
        state = RunState.from_json(sys.stdin.read())
        result = anyio.run(agent(Forecast).resume, state)
        print(result.output.model_dump_json())
    ''')
    sys.path.insert(0, str(tmp_path))
    try:
        from resume_app import agent  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    state = RunState()

    async def stop_after_tools() -> None:
        run = iterate_run(agent(Forecast)._spec({}), "Weather in Paris?", state=state)
        async for event in run:
            if type(event).__name__ == "ToolResultReceived":
                break
        await run.aclose()

    anyio.run(stop_after_tools)
    assert state.next_step == "model"
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        input=state.to_json(), capture_output=True, text=True, timeout=60, check=True,
    )
    assert json.loads(done.stdout) == {"city": "Paris", "rain": True}


def test_from_json_rejects_what_is_not_a_saved_state() -> None:
    with pytest.raises(ConfigurationError, match="not a saved RunState"):
        RunState.from_json('{"messages": []}')
    with pytest.raises(ConfigurationError, match="not a saved RunState"):
        RunState.from_json("nonsense")


def test_a_state_keeps_failed_tool_results_marked() -> None:
    state = RunState(messages=[Message.tool("c1", "boom", name="t", is_error=True)])
    assert RunState.from_json(state.to_json()).messages[0].is_error


# --- run-level deadline ----------------------------------------------------------------------


@tool
async def slow_lookup(query: str) -> str:
    """Takes a long time."""
    await anyio.sleep(30)
    return "never"


def calls_slow_lookup(request: ModelRequest) -> ModelResponse:
    if any(m.role == "tool" for m in request.messages):
        return ModelResponse(Message.assistant("ok"))
    call = ToolCall("c1", "slow_lookup", '{"query": "x"}')
    return ModelResponse(Message.assistant(None, [call]), "tool_calls")


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_run_timeout_bounds_the_whole_run(streamed: bool) -> None:
    agent = Agent(model=FunctionModel(calls_slow_lookup), tools=[slow_lookup])
    started = time.monotonic()
    with pytest.raises(RunTimeout, match=r"timeout=0\.3") as info:
        if streamed:
            async for _ in agent.stream("x", timeout=0.3):
                pass
        else:
            await agent.run("x", timeout=0.3)
    assert time.monotonic() - started < 2
    # The messages so far, and a state that resumes by running the pending call.
    assert info.value.messages[-1].tool_calls[0].name == "slow_lookup"
    assert info.value.state is not None and info.value.state.next_step == "tools"


async def test_the_run_timeout_covers_a_slow_model() -> None:
    async def slow(request: ModelRequest) -> str:
        await anyio.sleep(30)
        return "late"

    with pytest.raises(RunTimeout):
        await Agent(model=FunctionModel(slow)).run("x", timeout=0.2)


async def test_a_timeout_error_inside_the_run_is_not_mistaken_for_the_deadline() -> None:
    def broken(request: ModelRequest) -> str:
        raise TimeoutError("the model's own timeout")

    with pytest.raises(Exception) as info:
        await Agent(model=FunctionModel(broken)).run("x", timeout=60)
    assert not isinstance(info.value, RunTimeout)
    assert "the model's own timeout" in str(info.value)


# --- history repair ----------------------------------------------------------------------------


async def test_a_tool_call_without_result_in_the_history_is_answered_before_sending() -> None:
    model = FunctionModel(lambda request: "fine")
    history = [
        Message.user("delete a.txt"),
        Message.assistant(None, [ToolCall("c9", "delete_file", '{"path": "a.txt"}')]),
    ]
    result = await Agent(model=model).run("and now?", history=history)
    sent = model.requests[0].messages
    assert [m.role for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[2].tool_call_id == "c9" and "interrupted" in sent[2].text
    assert result.output == "fine"


async def test_a_tool_result_answering_no_call_is_rejected_before_any_request() -> None:
    model = FunctionModel(lambda request: "fine")
    history = [Message.user("hi"), Message.tool("c404", "orphan", name="x")]
    with pytest.raises(ConfigurationError, match="c404"):
        await Agent(model=model).run("x", history=history)
    assert model.requests == []


# --- forced tool choice ignored by the server ---------------------------------------------------


async def test_a_text_answer_despite_tool_choice_required_is_fed_back_then_fails() -> None:
    model = FunctionModel(lambda request: "I will not call tools.")
    agent = Agent(model=model, tools=[get_weather],
                  settings=ModelSettings(tool_choice="required"), output_retries=1)
    with pytest.raises(ToolChoiceIgnored, match="tool_choice='required'") as info:
        await agent.run("Weather in Paris?")
    assert len(model.requests) == 2
    assert "you must call a tool" in model.requests[1].messages[-1].text
    assert info.value.messages[-1].role == "assistant"


async def test_a_model_that_complies_after_the_reminder_finishes() -> None:
    def reply(request: ModelRequest) -> Any:
        texts = [m.text for m in request.messages]
        if any("you must call" in t for t in texts) and not any(
            m.role == "tool" for m in request.messages
        ):
            call = ToolCall("c1", "get_weather", '{"city": "Paris"}')
            return ModelResponse(Message.assistant(None, [call]), "tool_calls")
        if any(m.role == "tool" for m in request.messages):
            return "It rains."
        return "No tools for me."

    agent = Agent(model=FunctionModel(reply), tools=[get_weather],
                  settings=ModelSettings(tool_choice="required"))
    result = await agent.run("Weather in Paris?")
    assert result.output == "It rains."
    assert [c.name for c in result.tool_calls()] == ["get_weather"]


def test_a_saved_state_loads_back_equal() -> None:
    state = RunState(messages=[
        Message.user("hi"),
        Message.assistant(None, [ToolCall("c1", "t", "{}")]),
        Message.tool("c1", "boom", name="t", is_error=True),
    ], next_step="model", turn=1)
    assert RunState.from_json(state.to_json()) == state
    with pytest.raises(ConfigurationError, match="next_step"):
        RunState.from_json(state.to_json().replace('"next_step": "model"', '"next_step": "x"'))
