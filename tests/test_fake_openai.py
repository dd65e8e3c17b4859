"""FakeOpenAIServer: real HTTP on 127.0.0.1, driven by the real `openai` client and raw sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import openai
import pytest

from agentkit.testing.fake_openai import (
    FakeOpenAIServer,
    FakeToolCall,
    RecordedRequest,
    disconnect_reply,
    error_reply,
    malformed_reply,
    parallel_tools_handler,
    rate_limit_reply,
    raw_reply,
    raw_stream_reply,
    text_reply,
    tool_call_reply,
)

T = TypeVar("T")
USER = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


def run(fn: Callable[[openai.AsyncOpenAI], Awaitable[T]], server: FakeOpenAIServer) -> T:
    """Run ``fn(client)`` with a real AsyncOpenAI client (no retries) pointed at ``server``."""

    async def main() -> T:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=10
        ) as client:
            return await fn(client)

    return asyncio.run(main())


def chat(server: FakeOpenAIServer, **kwargs: Any) -> Any:
    return run(
        lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=USER, **kwargs), server
    )


def stream_chunks(server: FakeOpenAIServer, **kwargs: Any) -> list[Any]:
    async def collect(client: openai.AsyncOpenAI) -> list[Any]:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, **kwargs
        )
        return [chunk async for chunk in stream]

    return run(collect, server)


def http(
    server: FakeOpenAIServer, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 request on a fresh connection; reads until the server closes."""
    head = f"{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
    head += "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    head += f"content-length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    raw_head, _, payload = data.partition(b"\r\n\r\n")
    lines = raw_head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    response_headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return status, response_headers, payload


def dechunk(payload: bytes) -> bytes:
    out, pos = b"", 0
    while True:
        eol = payload.index(b"\r\n", pos)
        size = int(payload[pos:eol], 16)
        if size == 0:
            return out
        out += payload[eol + 2 : eol + 2 + size]
        pos = eol + 4 + size


def post_chat(server: FakeOpenAIServer, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return http(server, "POST", "/v1/chat/completions", json.dumps(body).encode())


# --------------------------------------------------------------------------- lifecycle


def test_context_manager_binds_loopback_and_stops_cleanly() -> None:
    before = {t.ident for t in threading.enumerate()}
    with FakeOpenAIServer(["hi"]) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.port > 0
        assert server.api_key.startswith("sk-")
        assert "pending=1" in repr(server)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
    leftover = [t for t in threading.enumerate() if t.ident not in before]
    assert leftover == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass
    server.stop()  # idempotent


def test_start_stop_methods_and_two_servers_side_by_side() -> None:
    a, b = FakeOpenAIServer(["from a"]), FakeOpenAIServer(["from b"])
    a.start()
    b.start()
    try:
        assert a.port != b.port
        assert chat(b).choices[0].message.content == "from b"
        assert chat(a).choices[0].message.content == "from a"
    finally:
        a.stop()
        b.stop()
    assert "stopped" in repr(a)


def test_stop_while_a_delayed_reply_is_pending_is_prompt() -> None:
    server = FakeOpenAIServer([text_reply("late", delay=30)]).start()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            chat(server)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], openai.APIConnectionError)


# ------------------------------------------------------------ openai client, non-streamed


def test_text_reply_through_openai_client(server: FakeOpenAIServer) -> None:
    server.enqueue(text_reply("Sunny in Paris.", usage={"prompt_tokens": 12}))
    completion = chat(server, temperature=0)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    assert completion.created > 1_600_000_000
    choice = completion.choices[0]
    assert (choice.index, choice.finish_reason, choice.logprobs) == (0, "stop", None)
    assert choice.message.role == "assistant"
    assert choice.message.content == "Sunny in Paris."
    assert choice.message.tool_calls is None and choice.message.refusal is None
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 12
    assert completion.usage.completion_tokens == 3  # three words
    assert completion.usage.total_tokens == 15

    [recorded] = server.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.body == {"model": "gpt-4o-mini", "messages": USER, "temperature": 0}
    assert json.loads(recorded.raw) == recorded.body
    assert recorded.headers["authorization"] == f"Bearer {server.api_key}"
    assert recorded.headers["content-type"] == "application/json"
    assert all(name == name.lower() for name in recorded.headers)


def test_default_usage_estimates_grow_with_request_and_answer(server: FakeOpenAIServer) -> None:
    server.enqueue("one two", "one two three four five six")
    short = chat(server).usage
    long = run(
        lambda c: c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 400}]
        ),
        server,
    ).usage
    assert short.completion_tokens == 2 and long.completion_tokens == 6
    assert long.prompt_tokens > short.prompt_tokens + 90
    assert long.total_tokens == long.prompt_tokens + long.completion_tokens


def test_tool_call_reply_with_parallel_calls_and_content(server: FakeOpenAIServer) -> None:
    server.enqueue(
        tool_call_reply(
            ("get_weather", {"city": "Paris"}),
            FakeToolCall("get_time", '{"tz": "CET"}', id="call_fixed"),
            ("noop", "", "call_empty"),
            content="Checking.",
        )
    )
    completion = chat(server)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    calls = choice.message.tool_calls
    assert calls is not None
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_time", '{"tz": "CET"}'),
        ("noop", ""),
    ]
    assert calls[0].id.startswith("call_") and calls[0].type == "function"
    assert [c.id for c in calls[1:]] == ["call_fixed", "call_empty"]


def test_generated_call_ids_are_unique_across_requests(server: FakeOpenAIServer) -> None:
    server.handler = parallel_tools_handler()
    ids = [c.id for _ in range(3) for c in chat(server).choices[0].message.tool_calls]
    assert len(ids) == len(set(ids)) == 6


def test_content_filter_with_null_content_and_refusal(server: FakeOpenAIServer) -> None:
    server.enqueue(
        text_reply(None, finish_reason="content_filter"),
        text_reply(None, refusal="I can't help with that."),
    )
    filtered = chat(server).choices[0]
    assert (filtered.finish_reason, filtered.message.content) == ("content_filter", None)
    refused = chat(server).choices[0].message
    assert (refused.content, refused.refusal) == (None, "I can't help with that.")


def test_reply_model_override_and_headers(server: FakeOpenAIServer) -> None:
    server.enqueue(
        text_reply("hi", model="gpt-4o-2024-08-06", headers={"X-Ratelimit-Remaining-Requests": "7"})
    )

    async def go(client: openai.AsyncOpenAI) -> Any:
        return await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=USER
        )

    raw = run(go, server)
    assert raw.headers["x-ratelimit-remaining-requests"] == "7"
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().model == "gpt-4o-2024-08-06"


def test_server_wide_headers_and_reply_headers_both_sent() -> None:
    with FakeOpenAIServer(
        [text_reply("a").with_options(headers={"x-request-id": "req_custom"})],
        headers={"x-ratelimit-limit-requests": "500"},
    ) as server:
        status, headers, _ = post_chat(server, {"model": "m", "messages": USER})
    assert status == 200
    assert headers["x-ratelimit-limit-requests"] == "500"
    assert headers["x-request-id"] == "req_custom"


# --------------------------------------------------------------------------- streaming


def test_streamed_text_arrives_in_several_deltas_with_usage_chunk(server: FakeOpenAIServer) -> None:
    server.enqueue(text_reply("It is sunny in Paris today."))
    chunks = stream_chunks(server, stream_options={"include_usage": True})
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text == "It is sunny in Paris today."
    assert sum(1 for c in with_choices if c.choices[0].delta.content) == 6
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert [c.choices[0].finish_reason for c in with_choices[:-1]] == [None] * (
        len(with_choices) - 1
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(server: FakeOpenAIServer) -> None:
    server.enqueue(text_reply(["Hel", "lo", "!"]))
    chunks = stream_chunks(server)
    assert all(c.choices for c in chunks)
    assert [c.choices[0].delta.content for c in chunks] == ["", "Hel", "lo", "!", None]


def test_streamed_tool_calls_are_split_like_openai(server: FakeOpenAIServer) -> None:
    server.enqueue(
        tool_call_reply(
            ("get_weather", {"city": "Paris", "unit": "celsius"}),
            FakeToolCall("get_time", {"timezone": "Europe/Paris"}, id="call_t"),
        )
    )
    chunks = stream_chunks(server, stream_options={"include_usage": True})
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content is None
    assert first.tool_calls is not None and first.tool_calls[0].function.name == "get_weather"

    merged: dict[int, dict[str, Any]] = {}
    openings = 0
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = merged.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
            if delta.id is not None:
                openings += 1
                assert delta.type == "function" and delta.function.arguments == ""
                entry["id"], entry["name"] = delta.id, delta.function.name
            else:
                assert delta.function.name is None
            entry["arguments"] += delta.function.arguments or ""
    assert openings == 2
    assert merged[1]["id"] == "call_t"
    assert json.loads(merged[0]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert json.loads(merged[1]["arguments"]) == {"timezone": "Europe/Paris"}
    fragments = [
        c
        for c in chunks
        if c.choices
        and c.choices[0].delta.tool_calls
        and c.choices[0].delta.tool_calls[0].id is None
    ]
    assert len(fragments) >= 4  # arguments came in several pieces per call
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_stream_wire_format_is_sse_with_done(server: FakeOpenAIServer) -> None:
    server.enqueue(text_reply("a b", finish_reason="length"))
    body = {
        "model": "m",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, headers, payload = post_chat(server, body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    events = dechunk(payload).decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    parsed = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert parsed[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert parsed[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert parsed[-1]["choices"] == [] and parsed[-1]["usage"]["completion_tokens"] == 2
    assert all("usage" in p and p["usage"] is None for p in parsed[:-1])


def test_non_streamed_wire_body_has_openai_shape(server: FakeOpenAIServer) -> None:
    server.enqueue(tool_call_reply(("f", {"a": 1}, "call_1")))
    status, headers, payload = post_chat(server, {"model": "m", "messages": USER})
    assert (status, headers["content-type"]) == (200, "application/json")
    body = json.loads(payload)
    assert list(body)[:6] == ["id", "object", "created", "model", "choices", "usage"]
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "annotations": [],
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ]
    assert set(body["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_raw_stream_reply_sends_quirky_chunks_verbatim(server: FakeOpenAIServer) -> None:
    base = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    quirky = [
        {**base, "choices": []},
        ": keep-alive comment\n\n",
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{"}}]
                    },
                }
            ],
        },
        b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n',
    ]
    server.enqueue(raw_stream_reply(quirky))
    chunks = stream_chunks(server)
    assert [len(c.choices) for c in chunks] == [0, 1, 1]
    call = chunks[1].choices[0].delta.tool_calls[0]
    assert (call.index, call.id, call.function.name) == (None, "a", "f")
    assert chunks[2].choices[0].finish_reason == "tool_calls"


# --------------------------------------------------------------------------- script and handler


def test_queue_is_fifo_then_handler_then_clear_error(server: FakeOpenAIServer) -> None:
    seen: list[dict[str, Any]] = []

    def handler(body: dict[str, Any]) -> str:
        seen.append(body)
        return f"handled {len(seen)}"

    server.enqueue("first", text_reply("second"))
    assert server.pending == 2
    server.handler = handler
    answers = [chat(server).choices[0].message.content for _ in range(3)]
    assert answers == ["first", "second", "handled 1"]
    assert seen[0]["messages"] == USER and server.pending == 0


def test_script_exhausted_error_tells_test_author_what_to_do(server: FakeOpenAIServer) -> None:
    server.enqueue("only one")
    chat(server)
    with pytest.raises(openai.InternalServerError) as info:
        chat(server)
    message = str(info.value)
    assert "script ran out" in message and "1 scripted reply was used" in message
    assert "server.enqueue" in message and "handler" in message


def test_handler_failures_become_500_with_the_reason(server: FakeOpenAIServer) -> None:
    def broken(body: dict[str, Any]) -> Any:
        raise KeyError("tools")

    server.handler = broken
    with pytest.raises(openai.InternalServerError, match="handler raised KeyError"):
        chat(server)
    server.handler = lambda body: 42  # type: ignore[assignment,return-value]
    with pytest.raises(openai.InternalServerError, match="must return a Reply or a str, not int"):
        chat(server)


def test_parallel_tools_handler_runs_the_standard_workload(server: FakeOpenAIServer) -> None:
    server.handler = parallel_tools_handler(answer="All done.")

    async def workload(client: openai.AsyncOpenAI) -> list[str | None]:
        messages: list[Any] = list(USER)
        first = await client.chat.completions.create(model="m", messages=messages)
        calls = first.choices[0].message.tool_calls or []
        assert [c.function.name for c in calls] == ["get_weather", "get_time"]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages += [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in calls]
        stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return [first.choices[0].finish_reason, text]

    assert run(workload, server) == ["tool_calls", "All done."]
    assert [r.body["messages"][-1]["role"] for r in server.requests] == ["user", "tool"]


def test_clear_forgets_requests_and_script(server: FakeOpenAIServer) -> None:
    server.enqueue("a", "b")
    chat(server)
    server.clear()
    assert server.requests == [] and server.pending == 0


def test_recorded_request_repr_hides_credentials(server: FakeOpenAIServer) -> None:
    server.enqueue("hi")
    chat(server)
    [recorded] = server.requests
    assert isinstance(recorded, RecordedRequest)
    assert server.api_key in recorded.headers["authorization"]
    assert server.api_key not in repr(recorded)
    assert "<redacted>" in repr(recorded)


# --------------------------------------------------------------------------- errors and faults


def test_error_reply_maps_to_openai_exceptions_with_headers(server: FakeOpenAIServer) -> None:
    server.enqueue(
        rate_limit_reply(2, retry_after_ms=1500, headers={"x-ratelimit-reset-requests": "2s"}),
        error_reply(
            429,
            "You exceeded your current quota.",
            code="insufficient_quota",
            type="insufficient_quota",
        ),
        error_reply(401),
        error_reply(404, code="model_not_found"),
        error_reply(
            400,
            "This model's maximum context length is 128000 tokens.",
            code="context_length_exceeded",
            param="messages",
        ),
        error_reply(503),
    )
    with pytest.raises(openai.RateLimitError) as limited:
        chat(server)
    assert limited.value.response.headers["retry-after"] == "2"
    assert limited.value.response.headers["retry-after-ms"] == "1500"
    assert limited.value.response.headers["x-ratelimit-reset-requests"] == "2s"
    assert limited.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as quota:
        chat(server)
    assert (quota.value.code, quota.value.type) == ("insufficient_quota", "insufficient_quota")
    with pytest.raises(openai.AuthenticationError):
        chat(server)
    with pytest.raises(openai.NotFoundError):
        chat(server)
    with pytest.raises(openai.BadRequestError) as too_long:
        chat(server)
    assert too_long.value.body == {
        "message": "This model's maximum context length is 128000 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    with pytest.raises(openai.InternalServerError):
        chat(server, stream=True)  # errors are plain JSON even for streamed requests


def test_error_reply_custom_body_and_validation(server: FakeOpenAIServer) -> None:
    server.enqueue(error_reply(502, body={"detail": "upstream down"}))
    status, _, payload = post_chat(server, {"model": "m", "messages": USER})
    assert (status, json.loads(payload)) == (502, {"detail": "upstream down"})
    with pytest.raises(ValueError, match="4xx or 5xx"):
        error_reply(200)
    with pytest.raises(ValueError, match="at least one call"):
        tool_call_reply()
    with pytest.raises(ValueError, match="delay"):
        text_reply("x", delay=-1)
    with pytest.raises(ValueError, match="invalid response header"):
        text_reply("x", headers={"x-bad": "a\r\nb"})


def test_raw_and_malformed_bodies(server: FakeOpenAIServer) -> None:
    server.enqueue(
        raw_reply({"choices": [{"message": {"content": "odd"}}]}),
        raw_reply(b"plain bytes", status=202, content_type="text/plain"),
        malformed_reply(),
    )
    status, _, payload = post_chat(server, {"model": "m", "messages": USER})
    assert (status, json.loads(payload)) == (200, {"choices": [{"message": {"content": "odd"}}]})
    status, headers, payload = post_chat(server, {"model": "m", "messages": USER})
    assert (status, headers["content-type"], payload) == (202, "text/plain", b"plain bytes")
    with pytest.raises((openai.APIResponseValidationError, json.JSONDecodeError, ValueError)):
        chat(server)


def test_delay_holds_the_reply(server: FakeOpenAIServer) -> None:
    server.enqueue(text_reply("slow", delay=0.2), error_reply(500, delay=0.1))
    started = time.monotonic()
    assert chat(server).choices[0].message.content == "slow"
    assert time.monotonic() - started >= 0.2
    with pytest.raises(openai.InternalServerError):
        chat(server)
    assert time.monotonic() - started >= 0.3


def test_timeout_against_delay_gives_openai_timeout(server: FakeOpenAIServer) -> None:
    server.enqueue(text_reply("too late", delay=2))

    async def go(client: openai.AsyncOpenAI) -> Any:
        return await client.with_options(timeout=0.2).chat.completions.create(
            model="m", messages=USER
        )

    with pytest.raises(openai.APITimeoutError):
        run(go, server)


def test_disconnect_before_any_response(server: FakeOpenAIServer) -> None:
    server.enqueue(disconnect_reply(), disconnect_reply(delay=0.05), "after")
    with pytest.raises(openai.APIConnectionError):
        chat(server)
    with pytest.raises(openai.APIConnectionError):
        chat(server)
    assert chat(server).choices[0].message.content == "after"  # the server keeps serving
    assert len(server.requests) == 3


def test_stream_dropped_after_n_chunks(server: FakeOpenAIServer) -> None:
    server.enqueue(text_reply("one two three four five", drop_after=3))
    received: list[str] = []

    async def go(client: openai.AsyncOpenAI) -> None:
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIConnectionError):
        run(go, server)
    assert received == ["", "one", " two"]


def test_drop_after_on_non_streamed_reply_truncates_body(server: FakeOpenAIServer) -> None:
    server.enqueue(text_reply("cut off", drop_after=0))
    with pytest.raises(openai.APIConnectionError):
        chat(server)


def test_chunk_delay_spaces_stream_events(server: FakeOpenAIServer) -> None:
    server.enqueue(
        text_reply("a b c", chunk_delay=0.05),
        raw_stream_reply([{"x": 1}], chunk_delay=0.05, drop_after=1, done=True),
    )
    arrivals: list[float] = []

    async def go(client: openai.AsyncOpenAI) -> None:
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        async for _ in stream:
            arrivals.append(time.monotonic())

    run(go, server)
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 0.15
    status, _, payload = post_chat(server, {"model": "m", "messages": USER, "stream": True})
    assert status == 200 and b'data: {"x":1}' in payload and b"[DONE]" not in payload


# --------------------------------------------------------------------------- other endpoints


def test_models_endpoints(server: FakeOpenAIServer) -> None:
    listed = run(lambda c: c.models.list(), server)
    assert [m.id for m in listed.data] == ["gpt-4o-mini", "gpt-4o"]
    one = run(lambda c: c.models.retrieve("gpt-4o"), server)
    assert one.id == "gpt-4o" and one.object == "model"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        run(lambda c: c.models.retrieve("gpt-9"), server)


def test_unknown_path_and_bad_json_look_like_openai(server: FakeOpenAIServer) -> None:
    status, _, payload = http(server, "POST", "/v1/embeddingz", b"{}")
    assert status == 404
    assert json.loads(payload) == {
        "error": {
            "message": "Invalid URL (POST /v1/embeddingz)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    status, _, payload = http(server, "POST", "/v1/chat/completions", b"{not json")
    assert status == 400 and "parse the JSON body" in json.loads(payload)["error"]["message"]
    assert server.requests[-1].body is None and server.requests[-1].raw == b"{not json"
    assert server.pending == 0


def test_require_api_key() -> None:
    with FakeOpenAIServer(["ok", "ok"], require_api_key=True) as server:
        assert chat(server).choices[0].message.content == "ok"

        async def wrong(client: openai.AsyncOpenAI) -> Any:
            return await client.with_options(api_key="sk-wrong").chat.completions.create(
                model="m", messages=USER
            )

        with pytest.raises(openai.AuthenticationError) as info:
            run(wrong, server)
        assert "sk-wrong" not in str(info.value)
        assert server.pending == 1  # rejected requests do not consume the script


# --------------------------------------------------------------------------- raw HTTP behaviour


def test_keep_alive_pipelining_and_chunked_request_body(server: FakeOpenAIServer) -> None:
    server.enqueue("one", "two", "three")
    body = json.dumps({"model": "m", "messages": USER}).encode()
    plain = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    chunked = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    )
    closing = plain.replace(b"host: x\r\n", b"host: x\r\nconnection: close\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(plain + chunked)  # pipelined: both before any answer
        sock.sendall(closing[:30])
        time.sleep(0.05)
        sock.sendall(closing[30:])  # split across packets
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    contents = [
        json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])["choices"][0]["message"][
            "content"
        ]
        for part in data.split(b"HTTP/1.1 200 OK")[1:]
    ]
    assert contents == ["one", "two", "three"]
    assert data.count(b"connection: keep-alive") == 2 and data.count(b"connection: close") == 1
    assert [r.body for r in server.requests] == [json.loads(body)] * 3


def test_malformed_http_gets_400_and_close(server: FakeOpenAIServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 400 Bad Request")
        assert sock.recv(1024) == b""


def test_thousand_concurrent_connections(server: FakeOpenAIServer) -> None:
    server.handler = parallel_tools_handler()
    body = json.dumps({"model": "m", "messages": USER}).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )

    async def one(gate: asyncio.Event) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await gate.wait()  # all 1,000 connections are open before anyone asks
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        payload = await reader.readexactly(length)
        writer.close()
        await writer.wait_closed()
        return payload

    async def main() -> list[bytes]:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(one(gate)) for _ in range(1000)]
        await asyncio.sleep(0.2)
        gate.set()
        return await asyncio.gather(*tasks)

    payloads = asyncio.run(main())
    finishes = {json.loads(p)["choices"][0]["finish_reason"] for p in payloads}
    assert finishes == {"tool_calls"} and len(server.requests) == 1000


def test_concurrent_openai_clients_are_all_recorded(server: FakeOpenAIServer) -> None:
    server.handler = lambda body: text_reply(body["messages"][0]["content"], delay=0.01)

    async def many(client: openai.AsyncOpenAI) -> list[str | None]:
        async def ask(i: int) -> str | None:
            completion = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"n{i}"}]
            )
            return completion.choices[0].message.content

        return await asyncio.gather(*(ask(i) for i in range(100)))

    assert run(many, server) == [f"n{i}" for i in range(100)]
    assert sorted(r.body["messages"][0]["content"] for r in server.requests) == sorted(
        f"n{i}" for i in range(100)
    )


def test_docs_quirk_example_two_calls_at_index_zero(server: FakeOpenAIServer) -> None:
    base = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    opening = {
        "index": 0,
        "id": "a",
        "type": "function",
        "function": {"name": "f", "arguments": "{"},
    }
    server.enqueue(
        raw_stream_reply(
            [
                {**base, "choices": []},
                delta({"role": "assistant", "tool_calls": [opening]}),
                delta({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g"}}]}),
                delta({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
                delta({}, finish="tool_calls"),
            ]
        )
    )
    chunks = stream_chunks(server)
    calls = [
        c.choices[0].delta.tool_calls[0]
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert [(c.index, c.id) for c in calls] == [(0, "a"), (0, "b"), (0, None)]
    assert chunks[0].choices == [] and chunks[-1].choices[0].finish_reason == "tool_calls"
