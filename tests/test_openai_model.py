"""OpenAIChatModel end to end: the real ``openai`` client over HTTP against FakeOpenAIServer.

Settings mapping, error mapping, retries (with fake time: no real sleeping), streaming,
usage accounting, the missing-key message and the canary-key secrecy test.
"""

from __future__ import annotations

import email.utils
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import anyio
import openai
import pytest
from fake_time import FakeTime

from agentkit.errors import (
    AuthenticationError,
    ContextLengthExceeded,
    MissingAPIKey,
    ModelConnectionError,
    ModelHTTPError,
    ModelNotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
)
from agentkit.messages import Message, ToolCall
from agentkit.models.base import ModelRequest, ModelResponse, TextDelta, ToolDefinition
from agentkit.models.openai import OpenAIChatModel, hash_user_id
from agentkit.retry import RetryPolicy
from agentkit.settings import ModelSettings
from agentkit.testing.fake_openai import (
    FakeOpenAIServer,
    FakeToolCall,
    Reply,
    disconnect_reply,
    error_reply,
    malformed_reply,
    rate_limit_reply,
    text_reply,
    tool_call_reply,
)

pytestmark = pytest.mark.anyio

WEATHER = ToolDefinition(
    "get_weather",
    "Get the weather.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)




@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_model(server: FakeOpenAIServer, fake_time: FakeTime, **kwargs: Any) -> OpenAIChatModel:
    retry = kwargs.pop("retry", None) or RetryPolicy(
        sleep=fake_time.sleep, clock=fake_time.clock, rng=lambda: 0.5
    )
    return OpenAIChatModel(
        "gpt-4o-mini", base_url=server.base_url, api_key=server.api_key, retry=retry, **kwargs
    )


def ask(text: str = "hi", **kwargs: Any) -> ModelRequest:
    return ModelRequest([Message.system("Be brief."), Message.user(text)], **kwargs)


async def collect(model: OpenAIChatModel, request: ModelRequest) -> tuple[list[str], ModelResponse]:
    deltas: list[str] = []
    final: list[ModelResponse] = []
    async for item in model.stream(request):
        if isinstance(item, TextDelta):
            assert not final, "a delta after the final response"
            deltas.append(item.text)
        else:
            final.append(item)
    assert len(final) == 1
    return deltas, final[0]


# --- basic requests ------------------------------------------------------------------


async def test_text_request(server: FakeOpenAIServer, fake_time: FakeTime) -> None:
    server.enqueue(text_reply("Hello!", usage={"prompt_tokens": 12, "completion_tokens": 3}))
    response = await make_model(server, fake_time).request(ask())
    assert response.message == Message.assistant("Hello!")
    assert response.finish_reason == "stop"
    assert (response.usage.requests, response.usage.input_tokens) == (1, 12)
    assert (response.usage.output_tokens, response.usage.total_tokens) == (3, 15)
    assert response.model_name == "gpt-4o-mini"
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {server.api_key}"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert "stream" not in sent.body


async def test_tool_calls_and_history_round_trip(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(
        tool_call_reply(FakeToolCall("get_weather", {"city": "Paris"}, id="call_1")),
        text_reply("Sunny."),
    )
    model = make_model(server, fake_time)
    first = await model.request(ask("Weather?", tools=[WEATHER]))
    assert first.finish_reason == "tool_calls"
    assert first.message.tool_calls == (ToolCall("call_1", "get_weather", '{"city":"Paris"}'),)
    history = [*ask("Weather?").messages, first.message, Message.tool("call_1", "18C sunny")]
    second = await model.request(ModelRequest(history, tools=[WEATHER]))
    assert second.message.text == "Sunny."
    sent = server.requests[1].body
    assert sent["tools"] == [WEATHER.to_openai()]
    assert sent["messages"][2]["tool_calls"][0]["id"] == "call_1"
    assert sent["messages"][3] == {"role": "tool", "content": "18C sunny", "tool_call_id": "call_1"}


async def test_every_setting_reaches_the_request(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue("ok")
    settings = ModelSettings(
        temperature=0.2,
        top_p=0.9,
        max_tokens=77,
        stop=["END"],
        presence_penalty=0.1,
        frequency_penalty=0.3,
        logit_bias={"50256": -100},
        seed=42,
        tool_choice="get_weather",
        parallel_tool_calls=False,
        user=hash_user_id("alice@example.com"),
        extra_body={"top_k": 5, "metadata": {"run": "1"}},
        extra_headers={"X-Trace": "abc"},
        timeout=30,
    )
    schema = {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}}
    model = make_model(server, fake_time)
    await model.request(ask(tools=[WEATHER], settings=settings, response_format=schema))
    body = server.requests[0].body
    expected = {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 77,  # not OpenAI proper: the classic field
        "stop": ["END"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.3,
        "logit_bias": {"50256": -100},
        "seed": 42,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "user": hash_user_id("alice@example.com"),
        "top_k": 5,
        "metadata": {"run": "1"},
        "response_format": schema,
        "tools": [WEATHER.to_openai()],
    }
    assert {k: body.get(k) for k in expected} == expected
    assert server.requests[0].headers["x-trace"] == "abc"


async def test_openai_proper_uses_max_completion_tokens_and_safety_identifier(
    server: FakeOpenAIServer, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    official = OpenAIChatModel("gpt-4o-mini", api_key="sk-test")
    assert (official.max_tokens_field, official.user_field) == (
        "max_completion_tokens", "safety_identifier"
    )
    azure_like = OpenAIChatModel("gpt-4o-mini", api_key="k", base_url="https://x.example/v1")
    assert (azure_like.max_tokens_field, azure_like.user_field) == ("max_tokens", "user")
    # The choice is configurable, e.g. for a proxy in front of OpenAI.
    server.enqueue("ok")
    model = make_model(
        server, fake_time, max_tokens_field="max_completion_tokens", user_field="safety_identifier"
    )
    await model.request(ask(settings=ModelSettings(max_tokens=9, user="u1")))
    body = server.requests[0].body
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body
    assert body["safety_identifier"] == "u1" and "user" not in body


async def test_tool_choice_keywords_and_no_parallel_flag_without_tools(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue("a", "b")
    model = make_model(server, fake_time)
    await model.request(ask(tools=[WEATHER], settings=ModelSettings(tool_choice="required")))
    await model.request(ask(settings=ModelSettings(parallel_tool_calls=True)))
    assert server.requests[0].body["tool_choice"] == "required"
    assert "parallel_tool_calls" not in server.requests[1].body
    assert "tools" not in server.requests[1].body


async def test_default_query_reaches_the_url_for_azure(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue("ok")
    model = make_model(server, fake_time, default_query={"api-version": "2024-10-21"},
                       default_headers={"api-key": "azure-key"})
    await model.request(ask())
    assert server.requests[0].path.endswith("?api-version=2024-10-21")
    assert server.requests[0].headers["api-key"] == "azure-key"


def test_hash_user_id_is_stable_and_anonymous() -> None:
    digest = hash_user_id("Alice@Example.com ")
    assert digest == hash_user_id("alice@example.com")
    assert len(digest) == 64 and "alice" not in digest
    assert hash_user_id("alice@example.com", salt="s1") != digest
    assert hash_user_id("alice@example.com", salt="s1") == hash_user_id("ALICE@example.com", "s1")


# --- keys and construction -----------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_missing_key_says_how_to_fix(
    monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    # Constructing needs no key (a cassette may replay it); the first real request does.
    model = OpenAIChatModel("gpt-4o-mini")
    with pytest.raises(MissingAPIKey) as info:
        if streamed:
            await collect(model, ask())
        else:
            await model.request(ask())
    text = str(info.value)
    assert "export OPENAI_API_KEY=" in text
    assert "api_key=" in text
    assert 'Agent(model="local")' in text


async def test_local_server_needs_no_key(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    server.enqueue("ok")
    model = OpenAIChatModel("llama3")
    assert (await model.request(ask())).message.text == "ok"
    assert server.requests[0].headers["authorization"] == "Bearer agentkit-no-key"


async def test_env_vars_are_read(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-123456")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-1")
    server.enqueue("ok")
    await OpenAIChatModel("gpt-4o-mini").request(ask())
    headers = server.requests[0].headers
    assert headers["authorization"] == "Bearer sk-env-key-123456"
    assert headers["openai-organization"] == "org-1"
    assert headers["openai-project"] == "proj-1"


async def test_given_client_is_used_without_its_own_retries(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-x", max_retries=5)
    model = OpenAIChatModel(
        "gpt-4o-mini",
        client=client,
        retry=RetryPolicy(max_attempts=2, sleep=fake_time.sleep, clock=fake_time.clock),
    )
    server.enqueue(error_reply(503), error_reply(503), error_reply(503))
    with pytest.raises(ModelHTTPError) as info:
        await model.request(ask())
    await client.close()
    # Two attempts by agentkit, none by the client: no double retries.
    assert len(server.requests) == 2
    assert info.value.attempts == 2


def test_import_agentkit_does_not_import_openai() -> None:
    code = "import sys, agentkit, agentkit.models; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


# --- errors and retries --------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error", "fragment"),
    [
        (error_reply(400, "Invalid value for 'temperature'."), ModelHTTPError, "HTTP 400"),
        (error_reply(401), AuthenticationError, "OPENAI_API_KEY"),
        (error_reply(403, "Not allowed in your region."), PermissionDenied, "region"),
        (error_reply(404, "The model `nope` does not exist."), ModelNotFound, "model name"),
        (error_reply(422, "Unprocessable."), ModelHTTPError, "HTTP 422"),
        (
            error_reply(400, "This model's maximum context length is 128000 tokens.",
                        code="context_length_exceeded"),
            ContextLengthExceeded,
            "too long",
        ),
        (
            rate_limit_reply(1, code="insufficient_quota", type="insufficient_quota",
                             message="You exceeded your current quota."),
            QuotaExceeded,
            "Retrying cannot help",
        ),
    ],
)
async def test_final_errors_are_not_retried(
    server: FakeOpenAIServer,
    fake_time: FakeTime,
    reply: Reply,
    error: type[ModelHTTPError],
    fragment: str,
) -> None:
    server.enqueue(reply, "never sent")
    with pytest.raises(error) as info:
        await make_model(server, fake_time).request(ask())
    assert type(info.value) is error
    assert fragment in str(info.value)
    assert info.value.status == reply.status
    assert len(server.requests) == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried(
    server: FakeOpenAIServer, fake_time: FakeTime, status: int
) -> None:
    server.enqueue(error_reply(status), "recovered")
    response = await make_model(server, fake_time).request(ask())
    assert response.message.text == "recovered"
    assert len(server.requests) == 2
    assert fake_time.sleeps == [0.25]  # initial_wait 0.5 * jitter 0.5
    assert response.usage.requests == 2  # the failed attempt counts too


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "HTTPDATE"}, 20.0),
    ],
)
async def test_retry_after_is_honoured(
    server: FakeOpenAIServer, fake_time: FakeTime, headers: dict[str, str], wait: float
) -> None:
    if headers.get("retry-after") == "HTTPDATE":
        headers = {"retry-after": email.utils.formatdate(time.time() + 20, usegmt=True)}
    server.enqueue(error_reply(429, headers=headers), "ok")
    await make_model(server, fake_time).request(ask())
    # An HTTP date has whole seconds, and a loaded machine takes a while to get here.
    assert fake_time.sleeps == [pytest.approx(wait, abs=3 if wait == 20.0 else 0.01)]
    assert len(server.requests) == 2


async def test_exhausted_retries_name_status_message_and_attempts(
    server: FakeOpenAIServer, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentkit")
    server.enqueue(*[error_reply(503, "Engine overloaded, try later.")] * 4)
    with pytest.raises(ModelHTTPError) as info:
        await make_model(server, fake_time).request(ask())
    err = info.value
    assert (err.status, err.attempts) == (503, 4)
    assert "HTTP 503" in str(err) and "Engine overloaded" in str(err) and "4 attempt" in str(err)
    assert err.body["message"] == "Engine overloaded, try later."
    assert len(server.requests) == 4
    assert fake_time.sleeps == [0.25, 0.5, 1.0]  # exponential, jitter fixed at 0.5
    warnings = [r for r in caplog.records if r.name == "agentkit" and r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("HTTP 503" in r.getMessage() and "retrying in" in r.getMessage() for r in warnings)


async def test_rate_limited_after_retries_carries_retry_after(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(*[rate_limit_reply(2)] * 4)
    with pytest.raises(RateLimited) as info:
        await make_model(server, fake_time).request(ask())
    assert info.value.retry_after == 2.0 and info.value.attempts == 4
    assert fake_time.sleeps == [2.0, 2.0, 2.0]


async def test_connection_errors_and_timeouts_are_retried(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(disconnect_reply(), text_reply("late", delay=1.0), "ok")
    model = make_model(server, fake_time)
    response = await model.request(ask(settings=ModelSettings(timeout=0.2)))
    assert response.message.text == "ok"
    assert len(server.requests) == 3
    assert response.usage.requests == 1  # the server never answered the failed attempts


async def test_connection_error_after_all_attempts(fake_time: FakeTime) -> None:
    with FakeOpenAIServer() as srv:
        base_url = srv.base_url
    model = OpenAIChatModel(
        "gpt-4o-mini", base_url=base_url, api_key="k",
        retry=RetryPolicy(max_attempts=3, sleep=fake_time.sleep, clock=fake_time.clock),
    )
    with pytest.raises(ModelConnectionError) as info:
        await model.request(ask())
    assert info.value.attempts == 3 and "3 attempt" in str(info.value)
    assert base_url in str(info.value)


async def test_error_messages_end_each_sentence_once_and_count_in_words(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(error_reply(400, "Invalid value for 'temperature'."))
    with pytest.raises(ModelHTTPError) as rejected:
        await make_model(server, fake_time).request(ask())
    with FakeOpenAIServer() as srv:
        stopped = srv.base_url
    one_attempt = RetryPolicy(max_attempts=1, sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(ModelConnectionError) as refused:
        await OpenAIChatModel("m", base_url=stopped, api_key="k", retry=one_attempt).request(ask())
    for error in (rejected.value, refused.value):
        text = str(error)
        assert ".." not in text and ". ." not in text, text
        assert "(s)" not in text, text
    assert "after 1 attempt:" in str(refused.value)
    assert "Invalid value for 'temperature'. " in str(rejected.value)


async def test_malformed_body_is_retried_then_reported(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(*[malformed_reply()] * 2)
    model = make_model(server, fake_time, retry=RetryPolicy(
        max_attempts=2, sleep=fake_time.sleep, clock=fake_time.clock))
    with pytest.raises(ModelHTTPError) as info:
        await model.request(ask())
    assert "not a chat completion" in str(info.value) and info.value.attempts == 2


async def test_deadline_bounds_total_retry_time(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(*[rate_limit_reply(30)] * 5)
    model = make_model(server, fake_time, retry=RetryPolicy(
        max_attempts=10, deadline=45, sleep=fake_time.sleep, clock=fake_time.clock))
    with pytest.raises(RateLimited, match="45s deadline"):
        await model.request(ask())
    assert fake_time.sleeps == [30.0]
    assert len(server.requests) == 2


# --- streaming -----------------------------------------------------------------------


async def test_stream_text_with_usage(server: FakeOpenAIServer, fake_time: FakeTime) -> None:
    server.enqueue(text_reply(["Hel", "lo", " world"], usage={"prompt_tokens": 5,
                                                                "completion_tokens": 3}))
    deltas, final = await collect(make_model(server, fake_time), ask())
    assert deltas == ["Hel", "lo", " world"]
    assert final.message == Message.assistant("Hello world")
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.requests) == (5, 3, 1)
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_stream_deltas_arrive_as_they_are_sent(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(text_reply(["a", "b", "c", "d"], chunk_delay=0.15))
    model = make_model(server, fake_time)
    start = time.perf_counter()
    seen: list[float] = []
    async for item in model.stream(ask()):
        if isinstance(item, TextDelta):
            seen.append(time.perf_counter() - start)
    assert len(seen) == 4
    assert seen[0] < seen[-1] - 0.3  # the first delta did not wait for the whole stream


async def test_stream_tool_calls(server: FakeOpenAIServer, fake_time: FakeTime) -> None:
    server.enqueue(tool_call_reply(
        FakeToolCall("get_weather", {"city": "Paris"}, id="c1"),
        FakeToolCall("get_weather", {"city": "Rome"}, id="c2"),
    ))
    deltas, final = await collect(make_model(server, fake_time), ask(tools=[WEATHER]))
    assert deltas == []
    assert final.finish_reason == "tool_calls"
    assert final.message.tool_calls == (
        ToolCall("c1", "get_weather", '{"city":"Paris"}'),
        ToolCall("c2", "get_weather", '{"city":"Rome"}'),
    )


async def test_stream_error_at_open_is_retried(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(error_reply(502), rate_limit_reply(1), text_reply(["o", "k"]))
    deltas, final = await collect(make_model(server, fake_time), ask())
    assert deltas == ["o", "k"] and final.usage.requests == 3
    assert fake_time.sleeps == [0.25, 1.0]


async def test_stream_cut_before_any_text_is_retried(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    # The tool-call stream dies after two events: nothing reached the caller, so retry.
    server.enqueue(
        tool_call_reply(FakeToolCall("get_weather", {"city": "Paris"}, id="c1"), drop_after=2),
        tool_call_reply(FakeToolCall("get_weather", {"city": "Paris"}, id="c1")),
    )
    deltas, final = await collect(make_model(server, fake_time), ask(tools=[WEATHER]))
    assert deltas == []
    assert final.message.tool_calls == (ToolCall("c1", "get_weather", '{"city":"Paris"}'),)
    assert len(server.requests) == 2


async def test_stream_cut_after_text_is_never_replayed(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(text_reply(["one", " two", " three", " four"], drop_after=3), "replayed")
    model = make_model(server, fake_time)
    deltas: list[str] = []
    with pytest.raises(ModelConnectionError) as info:
        async for item in model.stream(ask()):
            if isinstance(item, TextDelta):
                deltas.append(item.text)
    assert deltas and "".join(deltas) != "one two three four"
    assert "not retried" in str(info.value)
    assert len(server.requests) == 1
    assert fake_time.sleeps == []


async def test_abandoned_stream_closes_cleanly(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.enqueue(text_reply(["x"] * 50, chunk_delay=0.01), "next")
    model = make_model(server, fake_time)
    stream = model.stream(ask())
    async for item in stream:
        assert isinstance(item, TextDelta)
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert (await model.request(ask())).message.text == "next"


# --- secrets -------------------------------------------------------------------------


async def test_canary_key_never_leaks(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "sk-canary-7f3a9c1e5b2d4f6a8c0e"
    caplog.set_level(logging.DEBUG)  # every logger, openai's and httpx's included
    errors: list[BaseException] = []
    with FakeOpenAIServer(api_key=canary, require_api_key=True) as srv:
        model = OpenAIChatModel(
            "gpt-4o-mini", base_url=srv.base_url, api_key=canary,
            retry=RetryPolicy(max_attempts=2, sleep=fake_time.sleep, clock=fake_time.clock),
        )
        # A server that echoes the key in its error messages (some proxies do).
        srv.enqueue(
            error_reply(503, f"upstream said: bad key {canary}"),
            error_reply(503, f"again {canary}"),
            error_reply(400, f"Incorrect API key provided: {canary}."),
            rate_limit_reply(1, message=f"slow down {canary}"),
            error_reply(500, f"boom {canary}"),
            "fine",
        )
        for _ in range(2):
            try:
                await model.request(ask())
            except Exception as exc:
                errors.append(exc)
        with pytest.raises(ModelHTTPError) as streamed:
            await collect(model, ask())
        errors.append(streamed.value)
        await model.request(ask())
        bad = OpenAIChatModel("gpt-4o-mini", base_url=srv.base_url, api_key="sk-wrong-key-000000",
                              retry=RetryPolicy(max_attempts=1))
        with pytest.raises(AuthenticationError) as auth:
            await bad.request(ask())
        errors.append(auth.value)
        recorded = list(srv.requests)
    assert len(errors) == 4
    texts = [caplog.text, repr(model), str(model.__dict__.get("retry")), repr(model.rate_limit)]
    for exc in errors:
        texts += [str(exc), repr(exc), repr(getattr(exc, "body", None)), repr(exc.args)]
        # The whole printed traceback, chained exceptions included.
        texts.append("".join(traceback.format_exception(exc)))
        assert exc.__cause__ is None and exc.__context__ is None
    for request in recorded:
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        texts += [repr(headers), request.raw.decode()]
    assert caplog.records, "debug logging produced nothing to check"
    for text in texts:
        assert canary not in text
        assert "canary-7f3a9c" not in text
    assert any("***" in str(exc) for exc in errors)


# --- concurrency ---------------------------------------------------------------------


async def test_fifty_concurrent_requests_share_one_model(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    server.handler = lambda body: text_reply(body["messages"][-1]["content"].upper())
    model = make_model(server, fake_time)
    answers: dict[int, str] = {}

    async def one(i: int) -> None:
        answers[i] = (await model.request(ask(f"run {i}"))).message.text

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)
    assert answers == {i: f"RUN {i}" for i in range(50)}


# --- a whole agent run over HTTP -----------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_using_agent_run_end_to_end(
    server: FakeOpenAIServer, fake_time: FakeTime, streamed: bool
) -> None:
    from agentkit import Agent, tool
    from agentkit.run import RunFinished, ToolResultReceived

    @tool
    def get_weather(city: str) -> str:
        """Get the weather for a city.

        Args:
            city: City name.
        """
        return f"{city}: 18C, sunny"

    server.enqueue(
        error_reply(503),  # one transient failure, retried inside the model
        tool_call_reply(
            FakeToolCall("get_weather", {"city": "Paris"}, id="c1"),
            FakeToolCall("get_weather", {"city": "Rome"}, id="c2"),
        ),
        text_reply(["Paris and Rome", " are sunny."]),
    )
    agent = Agent(
        instructions="You are a weather bot.",
        model=make_model(server, fake_time),
        tools=[get_weather],
        settings=ModelSettings(temperature=0),
    )
    if streamed:
        deltas: list[str] = []
        tool_results = []
        finished = []
        async for event in agent.stream("Weather in Paris and Rome?"):
            if isinstance(event, TextDelta):
                deltas.append(event.text)
            elif isinstance(event, ToolResultReceived):
                tool_results.append(event.result.content)
            elif isinstance(event, RunFinished):
                finished.append(event.result)
        assert deltas == ["Paris and Rome", " are sunny."]
        assert tool_results == ["Paris: 18C, sunny", "Rome: 18C, sunny"]
        result = finished[0]
    else:
        result = await agent.run("Weather in Paris and Rome?")
    assert result.output == "Paris and Rome are sunny."
    assert result.usage.requests == 3  # the failed attempt included
    assert len(server.requests) == 3
    final_body = server.requests[2].body
    assert final_body["temperature"] == 0
    assert [m["role"] for m in final_body["messages"]] == [
        "system", "user", "assistant", "tool", "tool"
    ]
    assert [m.get("tool_call_id") for m in final_body["messages"][3:]] == ["c1", "c2"]
    assert final_body["messages"][3]["content"] == "Paris: 18C, sunny"
    assert ("stream" in final_body) is streamed


def test_run_sync_twice_reuses_the_model_across_event_loops(server: FakeOpenAIServer) -> None:
    from agentkit import Agent

    server.enqueue("one", "two")
    model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k")
    agent = Agent(model=model)
    assert agent.run_sync("a").output == "one"
    assert agent.run_sync("b").output == "two"


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_a_failed_run_counts_every_answered_attempt_in_usage(
    server: FakeOpenAIServer, fake_time: FakeTime, streamed: bool
) -> None:
    from agentkit import Agent

    server.enqueue(*[error_reply(503, "overloaded") for _ in range(3)])
    model = make_model(
        server, fake_time,
        retry=RetryPolicy(max_attempts=3, sleep=fake_time.sleep, clock=fake_time.clock),
    )
    agent = Agent(model=model)
    with pytest.raises(ModelHTTPError) as info:
        if streamed:
            async for _ in agent.stream("hi"):
                pass
        else:
            await agent.run("hi")
    assert info.value.attempts == 3
    assert info.value.usage is not None and info.value.usage.requests == 3
    assert len(server.requests) == 3


async def test_a_rejected_request_counts_once(
    server: FakeOpenAIServer, fake_time: FakeTime
) -> None:
    from agentkit import Agent

    server.enqueue(error_reply(400, "bad request"))
    with pytest.raises(ModelHTTPError) as info:
        await Agent(model=make_model(server, fake_time)).run("hi")
    assert info.value.status == 400
    assert info.value.usage is not None and info.value.usage.requests == 1


def test_credentials_in_base_url_stay_out_of_repr_and_errors() -> None:
    model = OpenAIChatModel("m", base_url="http://bob:hunter2@127.0.0.1:9/v1", api_key="k",
                            retry=RetryPolicy(max_attempts=1))
    assert repr(model) == "OpenAIChatModel(name='m', base_url='http://127.0.0.1:9/v1')"
    with pytest.raises(ModelConnectionError) as info:
        anyio.run(model.request, ask())
    assert "hunter2" not in str(info.value) and "bob" not in str(info.value)
