"""capture_run, block_model_requests and the assertion helpers."""

from __future__ import annotations

import pytest

from agentkit import Agent, tool
from agentkit.errors import MaxTurnsExceeded, ModelRequestsBlocked
from agentkit.models.base import Model, ModelRequest, ModelResponse
from agentkit.models.openai import OpenAIChatModel
from agentkit.testing.assertions import assert_called_tool, assert_no_tool_errors
from agentkit.testing.capture import block_model_requests, capture_run, stays_on_machine
from agentkit.testing.fake_openai import FakeOpenAIServer
from agentkit.testing.models import ScriptedModel, text_response, tool_call_response
from agentkit.testing.test_model import TestModel
from agentkit.usage import Usage


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"14C in {city}"


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


def weather_script() -> ScriptedModel:
    return ScriptedModel([
        tool_call_response(("get_weather", {"city": "Paris"}),
                           usage=Usage(requests=1, input_tokens=10, output_tokens=5,
                                       total_tokens=15)),
        text_response("It is 14C in Paris.",
                      usage=Usage(requests=1, input_tokens=20, output_tokens=7, total_tokens=27)),
    ])


def test_capture_collects_everything_of_a_run() -> None:
    agent = Agent(model=weather_script(), tools=[get_weather], instructions="Be brief.")
    with capture_run() as captured:
        result = agent.run_sync("Weather in Paris?")
    assert len(captured.runs) == 1
    run = captured.runs[0]
    assert run.error is None
    assert run.messages == result.messages == captured.messages
    assert [m.role for m in captured.messages] == ["system", "user", "assistant", "tool",
                                                    "assistant"]
    assert len(captured.requests) == 2 and len(captured.responses) == 2
    assert captured.requests[1].messages[-1].text == "14C in Paris"
    assert [(c.name, c.parsed_arguments()) for c in captured.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert (captured.usage.requests, captured.usage.total_tokens, captured.usage.tool_calls) == (
        2, 42, 1)
    assert captured.errors == []


def test_capture_keeps_a_run_that_raised() -> None:
    looping = ScriptedModel([tool_call_response(("get_weather", {"city": "Oslo"}))] * 3)
    agent = Agent(model=looping, tools=[get_weather], max_turns=2)
    with capture_run() as captured, pytest.raises(MaxTurnsExceeded):
        agent.run_sync("Weather in Oslo?")
    assert len(captured.runs) == 1
    assert isinstance(captured.runs[0].error, MaxTurnsExceeded)
    assert isinstance(captured.errors[0], MaxTurnsExceeded)
    assert [m.role for m in captured.runs[0].messages] == ["user", "assistant", "tool",
                                                           "assistant", "tool"]
    assert len(captured.tool_calls) == 2
    assert captured.usage.requests == 2


def test_capture_spans_several_runs_and_nests() -> None:
    agent = Agent(model=TestModel(output="ok"))
    with capture_run() as outer:
        agent.run_sync("one")
        with capture_run() as inner:
            agent.run_sync("two")
    assert [r.messages[0].text for r in outer.runs] == ["one", "two"]
    assert [r.messages[0].text for r in inner.runs] == ["two"]


@pytest.mark.anyio
async def test_capture_works_for_async_and_streamed_runs() -> None:
    agent = Agent(model=weather_script(), tools=[get_weather])
    with capture_run() as captured:
        async for _ in agent.stream("Weather in Paris?"):
            pass
    assert captured.runs[0].messages[-1].text == "It is 14C in Paris."


class _RemoteModel(Model):
    name = "remote-llm"

    async def request(self, request: ModelRequest) -> ModelResponse:
        raise AssertionError("the blocker should have stopped this request")


@pytest.mark.allow_model_requests  # the plugin's blocker would hide what this test checks
def test_block_model_requests_names_the_model() -> None:
    agent = Agent(model=_RemoteModel())
    agent.run_sync  # noqa: B018 - the model is only called inside the block
    with block_model_requests(), pytest.raises(ModelRequestsBlocked) as info:
        agent.run_sync("hi")
    assert "remote-llm" in str(info.value)
    assert "allow_model_requests" in str(info.value)


@pytest.mark.allow_model_requests
def test_block_model_requests_blocks_openai_and_allows_doubles() -> None:
    secret = "sk-canary-abcdefghijklmnop"
    openai_model = OpenAIChatModel("gpt-4o-mini", api_key=secret)
    with block_model_requests():
        with pytest.raises(ModelRequestsBlocked) as info:
            Agent(model=openai_model).run_sync("hi")
        assert "gpt-4o-mini" in str(info.value) and secret not in str(info.value)
        assert Agent(model=TestModel(output="fine")).run_sync("hi").output == "fine"
        assert Agent(model=ScriptedModel(["fine"])).run_sync("hi").output == "fine"


@pytest.mark.allow_model_requests
def test_block_model_requests_allows_only_fake_servers_of_this_process() -> None:
    # A real server on localhost (Ollama, a proxy to a paid API) is still a real model.
    assert not stays_on_machine(OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1"))
    assert not stays_on_machine(OpenAIChatModel("m", base_url="http://localhost:9/v1"))
    assert not stays_on_machine(OpenAIChatModel("m", base_url="https://example.com/v1",
                                                api_key="k"))
    with FakeOpenAIServer(["Hello from the fake."]) as server, block_model_requests():
        model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k")
        assert stays_on_machine(model)
        assert Agent(model=model).run_sync("hi").output == "Hello from the fake."
    assert not stays_on_machine(model)  # the server has stopped


def test_plugin_blocks_by_default() -> None:
    with pytest.raises(ModelRequestsBlocked, match="remote-llm"):
        Agent(model=_RemoteModel()).run_sync("hi")


# --- assertions ------------------------------------------------------------------------


def test_assert_called_tool_matches_a_subset_of_arguments() -> None:
    model = ScriptedModel([
        tool_call_response(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})),
        "done",
    ])
    result = Agent(model=model, tools=[get_weather]).run_sync("x")
    call = assert_called_tool(result, "get_weather", city="Rome")
    assert call.parsed_arguments() == {"city": "Rome"}
    assert_called_tool(result, "get_weather")
    assert len(result.tool_calls(name="get_weather")) == 2


def test_assert_called_tool_failure_lists_the_calls_made() -> None:
    model = ScriptedModel([tool_call_response(("get_weather", {"city": "Paris"})), "done"])
    result = Agent(model=model, tools=[get_weather]).run_sync("x")
    with pytest.raises(AssertionError) as wrong_args:
        assert_called_tool(result, "get_weather", city="Berlin")
    assert str(wrong_args.value) == (
        "expected a call to tool 'get_weather' with arguments including "
        '{"city": "Berlin"}, but the calls made were:\n  1. get_weather({"city": "Paris"})'
    )
    with pytest.raises(AssertionError, match="expected a call to tool 'book', but the calls"):
        assert_called_tool(result, "book")
    no_calls = Agent(model=ScriptedModel(["hi"])).run_sync("x")
    with pytest.raises(AssertionError, match="but no tool calls were made"):
        assert_called_tool(no_calls, "get_weather")


def test_assert_no_tool_errors() -> None:
    ok = Agent(model=weather_script(), tools=[get_weather]).run_sync("x")
    assert_no_tool_errors(ok)
    model = ScriptedModel([tool_call_response(("explode", {"reason": "test"})), "sorry"])
    failed = Agent(model=model, tools=[explode]).run_sync("x")
    with pytest.raises(AssertionError) as info:
        assert_no_tool_errors(failed)
    message = str(info.value)
    assert message.startswith("1 tool call(s) failed:\n  - explode({\"reason\": \"test\"}): ")
    assert "boom: test" in message
