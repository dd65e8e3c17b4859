"""The fault matrix, once for every client of an OpenAI-compatible API: the chat backend,
the Responses backend (each requested and streamed), the embedder and moderation.

They share one implementation of retries, rate limits, redaction and error mapping
(``agentkit.models._openai_client``); these tests hold each of them to it over real HTTP
against FakeOpenAIServer, with fake time (no real sleeping).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fake_time import FakeTime

from agentkit.embeddings import OpenAIEmbedder
from agentkit.errors import (
    AuthenticationError,
    ModelConnectionError,
    ModelHTTPError,
    QuotaExceeded,
    RateLimited,
)
from agentkit.messages import Message
from agentkit.models import OpenAIModeration
from agentkit.models.base import ModelRequest, ModelResponse, TextDelta
from agentkit.models.openai import OpenAIChatModel
from agentkit.models.responses import OpenAIResponsesModel
from agentkit.retry import RetryPolicy
from agentkit.testing import _fake_endpoints
from agentkit.testing.fake_openai import (
    FakeOpenAIServer,
    Reply,
    disconnect_reply,
    error_reply,
    malformed_reply,
    rate_limit_reply,
    raw_reply,
    raw_stream_reply,
    text_reply,
)

pytestmark = pytest.mark.anyio

REQUEST = ModelRequest([Message.user("hi")])


async def _collect(model: Any) -> ModelResponse:
    texts: list[str] = []
    async for item in model.stream(REQUEST):
        if isinstance(item, TextDelta):
            texts.append(item.text)
        else:
            assert "".join(texts) == (item.message.text or "")
            return item
    raise AssertionError("stream ended without a response")


@dataclass(frozen=True)
class Target:
    """One client under test: how to build it, call it, and script a good answer."""

    name: str
    build: Callable[..., Any]
    call: Callable[[Any], Awaitable[Any]]
    endpoint: str = "model"
    stream: bool = False
    body_kind: str = ""

    def ok(self) -> list[Reply]:
        # The embeddings and moderation endpoints answer by themselves once the script
        # is empty.
        return [text_reply("ok")] if self.endpoint == "model" else []

    def check_ok(self, result: Any) -> None:
        if self.endpoint == "model":
            assert result.message.text == "ok"
        elif self.endpoint == "embeddings":
            assert len(result) == 1 and len(result[0]) == 64
        else:
            assert len(result) == 1 and result[0].flagged is False

    def good_body(self) -> Any:
        if self.endpoint == "embeddings":
            return _fake_endpoints.embedding_body({"input": ["ok"], "model": "m"})[1]
        return _fake_endpoints.moderation_body({"input": ["ok"]}, 1)[1]

    def slow(self) -> Reply:
        if self.endpoint == "model":
            return text_reply("ok", delay=1.0)
        return raw_reply(self.good_body(), delay=1.0)

    def cut(self) -> Reply:
        """A response cut before anything reached the caller."""
        if self.endpoint != "model":
            return raw_reply(self.good_body(), drop_after=0)
        # Chat: the role chunk only. Responses: response.created and .in_progress only.
        events = 1 if self.name.startswith("chat") else 2
        return text_reply("never seen", drop_after=events)

    def malformed(self, text: str = "not json") -> Reply:
        if self.stream:
            return raw_stream_reply([f'data: {{"{text}\n\n'], done=False)
        return malformed_reply(f'{{"{text}'.encode())


def _chat(**kw: Any) -> OpenAIChatModel:
    return OpenAIChatModel("gpt-4o-mini", **kw)


def _responses(**kw: Any) -> OpenAIResponsesModel:
    return OpenAIResponsesModel("gpt-4o-mini", **kw)


TARGETS = [
    Target("chat", _chat, lambda m: m.request(REQUEST), body_kind="a chat completion"),
    Target("chat-stream", _chat, _collect, stream=True),
    Target("responses", _responses, lambda m: m.request(REQUEST),
           body_kind="a Responses API response"),
    Target("responses-stream", _responses, _collect, stream=True),
    Target("embedder", OpenAIEmbedder, lambda e: e.embed(["ok"]), "embeddings",
           body_kind="an embeddings list"),
    Target("moderation", OpenAIModeration, lambda m: m.moderate("ok"), "moderations",
           body_kind="a moderation result"),
]
STREAMS = [t for t in TARGETS if t.stream]


@pytest.fixture(params=TARGETS, ids=lambda t: t.name)
def target(request: pytest.FixtureRequest) -> Target:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server() -> Any:
    with FakeOpenAIServer() as srv:
        yield srv


def make(target: Target, server: FakeOpenAIServer, fake_time: FakeTime, **kw: Any) -> Any:
    retry = RetryPolicy(
        max_attempts=kw.pop("max_attempts", 4), sleep=fake_time.sleep, clock=fake_time.clock,
        rng=lambda: 0.5,
    )
    kw.setdefault("api_key", server.api_key)
    kw.setdefault("timeout", 10.0)
    return target.build(base_url=server.base_url, retry=retry, **kw)


def enqueue(server: FakeOpenAIServer, target: Target, *replies: Reply) -> None:
    server.enqueue(*replies, endpoint=target.endpoint)  # type: ignore[arg-type]


async def test_429_waits_as_retry_after_says_and_5xx_backs_off(
    target: Target, server: FakeOpenAIServer
) -> None:
    fake_time = FakeTime()
    enqueue(server, target, rate_limit_reply(3), error_reply(503), error_reply(500), *target.ok())
    target.check_ok(await target.call(make(target, server, fake_time)))
    assert fake_time.sleeps == [3.0, 0.5, 1.0]  # the hint, then exponential with jitter 0.5
    assert len(server.requests) == 4


async def test_429_every_time_is_rate_limited_with_the_hint(
    target: Target, server: FakeOpenAIServer
) -> None:
    fake_time = FakeTime()
    enqueue(server, target, *[rate_limit_reply(2)] * 3)
    with pytest.raises(RateLimited) as info:
        await target.call(make(target, server, fake_time, max_attempts=3))
    assert (info.value.retry_after, info.value.attempts) == (2.0, 3)
    assert type(make(target, server, fake_time)).__name__ in str(info.value)  # how to fix


async def test_5xx_until_the_last_attempt_names_status_and_attempts(
    target: Target, server: FakeOpenAIServer
) -> None:
    enqueue(server, target, *[error_reply(502, "Bad gateway today.")] * 3)
    with pytest.raises(ModelHTTPError) as info:
        await target.call(make(target, server, FakeTime(), max_attempts=3))
    assert (info.value.status, info.value.attempts) == (502, 3)
    assert "Bad gateway today." in str(info.value) and "3 attempts" in str(info.value)


async def test_a_cut_response_a_dropped_connection_and_a_timeout_are_retried(
    target: Target, server: FakeOpenAIServer
) -> None:
    enqueue(server, target, target.cut(), disconnect_reply(), target.slow(), *target.ok())
    target.check_ok(await target.call(make(target, server, FakeTime(), timeout=0.5)))
    assert len(server.requests) == 4


@pytest.mark.parametrize("target", STREAMS, ids=lambda t: t.name)
async def test_a_stream_cut_after_text_is_never_replayed(
    target: Target, server: FakeOpenAIServer
) -> None:
    # Chat: role, "one ", "two "...; Responses: created, in_progress, item, part, "one ".
    cut = 3 if target.name.startswith("chat") else 5
    enqueue(server, target, text_reply("one two three four", drop_after=cut), "never")
    model = make(target, server, FakeTime())
    seen: list[str] = []
    with pytest.raises(ModelConnectionError) as info:
        async for item in model.stream(REQUEST):
            if isinstance(item, TextDelta):
                seen.append(item.text)
    assert seen and "".join(seen).startswith("one")
    assert "not retried" in str(info.value)
    assert len(server.requests) == 1


async def test_quota_is_final(target: Target, server: FakeOpenAIServer) -> None:
    fake_time = FakeTime()
    quota = rate_limit_reply(code="insufficient_quota", type="insufficient_quota",
                             message="You exceeded your current quota.")
    enqueue(server, target, quota, *target.ok())
    with pytest.raises(QuotaExceeded) as info:
        await target.call(make(target, server, fake_time))
    assert "add credit" in str(info.value)
    assert len(server.requests) == 1 and fake_time.sleeps == []


async def test_a_rejected_key_is_final_and_not_shown(target: Target) -> None:
    with FakeOpenAIServer(api_key="sk-right-key-123456", require_api_key=True) as srv:
        client = make(target, srv, FakeTime(), api_key="sk-wrong-key-987654")
        with pytest.raises(AuthenticationError) as info:
            await target.call(client)
        assert len(srv.requests) == 1
    assert "HTTP 401" in str(info.value) and "api_key=" in str(info.value)
    assert "987654" not in str(info.value) + repr(info.value.body)


async def test_timeouts_until_the_last_attempt(target: Target, server: FakeOpenAIServer) -> None:
    enqueue(server, target, target.slow(), target.slow())
    with pytest.raises(ModelConnectionError) as info:
        await target.call(make(target, server, FakeTime(), max_attempts=2, timeout=0.25))
    assert "timed out after 2 attempts" in str(info.value)
    assert "0.25 seconds" in str(info.value)


async def test_a_malformed_body_is_retried_then_reported(
    target: Target, server: FakeOpenAIServer
) -> None:
    enqueue(server, target, target.malformed(), target.malformed())
    with pytest.raises(ModelHTTPError) as info:
        await target.call(make(target, server, FakeTime(), max_attempts=2))
    assert info.value.status == 200 and info.value.attempts == 2
    if target.body_kind:
        assert f"not {target.body_kind}" in str(info.value)


async def test_the_canary_key_is_never_shown(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "sk-canary-5e1d9b3a7c2f4e6a8b0d"
    caplog.set_level(logging.DEBUG)  # every logger, openai's and httpx's included
    errors: list[BaseException] = []
    with FakeOpenAIServer(api_key=canary, require_api_key=True) as srv:
        client = make(target, srv, FakeTime(), max_attempts=2)
        # A server that echoes the key in its error messages (some proxies do).
        enqueue(
            srv, target,
            error_reply(503, f"upstream said: bad key {canary}"),
            rate_limit_reply(1, message=f"slow down {canary}"),
            error_reply(400, f"Incorrect API key provided: {canary}."),
            target.malformed(f"key: {canary}"),
            target.malformed(f"key: {canary}"),
        )
        for _ in range(3):
            with pytest.raises(ModelHTTPError) as info:
                await target.call(client)
            errors.append(info.value)
        recorded = list(srv.requests)
    texts = [caplog.text, repr(client)]
    for exc in errors:
        texts += [str(exc), repr(exc), repr(getattr(exc, "body", None)), repr(exc.args)]
        texts.append("".join(traceback.format_exception(exc)))
        assert exc.__cause__ is None and exc.__context__ is None
    for request in recorded:
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        texts += [repr(headers), request.raw.decode()]
    for text in texts:
        assert "canary-5e1d9b" not in text
    assert any("***" in str(exc) for exc in errors)
