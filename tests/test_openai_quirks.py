"""The quirk matrix: odd things real OpenAI-compatible servers send, streamed and not.

Each case is served over real HTTP by FakeOpenAIServer and read by OpenAIChatModel; the
test states what the ModelResponse must contain. Cases the run loop resolves (duplicate or
empty ids, tool calls with finish_reason "stop", "length" mid tool call) are asserted here
at the model level: the response reports faithfully what the server said.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentkit.errors import ModelConnectionError, ModelHTTPError
from agentkit.messages import Message, ToolCall
from agentkit.models.base import ModelRequest, ModelResponse, TextDelta
from agentkit.models.openai import OpenAIChatModel
from agentkit.retry import RetryPolicy
from agentkit.testing.fake_openai import FakeOpenAIServer, raw_reply, raw_stream_reply

pytestmark = pytest.mark.anyio


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def model(server: FakeOpenAIServer) -> OpenAIChatModel:
    return OpenAIChatModel(
        "m", base_url=server.base_url, api_key="k",
        retry=RetryPolicy(max_attempts=2, sleep=_no_sleep),
    )


REQUEST = ModelRequest([Message.user("go")])


def completion(
    message: dict[str, Any], finish: str | None = "stop", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **message},
                     "finish_reason": finish}],
        **extra,
    }


def call(name: str, arguments: Any, id: str | None = "c1") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if id is not None:
        out["id"] = id
    return out


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}


def tc(index: int | None = None, id: str | None = None, name: str | None = None,
       arguments: str | None = None) -> dict[str, Any]:
    """One tool-call delta with only the given keys."""
    out: dict[str, Any] = {}
    if index is not None:
        out["index"] = index
    if id is not None:
        out["id"] = id
        out["type"] = "function"
    function = {k: v for k, v in (("name", name), ("arguments", arguments)) if v is not None}
    if function:
        out["function"] = function
    return out


def calls_chunk(*deltas: dict[str, Any]) -> dict[str, Any]:
    return chunk({"tool_calls": list(deltas)})


USAGE_CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
               "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4,
                                        "total_tokens": 11}}


async def stream(model: OpenAIChatModel) -> tuple[list[str], ModelResponse]:
    deltas: list[str] = []
    final = None
    async for item in model.stream(REQUEST):
        if isinstance(item, TextDelta):
            deltas.append(item.text)
        else:
            final = item
    assert final is not None
    return deltas, final


# --- non-streamed ----------------------------------------------------------------------


async def test_empty_arguments_for_no_argument_tool(server: FakeOpenAIServer,
                                                    model: OpenAIChatModel) -> None:
    server.enqueue(raw_reply(completion({"content": None, "tool_calls": [call("now", "")]},
                                        "tool_calls")))
    response = await model.request(REQUEST)
    assert response.message.tool_calls == (ToolCall("c1", "now", "{}"),)


async def test_double_encoded_arguments_are_unwrapped(server: FakeOpenAIServer,
                                                      model: OpenAIChatModel) -> None:
    encoded = '"{\\"city\\": \\"Paris\\"}"'
    server.enqueue(raw_reply(completion({"tool_calls": [call("w", encoded)]}, "tool_calls")))
    response = await model.request(REQUEST)
    assert response.message.tool_calls[0].parsed_arguments() == {"city": "Paris"}


async def test_arguments_sent_as_an_object(server: FakeOpenAIServer,
                                           model: OpenAIChatModel) -> None:
    server.enqueue(raw_reply(completion({"tool_calls": [call("w", {"city": "Rome"})]},
                                        "tool_calls")))
    response = await model.request(REQUEST)
    assert response.message.tool_calls[0].arguments == '{"city":"Rome"}'


async def test_content_filter_with_null_content(server: FakeOpenAIServer,
                                                model: OpenAIChatModel) -> None:
    server.enqueue(raw_reply(completion({"content": None}, "content_filter")))
    response = await model.request(REQUEST)
    assert response.finish_reason == "content_filter"
    assert response.message.content is None and response.message.text == ""


async def test_length_finish_in_the_middle_of_a_tool_call(server: FakeOpenAIServer,
                                                          model: OpenAIChatModel) -> None:
    server.enqueue(raw_reply(completion({"tool_calls": [call("w", '{"city": "Par')]}, "length")))
    response = await model.request(REQUEST)
    assert response.finish_reason == "length"
    assert response.message.tool_calls == (ToolCall("c1", "w", '{"city": "Par'),)


async def test_tool_calls_with_finish_reason_stop_reported_as_sent(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    server.enqueue(raw_reply(completion({"tool_calls": [call("w", "{}")]}, "stop")))
    response = await model.request(REQUEST)
    assert response.finish_reason == "stop" and len(response.message.tool_calls) == 1


async def test_duplicate_and_missing_ids_reported_as_sent(server: FakeOpenAIServer,
                                                          model: OpenAIChatModel) -> None:
    calls = [call("a", "{}", "dup"), call("b", "{}", "dup"), call("c", "{}", None)]
    server.enqueue(raw_reply(completion({"tool_calls": calls}, "tool_calls")))
    response = await model.request(REQUEST)
    assert [(c.id, c.name) for c in response.message.tool_calls] == [
        ("dup", "a"), ("dup", "b"), ("", "c")
    ]


async def test_null_finish_reason_is_inferred(server: FakeOpenAIServer,
                                              model: OpenAIChatModel) -> None:
    server.enqueue(
        raw_reply(completion({"tool_calls": [call("w", "{}")]}, None)),
        raw_reply(completion({"content": "hi"}, None)),
    )
    assert (await model.request(REQUEST)).finish_reason == "tool_calls"
    assert (await model.request(REQUEST)).finish_reason == "stop"


async def test_legacy_function_call(server: FakeOpenAIServer, model: OpenAIChatModel) -> None:
    message = {"content": None, "function_call": {"name": "w", "arguments": '{"x": 1}'}}
    server.enqueue(raw_reply(completion(message, "function_call")))
    response = await model.request(REQUEST)
    assert response.finish_reason == "tool_calls"
    assert response.message.tool_calls == (ToolCall("", "w", '{"x": 1}'),)


async def test_content_as_a_list_of_parts(server: FakeOpenAIServer,
                                          model: OpenAIChatModel) -> None:
    parts = [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]
    server.enqueue(raw_reply(completion({"content": parts})))
    assert (await model.request(REQUEST)).message.content == "Hello"


async def test_missing_or_partial_usage(server: FakeOpenAIServer, model: OpenAIChatModel) -> None:
    server.enqueue(
        raw_reply(completion({"content": "a"})),
        raw_reply(completion({"content": "b"}, usage={"prompt_tokens": 3, "completion_tokens": 2})),
    )
    first = await model.request(REQUEST)
    assert (first.usage.requests, first.usage.total_tokens) == (1, 0)
    second = await model.request(REQUEST)
    assert second.usage.total_tokens == 5


async def test_refusal_and_unknown_fields(server: FakeOpenAIServer,
                                          model: OpenAIChatModel) -> None:
    message = {"content": None, "refusal": "I can't help with that.",
               "reasoning_content": "hmm", "annotations": []}
    server.enqueue(raw_reply(completion(message, system_fingerprint="fp_1", service_tier="x")))
    response = await model.request(REQUEST)
    assert response.message.refusal == "I can't help with that."
    assert response.message.content is None


async def test_body_without_choices_is_an_error(server: FakeOpenAIServer,
                                                model: OpenAIChatModel) -> None:
    server.enqueue(raw_reply({"object": "chat.completion", "choices": []}),
                   raw_reply({"detail": "busy"}))
    with pytest.raises(ModelHTTPError, match="no choices"):
        await model.request(REQUEST)
    assert len(server.requests) == 2


# --- streamed ------------------------------------------------------------------------


async def test_stream_id_only_first_and_name_repeated(server: FakeOpenAIServer,
                                                      model: OpenAIChatModel) -> None:
    server.enqueue(raw_stream_reply([
        calls_chunk(tc(0, "c1", "get_weather", "")),
        calls_chunk(tc(0, None, "get_weather", '{"city":')),
        calls_chunk(tc(0, None, "get_weather", ' "Paris"}')),
        chunk(finish="tool_calls"),
    ]))
    _, final = await stream(model)
    assert final.message.tool_calls == (ToolCall("c1", "get_weather", '{"city": "Paris"}'),)
    assert final.finish_reason == "tool_calls"


async def test_stream_missing_index(server: FakeOpenAIServer, model: OpenAIChatModel) -> None:
    server.enqueue(raw_stream_reply([
        calls_chunk(tc(None, "c1", "a", '{"x"')),
        calls_chunk(tc(None, None, None, ": 1}")),
        calls_chunk(tc(None, "c2", "b", "{}")),
        chunk(finish="tool_calls"),
    ]))
    _, final = await stream(model)
    assert final.message.tool_calls == (ToolCall("c1", "a", '{"x": 1}'), ToolCall("c2", "b", "{}"))


async def test_stream_several_calls_at_index_zero(server: FakeOpenAIServer,
                                                  model: OpenAIChatModel) -> None:
    server.enqueue(raw_stream_reply([
        calls_chunk(tc(0, "c1", "a", "")),
        calls_chunk(tc(0, None, None, '{"n": 1}')),
        calls_chunk(tc(0, "c2", "b", "")),
        calls_chunk(tc(0, None, None, '{"n": 2}')),
        chunk(finish="tool_calls"),
    ]))
    _, final = await stream(model)
    assert final.message.tool_calls == (
        ToolCall("c1", "a", '{"n": 1}'), ToolCall("c2", "b", '{"n": 2}')
    )


async def test_stream_first_chunk_with_name_id_and_brace(server: FakeOpenAIServer,
                                                         model: OpenAIChatModel) -> None:
    server.enqueue(raw_stream_reply([
        calls_chunk(tc(0, "c1", "w", "{")),
        calls_chunk(tc(0, None, None, '"city": "Oslo"')),
        calls_chunk(tc(0, None, None, "}")),
        chunk(finish="tool_calls"),
    ]))
    _, final = await stream(model)
    assert final.message.tool_calls[0].parsed_arguments() == {"city": "Oslo"}


async def test_stream_empty_choices_first_and_usage_only_last(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    azure_first = {"id": "", "object": "", "model": "", "choices": [],
                   "prompt_filter_results": [{"prompt_index": 0}]}
    server.enqueue(raw_stream_reply([
        azure_first,
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hi"}),
        chunk({"content": " there"}, finish="stop"),
        USAGE_CHUNK,
    ]))
    deltas, final = await stream(model)
    assert deltas == ["Hi", " there"]
    assert final.message.text == "Hi there"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 4)


async def test_stream_without_done_but_finished(server: FakeOpenAIServer,
                                                model: OpenAIChatModel) -> None:
    server.enqueue(raw_stream_reply([chunk({"content": "ok"}, finish="stop")], done=False))
    deltas, final = await stream(model)
    assert deltas == ["ok"] and final.finish_reason == "stop"


async def test_stream_cut_without_finish_is_retried(server: FakeOpenAIServer,
                                                    model: OpenAIChatModel) -> None:
    server.enqueue(
        raw_stream_reply([calls_chunk(tc(0, "c1", "w", "{"))], done=False),
        raw_stream_reply([calls_chunk(tc(0, "c1", "w", "{}")), chunk(finish="tool_calls")]),
    )
    _, final = await stream(model)
    assert final.message.tool_calls == (ToolCall("c1", "w", "{}"),)
    assert len(server.requests) == 2


async def test_stream_comments_events_and_tight_data_prefix(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    server.enqueue(raw_stream_reply([
        ": keep-alive\n\n",
        'event: message\ndata:{"choices":[{"index":0,"delta":{"content":"A"}}]}\n\n',
        chunk({"content": "B"}, finish="stop"),
    ]))
    deltas, final = await stream(model)
    assert deltas == ["A", "B"] and final.message.text == "AB"


async def test_stream_error_event_before_text_is_retried_then_raised(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    error = {"error": {"message": "Internal error", "type": "server_error"}}
    server.enqueue(raw_stream_reply([error]), raw_stream_reply([error]))
    with pytest.raises(ModelHTTPError, match="Internal error"):
        await stream(model)
    assert len(server.requests) == 2


async def test_stream_length_in_the_middle_of_a_tool_call(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    server.enqueue(raw_stream_reply([
        calls_chunk(tc(0, "c1", "w", '{"city": "Pa')),
        chunk(finish="length"),
        USAGE_CHUNK,
    ]))
    _, final = await stream(model)
    assert final.finish_reason == "length"
    assert final.message.tool_calls == (ToolCall("c1", "w", '{"city": "Pa'),)


async def test_stream_content_filter_with_null_content(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    server.enqueue(raw_stream_reply([chunk({"content": None}, finish="content_filter")]))
    deltas, final = await stream(model)
    assert deltas == [] and final.finish_reason == "content_filter"
    assert final.message.content is None


async def test_stream_name_split_across_chunks(server: FakeOpenAIServer,
                                               model: OpenAIChatModel) -> None:
    server.enqueue(raw_stream_reply([
        calls_chunk(tc(0, "c1", "get_", "")),
        calls_chunk(tc(0, None, "weather", "{}")),
        chunk(finish="tool_calls"),
    ]))
    _, final = await stream(model)
    assert final.message.tool_calls[0].name == "get_weather"


async def test_stream_empty_and_double_encoded_arguments(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    server.enqueue(raw_stream_reply([
        calls_chunk(tc(0, "c1", "now", "")),
        calls_chunk(tc(1, "c2", "w", '"{\\"city\\":')),
        calls_chunk(tc(1, None, None, ' \\"Lima\\"}"')),
        chunk(finish="tool_calls"),
    ]))
    _, final = await stream(model)
    assert final.message.tool_calls == (
        ToolCall("c1", "now", "{}"), ToolCall("c2", "w", '{"city": "Lima"}')
    )


async def test_stream_whole_call_in_one_chunk_without_index(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    # Ollama-style: each complete call in one delta, no index, arguments as an object.
    server.enqueue(raw_stream_reply([
        chunk({"tool_calls": [{"id": "c1", "function": {"name": "a", "arguments": {"x": 1}}},
                              {"id": "c2", "function": {"name": "b", "arguments": {}}}]}),
        chunk(finish="tool_calls"),
    ]))
    _, final = await stream(model)
    assert final.message.tool_calls == (ToolCall("c1", "a", '{"x":1}'), ToolCall("c2", "b", "{}"))


async def test_stream_text_then_tool_call(server: FakeOpenAIServer,
                                          model: OpenAIChatModel) -> None:
    server.enqueue(raw_stream_reply([
        chunk({"content": "Let me check."}),
        calls_chunk(tc(0, "c1", "w", '{"city": "Kyiv"}')),
        chunk(finish="tool_calls"),
        USAGE_CHUNK,
    ]))
    deltas, final = await stream(model)
    assert deltas == ["Let me check."]
    assert final.message.text == "Let me check."
    assert final.message.tool_calls == (ToolCall("c1", "w", '{"city": "Kyiv"}'),)
    assert final.usage.total_tokens == 11


async def test_stream_of_only_empty_choices_is_the_same_error_as_unstreamed(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    empty_chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": []}
    empty_stream = raw_stream_reply([empty_chunk] * 3)
    server.enqueue(empty_stream, empty_stream)
    with pytest.raises(ModelHTTPError, match="no choices") as streamed:
        await stream(model)
    assert len(server.requests) == 2  # retried once, as a malformed answer is
    empty_body = raw_reply({"object": "chat.completion", "choices": []})
    server.enqueue(empty_body, empty_body)
    with pytest.raises(ModelHTTPError, match="no choices") as plain:
        await model.request(REQUEST)
    assert type(streamed.value) is type(plain.value)
    assert "not a chat completion" in str(streamed.value) and "not a chat completion" in str(
        plain.value)


async def test_stream_bad_json_after_text_is_not_replayed(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    server.enqueue(raw_stream_reply([chunk({"content": "partial"}), "data: {oops\n\n"]))
    with pytest.raises(ModelHTTPError, match="not retried"):
        await stream(model)
    assert len(server.requests) == 1


async def test_stream_dropped_connection_mid_text(server: FakeOpenAIServer,
                                                  model: OpenAIChatModel) -> None:
    server.enqueue(raw_stream_reply(
        [chunk({"content": "a"}), chunk({"content": "b"}), chunk({"content": "c"})],
        drop_after=2,
    ))
    with pytest.raises(ModelConnectionError):
        await stream(model)


@pytest.mark.parametrize(
    "tool_calls", [[7], ["call"], [{"id": "c1", "function": "f"}], {"id": "c1"}],
    ids=["number", "string", "function-string", "object-not-list"],
)
async def test_malformed_tool_calls_are_a_model_error_not_a_crash(
    server: FakeOpenAIServer, model: OpenAIChatModel, tool_calls: Any
) -> None:
    server.enqueue(*[raw_reply(completion({"content": None, "tool_calls": tool_calls},
                                          "tool_calls"))] * 2)
    with pytest.raises(ModelHTTPError, match="not a chat completion"):
        await model.request(REQUEST)
    assert len(server.requests) == 2  # retried once, as a malformed answer is


async def test_malformed_streamed_tool_call_delta_is_a_model_error(
    server: FakeOpenAIServer, model: OpenAIChatModel
) -> None:
    bad = raw_stream_reply([chunk({"tool_calls": [{"index": 0, "function": "f"}]})])
    server.enqueue(bad, bad)
    with pytest.raises(ModelHTTPError, match="not a chat completion"):
        await stream(model)
