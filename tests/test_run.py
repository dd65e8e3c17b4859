"""The agent loop (agentkit/run.py), driven through Agent with scripted models."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from agentkit import (
    Agent,
    ContentFiltered,
    MaxTurnsExceeded,
    Message,
    ModelResponseFinished,
    ModelSettings,
    OutputTruncated,
    OutputValidationError,
    RunContext,
    RunError,
    RunFinished,
    TextDelta,
    ToolCall,
    ToolCallStarted,
    ToolError,
    ToolResultReceived,
    ToolRetriesExceeded,
    Usage,
    UsageLimitExceeded,
    UsageLimits,
    tool,
)
from agentkit.models import ModelRequest, ModelResponse
from agentkit.testing import FunctionModel, ScriptedModel, text_response, tool_call_response

pytestmark = pytest.mark.anyio


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city.

    Args:
        city: City name.
    """
    return f"14°C and light rain in {city}"


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"boom: {reason}")


def _tool_messages(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m.role == "tool"]


# --- the basic loop --------------------------------------------------------------------


async def test_text_answer_ends_the_run() -> None:
    model = ScriptedModel(["Hello there."])
    agent = Agent(instructions="Be brief.", model=model)
    result = await agent.run("Hi")
    assert result.output == "Hello there."
    assert [m.role for m in result.messages] == ["system", "user", "assistant"]
    assert result.new_messages == result.messages[1:]
    assert result.turns == 1
    assert result.usage.requests == 1
    assert result.to_openai() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there."},
    ]
    assert model.requests[0].messages == [Message.system("Be brief."), Message.user("Hi")]


async def test_tool_call_runs_and_result_is_fed_back() -> None:
    model = ScriptedModel(
        [tool_call_response(("get_weather", {"city": "Paris"})), "It is 14°C in Paris."]
    )
    agent = Agent(model=model, tools=[get_weather])
    result = await agent.run("Weather in Paris?")
    assert result.output == "It is 14°C in Paris."
    assert result.turns == 2
    assert result.usage.tool_calls == 1
    second = model.requests[1].messages
    assert second[-1].role == "tool"
    assert second[-1].content == "14°C and light rain in Paris"
    assert second[-1].tool_call_id == second[-2].tool_calls[0].id
    assert [d.name for d in model.requests[0].tools] == ["get_weather"]
    assert [c.name for c in result.tool_calls()] == ["get_weather"]


async def test_usage_is_summed_over_every_request() -> None:
    model = ScriptedModel(
        [
            tool_call_response(("get_weather", {"city": "Oslo"}), usage=Usage(1, 10, 5, 15)),
            text_response("done", usage=Usage(1, 20, 3, 23)),
        ]
    )
    result = await Agent(model=model, tools=[get_weather]).run("x")
    assert (result.usage.requests, result.usage.input_tokens, result.usage.output_tokens) == (
        2,
        30,
        8,
    )
    assert result.usage.total_tokens == 38


async def test_history_continues_a_conversation_from_messages_or_wire_dicts() -> None:
    agent = Agent(instructions="New rules.", model=ScriptedModel(["first", "second"]))
    first = await agent.run("one")
    second = await agent.run("two", history=first.to_openai())
    assert [m.text for m in second.messages] == ["New rules.", "one", "first", "two", "second"]
    assert [m.text for m in second.new_messages] == ["two", "second"]


async def test_instructions_function_sees_the_context() -> None:
    async def instructions(ctx: RunContext[dict[str, str]]) -> str:
        return f"You help {ctx.deps['user']}."

    model = ScriptedModel(["ok"])
    await Agent(instructions=instructions, model=model).run("hi", context={"user": "Ada"})
    assert model.requests[0].messages[0] == Message.system("You help Ada.")


async def test_tools_receive_run_context_with_deps() -> None:
    seen: list[Any] = []

    @tool
    def whoami(ctx: RunContext[str], loud: bool = False) -> str:
        """Say who the user is."""
        seen.append((ctx.deps, ctx.tool_name, ctx.tool_call_id, ctx.turn))
        return ctx.deps.upper() if loud else ctx.deps

    model = ScriptedModel([tool_call_response(("whoami", {"loud": True})), "done"])
    result = await Agent(model=model, tools=[whoami]).run("who?", context="ada")
    assert _tool_messages(result.messages)[0].content == "ADA"
    call_id = result.tool_calls()[0].id
    assert seen == [("ada", "whoami", call_id, 1)]


# --- concurrency -----------------------------------------------------------------------


@tool
async def slow(label: str) -> str:
    """Sleep; the first label sleeps longest so completion order differs from call order."""
    await anyio.sleep({"a": 0.12, "b": 0.10, "c": 0.08}[label])
    return f"done {label}"


async def test_parallel_tool_calls_overlap_and_keep_call_order() -> None:
    model = ScriptedModel(
        [
            tool_call_response(
                ("slow", {"label": "a"}), ("slow", {"label": "b"}), ("slow", {"label": "c"})
            ),
            "all done",
        ]
    )
    agent = Agent(model=model, tools=[slow])
    started = time.perf_counter()
    result = await agent.run("go")
    elapsed = time.perf_counter() - started
    # All three at once take 0.12 s; two at a time 0.18 s; one at a time 0.30 s.
    assert elapsed < 0.15, f"tools did not all overlap: {elapsed:.3f}s"
    tool_msgs = _tool_messages(result.messages)
    assert [m.content for m in tool_msgs] == ["done a", "done b", "done c"]
    calls = result.messages[1].tool_calls
    assert [m.tool_call_id for m in tool_msgs] == [c.id for c in calls]


async def test_sync_tools_run_in_threads_concurrently() -> None:
    @tool
    def blocking(n: int) -> int:
        """Block the thread for 50 ms."""
        time.sleep(0.05)
        return n * 2

    model = ScriptedModel([tool_call_response(*[("blocking", {"n": i}) for i in range(3)]), "ok"])
    started = time.perf_counter()
    result = await Agent(model=model, tools=[blocking]).run("go")
    assert time.perf_counter() - started < 0.14
    assert [m.content for m in _tool_messages(result.messages)] == ["0", "2", "4"]


async def test_max_parallel_tools_bounds_concurrency() -> None:
    model = ScriptedModel([tool_call_response(*[("slow", {"label": "c"}) for _ in range(3)]), "ok"])
    agent = Agent(model=model, tools=[slow], settings=ModelSettings(max_parallel_tools=1))
    started = time.perf_counter()
    await agent.run("go")
    assert time.perf_counter() - started >= 0.24  # 3 × 0.08 s, one at a time


# --- what the model gets wrong is fed back ------------------------------------------


async def test_unknown_tool_is_fed_back_then_budget_raises() -> None:
    model = ScriptedModel([tool_call_response(("nope", {})) for _ in range(3)])
    agent = Agent(model=model, tools=[get_weather])
    with pytest.raises(ToolRetriesExceeded) as info:
        await agent.run("x")
    results = _tool_messages(info.value.messages)
    assert len(results) == 3
    assert results[0].content == "Unknown tool 'nope'. Available tools: get_weather."
    assert results[0].is_error
    assert "failed 3 times in a row" in str(info.value)


async def test_bad_arguments_are_fed_back_and_model_can_correct() -> None:
    model = ScriptedModel(
        [
            tool_call_response(("get_weather", {"town": "Paris"})),
            tool_call_response(("get_weather", {"city": "Paris"})),
            "fixed",
        ]
    )
    result = await Agent(model=model, tools=[get_weather]).run("x")
    first, second = _tool_messages(result.messages)
    assert first.is_error and "city" in str(first.content)
    assert second.content == "14°C and light rain in Paris"
    assert result.output == "fixed"


async def test_tool_exception_is_fed_back_by_default() -> None:
    model = ScriptedModel([tool_call_response(("explode", {"reason": "x"})), "sorry"])
    result = await Agent(model=model, tools=[explode]).run("x")
    error = _tool_messages(result.messages)[0]
    assert error.is_error
    assert "ValueError" in str(error.content) and "boom: x" in str(error.content)


async def test_consecutive_failure_counter_resets_on_success() -> None:
    bad = ("get_weather", {})
    good = ("get_weather", {"city": "Rome"})
    model = ScriptedModel(
        [
            tool_call_response(bad),
            tool_call_response(bad),
            tool_call_response(good),
            tool_call_response(bad),
            tool_call_response(bad),
            "end",
        ]
    )
    result = await Agent(model=model, tools=[get_weather], max_turns=10).run("x")
    assert result.output == "end"


async def test_on_tool_error_raise_reraises_with_messages() -> None:
    model = ScriptedModel([tool_call_response(("explode", {"reason": "y"})), "unused"])
    agent = Agent(model=model, tools=[explode], on_tool_error="raise")
    with pytest.raises(ToolError) as info:
        await agent.run("x")
    assert isinstance(info.value.exception, ValueError)
    assert [m.role for m in info.value.messages] == ["user", "assistant", "tool"]


async def test_tool_timeout_becomes_a_result() -> None:
    @tool(timeout=0.05)
    async def hang() -> str:
        """Never finishes in time."""
        await anyio.sleep(5)
        return "late"

    model = ScriptedModel([tool_call_response("hang"), "gave up"])
    started = time.perf_counter()
    result = await Agent(model=model, tools=[hang]).run("x")
    assert time.perf_counter() - started < 1
    assert _tool_messages(result.messages)[0].is_error
    assert result.output == "gave up"


# --- server quirks ---------------------------------------------------------------------


async def test_tool_calls_with_finish_reason_stop_still_run() -> None:
    response = tool_call_response(("get_weather", {"city": "Lima"}), finish_reason="stop")
    result = await Agent(model=ScriptedModel([response, "ok"]), tools=[get_weather]).run("x")
    assert _tool_messages(result.messages)[0].content == "14°C and light rain in Lima"


async def test_empty_and_duplicate_ids_become_unique() -> None:
    calls = [
        ToolCall("", "get_weather", '{"city": "A"}'),
        ToolCall("call_0", "get_weather", '{"city": "B"}'),
        ToolCall("call_0", "get_weather", '{"city": "C"}'),
    ]
    again = [ToolCall("call_0", "get_weather", '{"city": "D"}')]
    model = ScriptedModel([Message.assistant(None, calls), Message.assistant(None, again), "ok"])
    result = await Agent(model=model, tools=[get_weather]).run("x")
    ids = [c.id for c in result.tool_calls()]
    assert len(ids) == 4 and len(set(ids)) == 4 and all(ids)
    answered = [m.tool_call_id for m in _tool_messages(result.messages)]
    assert answered == ids


async def test_arguments_as_object_and_double_encoded_are_accepted() -> None:
    wire = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
            },
            {
                "id": "b",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": json.dumps(json.dumps({"city": "Bergen"})),
                },
            },
        ],
    }
    model = ScriptedModel([Message.from_openai(wire), "ok"])
    result = await Agent(model=model, tools=[get_weather]).run("x")
    assert [m.content for m in _tool_messages(result.messages)] == [
        "14°C and light rain in Oslo",
        "14°C and light rain in Bergen",
    ]


async def test_content_and_tool_calls_in_one_message_are_both_kept() -> None:
    response = tool_call_response(("get_weather", {"city": "Rome"}), content="Let me check.")
    result = await Agent(model=ScriptedModel([response, "ok"]), tools=[get_weather]).run("x")
    assistant = result.messages[1]
    assert assistant.content == "Let me check." and len(assistant.tool_calls) == 1


async def test_length_in_the_middle_of_a_tool_call_never_runs_it() -> None:
    ran: list[str] = []

    @tool
    def record(city: str) -> str:
        """Record a call."""
        ran.append(city)
        return "ok"

    cut = ModelResponse(
        Message.assistant(None, [ToolCall("c1", "record", '{"city": "Par')]), "length"
    )
    with pytest.raises(OutputTruncated) as info:
        await Agent(model=ScriptedModel([cut]), tools=[record]).run("x")
    assert ran == []
    assert "tool call" in str(info.value)
    assert info.value.messages[-1].tool_calls == ()
    assert info.value.usage is not None and info.value.usage.requests == 1


# --- finish reasons and limits ---------------------------------------------------------


async def test_content_filter_raises_with_messages() -> None:
    model = ScriptedModel([ModelResponse(Message.assistant(None), "content_filter")])
    with pytest.raises(ContentFiltered) as info:
        await Agent(model=model).run("bad")
    assert [m.role for m in info.value.messages] == ["user", "assistant"]


async def test_max_turns_raises_with_everything_so_far() -> None:
    model = ScriptedModel([tool_call_response(("get_weather", {"city": "X"}))] * 5)
    with pytest.raises(MaxTurnsExceeded) as info:
        await Agent(model=model, tools=[get_weather], max_turns=3).run("loop")
    assert len(model.requests) == 3
    assert len(_tool_messages(info.value.messages)) == 3
    assert "max_turns=3" in str(info.value)


async def test_usage_limits_raise_before_the_request_that_would_break_them() -> None:
    model = ScriptedModel([tool_call_response(("get_weather", {"city": "X"}))] * 5)
    agent = Agent(model=model, tools=[get_weather], usage_limits=UsageLimits(max_requests=2))
    with pytest.raises(UsageLimitExceeded) as info:
        await agent.run("x")
    assert len(model.requests) == 2
    assert "max_requests=2" in str(info.value)


async def test_token_limit() -> None:
    model = ScriptedModel(
        [tool_call_response(("get_weather", {"city": "X"}), usage=Usage(1, 80, 30, 110)), "ok"]
    )
    with pytest.raises(UsageLimitExceeded) as info:
        await Agent(model=model, tools=[get_weather]).run(
            "x", usage_limits=UsageLimits(max_total_tokens=100)
        )
    assert len(model.requests) == 1
    assert "max_total_tokens=100" in str(info.value)


async def test_tool_call_limit() -> None:
    model = ScriptedModel(
        [tool_call_response(("get_weather", {"city": "X"}), ("get_weather", {"city": "Y"}))]
    )
    with pytest.raises(UsageLimitExceeded) as info:
        await Agent(model=model, tools=[get_weather]).run(
            "x", usage_limits=UsageLimits(max_tool_calls=1)
        )
    assert "max_tool_calls=1" in str(info.value)
    # No tool ran, but every call is answered so the history can be continued.
    results = _tool_messages(info.value.messages)
    assert [m.content for m in results] == ["Not run: the run's tool-call limit was reached."] * 2
    assert [m.tool_call_id for m in results] == [c.id for c in info.value.messages[-3].tool_calls]


async def test_foreign_exception_from_model_is_wrapped_with_messages() -> None:
    model = ScriptedModel(
        [tool_call_response(("get_weather", {"city": "X"})), KeyError("surprise")]
    )
    with pytest.raises(RunError) as info:
        await Agent(model=model, tools=[get_weather]).run("x")
    assert isinstance(info.value.__cause__, KeyError)
    assert [m.role for m in info.value.messages] == ["user", "assistant", "tool"]


# --- tool choice -------------------------------------------------------------------------


async def test_forced_tool_choice_falls_back_to_auto_after_the_call() -> None:
    model = ScriptedModel([tool_call_response(("get_weather", {"city": "X"})), "ok"])
    agent = Agent(model=model, tools=[get_weather], settings=ModelSettings(tool_choice="required"))
    await agent.run("x")
    assert model.requests[0].settings.tool_choice == "required"
    assert model.requests[1].settings.tool_choice is None


async def test_forced_tool_choice_can_be_kept() -> None:
    model = ScriptedModel([tool_call_response(("get_weather", {"city": "X"}))] * 2)
    agent = Agent(
        model=model,
        tools=[get_weather],
        max_turns=2,
        settings=ModelSettings(tool_choice="get_weather", reset_tool_choice=False),
    )
    with pytest.raises(MaxTurnsExceeded):
        await agent.run("x")
    assert [r.settings.tool_choice for r in model.requests] == ["get_weather"] * 2


# --- structured output -------------------------------------------------------------------


class City(BaseModel):
    name: str
    population: int


async def test_structured_output_via_response_format() -> None:
    model = ScriptedModel(['{"name": "Paris", "population": 2100000}'])
    result = await Agent(model=model, output_type=City).run("x")
    assert result.output == City(name="Paris", population=2100000)
    response_format = model.requests[0].response_format
    assert response_format is not None
    assert response_format["type"] == "json_schema"
    schema = response_format["json_schema"]["schema"]
    assert schema["required"] == ["name", "population"]
    assert response_format["json_schema"]["strict"] is True


async def test_structured_output_retries_with_the_validation_error() -> None:
    model = ScriptedModel(['{"name": "Paris"}', '{"name": "Paris", "population": 2}'])
    result = await Agent(model=model, output_type=City).run("x")
    assert result.output.population == 2
    feedback = model.requests[1].messages[-1]
    assert feedback.role == "user" and "population" in feedback.text


async def test_structured_output_fails_after_retries() -> None:
    model = ScriptedModel(["nope"] * 3)
    with pytest.raises(OutputValidationError) as info:
        await Agent(model=model, output_type=City, output_retries=2).run("x")
    assert len(model.requests) == 3
    assert len(info.value.messages) == 6


async def test_non_object_output_types_are_wrapped() -> None:
    model = ScriptedModel(['{"result": [1, 2, 3]}'])
    result = await Agent(model=model, output_type=list[int]).run("x")
    assert result.output == [1, 2, 3]


@dataclass
class Point:
    x: int
    y: int


async def test_structured_output_via_final_result_tool_when_no_json_schema() -> None:
    def reply(request: ModelRequest) -> ModelResponse:
        assert request.response_format is None
        assert [t.name for t in request.tools] == ["get_weather", "final_result"]
        if len(request.messages) == 1:
            return tool_call_response(("final_result", {"x": "bad"}))
        return tool_call_response(("final_result", {"x": 1, "y": 2}))

    model = FunctionModel(reply, supports_json_schema=False)
    result = await Agent(model=model, tools=[get_weather], output_type=Point).run("x")
    assert result.output == Point(1, 2)
    # The final-answer call is answered, so the thread can be continued.
    assert result.messages[-1].role == "tool"


# --- run_sync and streaming ---------------------------------------------------------------


def test_run_sync_outside_a_loop() -> None:
    result = Agent(model=ScriptedModel(["sync ok"])).run_sync("x")
    assert result.output == "sync ok"


async def test_run_sync_inside_a_running_loop() -> None:
    asyncio.get_running_loop()  # we are inside one, as in a notebook
    result = Agent(model=ScriptedModel(["inside ok"])).run_sync("x")
    assert result.output == "inside ok"


async def test_stream_events_in_order_and_final_result_matches_run() -> None:
    script = [tool_call_response(("get_weather", {"city": "Paris"})), "It is 14°C in Paris."]
    agent = Agent(model=ScriptedModel(list(script)), tools=[get_weather])
    events = [event async for event in agent.stream("Weather?")]
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "ModelResponseFinished",
        "ToolCallStarted",
        "ToolResultReceived",
        "TextDelta",
        "TextDelta",
        "TextDelta",
        "TextDelta",
        "TextDelta",
        "ModelResponseFinished",
        "RunFinished",
    ]
    deltas = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert deltas == "It is 14°C in Paris."
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    assert (started.name, json.loads(started.arguments)) == ("get_weather", {"city": "Paris"})
    result_event = next(e for e in events if isinstance(e, ToolResultReceived))
    assert result_event.result.content == "14°C and light rain in Paris"
    assert result_event.duration >= 0
    final = events[-1]
    assert isinstance(final, RunFinished)
    ran = await Agent(model=ScriptedModel(list(script)), tools=[get_weather]).run("Weather?")
    assert final.result.output == ran.output
    assert final.result.to_openai()[:1] == ran.to_openai()[:1]
    assert [m.role for m in final.result.messages] == [m.role for m in ran.messages]
    assert all(isinstance(e.turn, int) for e in events if isinstance(e, ModelResponseFinished))


async def test_stream_error_carries_messages() -> None:
    model = ScriptedModel([ModelResponse(Message.assistant("cut"), "length")])
    with pytest.raises(OutputTruncated) as info:
        async for _ in Agent(model=model).stream("x"):
            pass
    assert [m.role for m in info.value.messages] == ["user", "assistant"]


async def test_agent_is_reusable_across_concurrent_runs() -> None:
    def reply(request: ModelRequest) -> str:
        return "echo " + request.messages[-1].text

    agent = Agent(model=FunctionModel(reply))
    results: dict[int, str] = {}

    async def one(i: int) -> None:
        results[i] = (await agent.run(f"n{i}")).output

    async with anyio.create_task_group() as group:
        for i in range(20):
            group.start_soon(one, i)
    assert results == {i: f"echo n{i}" for i in range(20)}


# --- robustness -----------------------------------------------------------------------


async def test_stopping_a_stream_early_closes_the_model_stream() -> None:
    closed: list[bool] = []

    async def stream_function(request: ModelRequest) -> Any:
        try:
            for word in ["one ", "two ", "three"]:
                yield word
        finally:
            closed.append(True)

    model = FunctionModel(lambda r: "unused", stream_function=stream_function)
    events = Agent(model=model).stream("x")
    async for event in events:
        if isinstance(event, TextDelta):
            break
    await events.aclose()  # type: ignore[attr-defined]
    assert closed == [True]


async def test_failing_instructions_still_leave_the_history_in_the_error() -> None:
    def instructions(ctx: RunContext[None]) -> str:
        raise LookupError("no such user")

    history = [Message.user("earlier"), Message.assistant("reply")]
    with pytest.raises(RunError) as info:
        await Agent(instructions=instructions, model=ScriptedModel([])).run("x", history=history)
    assert info.value.messages == history
    assert isinstance(info.value.__cause__, LookupError)


async def test_replacement_ids_are_deterministic_so_runs_replay() -> None:
    def script() -> list[Any]:
        return [Message.assistant(None, [ToolCall("", "get_weather", '{"city": "A"}')]), "ok"]

    first = await Agent(model=ScriptedModel(script()), tools=[get_weather]).run("x")
    second = await Agent(model=ScriptedModel(script()), tools=[get_weather]).run("x")
    assert first.to_openai() == second.to_openai()
    assert first.tool_calls()[0].id == "call_t1_0"


async def test_the_normalised_ids_are_what_events_report() -> None:
    model = ScriptedModel([Message.assistant(None, [ToolCall("", "get_weather", '{"city": "A"}')]),
                           "ok"])
    events = [e async for e in Agent(model=model, tools=[get_weather]).stream("x")]
    first = next(e for e in events if isinstance(e, ModelResponseFinished))
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    assert first.response.message.tool_calls[0].id == started.call.id == "call_t1_0"


async def test_an_unexpected_error_in_parallel_dispatch_is_not_hidden_in_a_group() -> None:
    class Broken(type(get_weather)):  # type: ignore[misc]
        async def invoke(self, arguments: Any, context: Any = None) -> Any:
            raise RuntimeError("dispatcher bug")

    broken = Broken("broken", "Always broken.", {"type": "object", "properties": {}},
                    lambda: None)
    model = ScriptedModel([tool_call_response("broken", "broken")])
    with pytest.raises(RunError) as info:
        await Agent(model=model, tools=[broken]).run("x")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "dispatcher bug" in str(info.value)
