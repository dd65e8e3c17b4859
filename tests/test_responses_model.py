"""OpenAIResponsesModel over real HTTP against FakeOpenAIServer's /v1/responses: the body
it sends, what it reads back (text, tool calls, structured output, usage, reasoning),
streaming, server-side state, status errors, and threads shared with the chat backend.

Retries and faults are in test_model_faults.py (one matrix for every client).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentkit import Agent, ModelSettings, tool
from agentkit.agent import resolve_model
from agentkit.errors import ConfigurationError, ContentFiltered, ModelError, OutputTruncated
from agentkit.messages import Message, to_saved
from agentkit.models import OpenAIChatModel, OpenAIResponsesModel
from agentkit.models.base import ModelRequest, TextDelta
from agentkit.retry import RetryPolicy
from agentkit.testing.cassettes import cassette
from agentkit.testing.fake_openai import (
    FakeOpenAIServer,
    parallel_tools_handler,
    raw_reply,
    text_reply,
    tool_call_reply,
)
from agentkit.threads import SQLiteStore

pytestmark = pytest.mark.anyio


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city}"


@tool
def get_time(timezone: str) -> str:
    """Get the time in a timezone."""
    return "12:00"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def model(server: FakeOpenAIServer, name: str = "gpt-4o-mini", **kw: Any) -> OpenAIResponsesModel:
    return OpenAIResponsesModel(
        name, base_url=server.base_url, api_key=server.api_key,
        retry=RetryPolicy(max_attempts=1), **kw,
    )


def bodies(server: FakeOpenAIServer, path: str = "/v1/responses") -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path == path]


async def test_a_tool_loop_sends_responses_items_and_reads_usage(
    server: FakeOpenAIServer,
) -> None:
    server.handler = parallel_tools_handler()
    server.enqueue(
        tool_call_reply(("get_weather", {"city": "Paris"}), ("get_time", {"timezone": "CET"}),
                        usage={"prompt_tokens": 100, "completion_tokens": 20,
                               "prompt_tokens_details": {"cached_tokens": 64}}),
        text_reply("Sunny, 12:00.", model="gpt-4o-mini-2024-07-18",
                   usage={"prompt_tokens": 150, "completion_tokens": 5,
                          "completion_tokens_details": {"reasoning_tokens": 3}}),
    )
    agent = Agent(model=model(server), instructions="Be brief.", tools=[get_weather, get_time],
                  settings=ModelSettings(temperature=0.2, max_tokens=300, user="u1",
                                         tool_choice="get_weather", parallel_tool_calls=True))
    result = await agent.run("Weather and time in Paris?")
    assert result.output == "Sunny, 12:00."
    assert result.model_name == "gpt-4o-mini-2024-07-18"
    usage = result.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 250, 25)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (64, 3)
    first, second = bodies(server)
    assert first["store"] is False and "include" not in first  # not a reasoning model
    assert first["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather and time in Paris?"},
    ]
    assert first["tools"][0] == {
        "type": "function", "name": "get_weather", "description": "Get the weather for a city.",
        "parameters": get_weather.parameters, "strict": True,
    }
    assert first["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert (first["temperature"], first["max_output_tokens"], first["user"]) == (0.2, 300, "u1")
    assert first["parallel_tool_calls"] is True
    call_ids = [call.id for call in result.messages[2].tool_calls]
    assert second["input"][2:] == [
        {"type": "function_call", "call_id": call_ids[0], "name": "get_weather",
         "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": call_ids[1], "name": "get_time",
         "arguments": '{"timezone":"CET"}'},
        {"type": "function_call_output", "call_id": call_ids[0], "output": "Sunny in Paris"},
        {"type": "function_call_output", "call_id": call_ids[1], "output": "12:00"},
    ]


async def test_streaming_yields_text_deltas_and_merges_tool_call_arguments(
    server: FakeOpenAIServer,
) -> None:
    server.enqueue(
        tool_call_reply(("get_weather", {"city": "Reykjavík"})),
        text_reply(["It ", "is ", "sunny."]),
    )
    agent = Agent(model=model(server), tools=[get_weather])
    deltas: list[str] = []
    async for event in agent.stream("Weather?"):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
    assert deltas == ["It ", "is ", "sunny."]
    first, second = bodies(server)
    assert first["stream"] is True
    assert second["input"][1]["arguments"] == '{"city":"Reykjavík"}'
    assert second["input"][2]["output"] == "Sunny in Reykjavík"


async def test_structured_output_uses_text_format(server: FakeOpenAIServer) -> None:
    class City(BaseModel):
        name: str
        population: int

    server.enqueue(text_reply('{"name": "Paris", "population": 2100000}'))
    result = await Agent(model=model(server), output_type=City).run("Biggest French city?")
    assert result.output == City(name="Paris", population=2100000)
    text_format = bodies(server)[0]["text"]["format"]
    assert text_format["type"] == "json_schema" and text_format["strict"] is True
    assert text_format["schema"]["required"] == ["name", "population"]


async def test_reasoning_items_are_carried_to_the_next_turn(server: FakeOpenAIServer) -> None:
    server.enqueue(
        tool_call_reply(("get_weather", {"city": "Oslo"}), reasoning="Need the weather."),
        text_reply("Sunny in Oslo.", reasoning="Answer now."),
    )
    result = await Agent(model=model(server, "o4-mini"), tools=[get_weather]).run("Oslo?")
    first, second = bodies(server)
    assert first["include"] == ["reasoning.encrypted_content"] and first["store"] is False
    reasoning = second["input"][1]
    assert reasoning["type"] == "reasoning" and reasoning["id"] == "rs_fake000001"
    assert reasoning["encrypted_content"].startswith("fake-enc:")
    assert "status" not in reasoning
    assert second["input"][2]["type"] == "function_call"  # right after its reasoning
    assert result.usage.reasoning_tokens == 3 + 2
    # The reasoning stays on the stored message, so a saved thread keeps it too.
    saved = json.loads(json.dumps(to_saved(result.messages[1])))
    assert Message.from_openai(saved) == result.messages[1]
    assert saved["reasoning"][0]["id"] == "rs_fake000001"
    assert "reasoning" not in result.messages[1].to_openai()  # chat servers never see it


async def test_previous_response_id_sends_only_the_new_items(server: FakeOpenAIServer) -> None:
    server.enqueue(tool_call_reply(("get_weather", {"city": "Rome"})), "Sunny in Rome.",
                   "You asked about Rome.")
    agent = Agent(model=model(server, previous_response_id=True), tools=[get_weather])
    first_run = await agent.run("Rome?")
    await agent.run("What did I ask?", history=first_run.messages)
    first, second, third = bodies(server)
    assert first["store"] is True and "previous_response_id" not in first
    assert second["previous_response_id"] == "resp_fake000001"
    assert [item.get("type") for item in second["input"]] == ["function_call_output"]
    assert third["previous_response_id"] == "resp_fake000002"
    assert third["input"] == [{"role": "user", "content": "What did I ask?"}]


async def test_a_failed_response_raises_model_error(server: FakeOpenAIServer) -> None:
    failed = {"id": "resp_1", "object": "response", "status": "failed", "output": [],
              "error": {"code": "server_error", "message": "The model crashed."}}
    server.enqueue(raw_reply(failed))
    with pytest.raises(ModelError, match="The model crashed") as info:
        await model(server).request(ModelRequest([Message.user("hi")]))
    assert "server_error" in str(info.value)


@pytest.mark.parametrize(("finish", "error"), [
    ("length", OutputTruncated), ("content_filter", ContentFiltered)])
async def test_incomplete_responses_raise_the_run_errors(
    server: FakeOpenAIServer, finish: str, error: type[Exception]
) -> None:
    server.enqueue(text_reply("Half an ans", finish_reason=finish))
    with pytest.raises(error):
        await Agent(model=model(server)).run("Tell me everything.")
    assert json.loads(server.requests[0].raw)["model"] == "gpt-4o-mini"


async def test_settings_without_a_responses_field_are_left_out_with_one_warning(
    server: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue("a", "b")
    backend = model(server)
    settings = ModelSettings(seed=7, stop=["\n"])
    for _ in range(2):
        await backend.request(ModelRequest([Message.user("hi")], settings=settings))
    assert all("seed" not in b and "stop" not in b for b in bodies(server))
    warnings = [r for r in caplog.records if "has no stop, seed" in r.getMessage()]
    assert len(warnings) == 1


def test_model_strings_select_the_backend() -> None:
    chosen = resolve_model("responses:gpt-4o")
    assert isinstance(chosen, OpenAIResponsesModel) and chosen.name == "gpt-4o"
    assert isinstance(resolve_model("gpt-4o"), OpenAIChatModel)
    with pytest.raises(ConfigurationError, match="responses:<model name>"):
        resolve_model("responses:")


@pytest.mark.parametrize("first_backend", ["chat", "responses"])
async def test_a_thread_continues_with_the_other_backend(
    server: FakeOpenAIServer, tmp_path: Path, first_backend: str
) -> None:
    chat = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key=server.api_key)
    responses = model(server)
    first, then = (chat, responses) if first_backend == "chat" else (responses, chat)
    store = SQLiteStore(str(tmp_path / "threads.db"))
    thread = await store.create_thread()
    server.enqueue(tool_call_reply(("get_weather", {"city": "Lima"})), "Sunny in Lima.",
                   "You asked about Lima.")
    await Agent(model=first, tools=[get_weather], store=store).run("Lima?", thread=thread.id)
    result = await Agent(model=then, tools=[get_weather], store=store).run(
        "What did I ask?", thread=thread.id)
    assert result.output == "You asked about Lima."
    last = server.requests[-1].body
    stored = await store.messages(thread.id)
    call_id = stored[1].tool_calls[0].id
    if then is chat:
        assert [m["role"] for m in last["messages"]] == [
            "user", "assistant", "tool", "assistant", "user"]
        assert last["messages"][1]["tool_calls"][0]["id"] == call_id
        assert last["messages"][2]["tool_call_id"] == call_id
    else:
        assert last["input"] == [
            {"role": "user", "content": "Lima?"},
            {"type": "function_call", "call_id": call_id, "name": "get_weather",
             "arguments": '{"city":"Lima"}'},
            {"type": "function_call_output", "call_id": call_id, "output": "Sunny in Lima"},
            {"role": "assistant", "content": "Sunny in Lima."},
            {"role": "user", "content": "What did I ask?"},
        ]


async def test_a_cassette_records_and_replays_responses_calls(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    path = tmp_path / "responses.jsonl"
    server.enqueue(tool_call_reply(("get_weather", {"city": "Nice"})), "Sunny in Nice.")

    async def ask(stream: bool) -> list[str]:
        agent = Agent(model=model(server), tools=[get_weather])
        if not stream:
            return [m.text for m in (await agent.run("Nice?")).messages]
        async for _ in agent.stream("Nice?"):
            pass
        return []

    with cassette(path, mode="record"):
        recorded = await ask(False)
    lines = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert [line["request"]["path"] for line in lines] == ["/v1/responses"] * 2
    server.stop()  # replay needs no server
    with cassette(path, mode="replay") as replaying:
        replayed = await ask(False)
    assert replayed == recorded and replaying.unplayed == 0


def test_image_parts_become_input_images() -> None:
    from agentkit.models._responses_wire import input_items

    message = Message.user([
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ])
    assert input_items([message]) == [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
    ]}]
