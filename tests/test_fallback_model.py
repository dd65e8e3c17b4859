"""FallbackModel with real backends over HTTP: which errors move on to the next model,
which do not, and how the answer says which model gave it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentkit import Agent
from agentkit.errors import ConfigurationError, ModelConnectionError, ModelHTTPError
from agentkit.messages import Message
from agentkit.models import FallbackModel, OpenAIChatModel, OpenAIResponsesModel
from agentkit.models.base import ModelRequest, TextDelta
from agentkit.retry import RetryPolicy
from agentkit.testing.fake_openai import (
    FakeOpenAIServer,
    error_reply,
    rate_limit_reply,
    text_reply,
)

pytestmark = pytest.mark.anyio

ONE_TRY = RetryPolicy(max_attempts=1)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def chat(server: FakeOpenAIServer, name: str, **kw: object) -> OpenAIChatModel:
    return OpenAIChatModel(name, base_url=server.base_url, api_key=server.api_key,
                           retry=kw.pop("retry", ONE_TRY), **kw)  # type: ignore[arg-type]


async def test_5xx_after_retries_falls_back_and_the_result_names_the_fallback(
    server: FakeOpenAIServer,
) -> None:
    retry_twice = RetryPolicy(max_attempts=2, initial_wait=0.0)
    server.enqueue(error_reply(503), error_reply(503), "From the backup.")
    primary = chat(server, "gpt-4o", retry=retry_twice)
    backup = OpenAIResponsesModel("gpt-4o-mini", base_url=server.base_url, api_key="k")
    result = await Agent(model=FallbackModel(primary, backup)).run("Hi")
    assert result.output == "From the backup."
    assert result.model_name == "gpt-4o-mini"
    assert result.usage.requests == 3  # the primary's two answered attempts count too
    assert [r.path for r in server.requests] == [
        "/v1/chat/completions", "/v1/chat/completions", "/v1/responses"]


@pytest.mark.parametrize("reply", [rate_limit_reply(), error_reply(500)], ids=["429", "500"])
async def test_429_and_5xx_fall_back(server: FakeOpenAIServer, reply: object) -> None:
    server.enqueue(reply, "backup")  # type: ignore[arg-type]
    model = FallbackModel(chat(server, "a"), chat(server, "b"))
    response = await model.request(ModelRequest([Message.user("hi")]))
    assert (response.message.text, response.model_name) == ("backup", "b")


async def test_a_connection_failure_falls_back() -> None:
    with FakeOpenAIServer() as down:
        stopped = down.base_url
    with FakeOpenAIServer(["up"]) as up:
        model = FallbackModel(
            OpenAIChatModel("a", base_url=stopped, api_key="k", retry=ONE_TRY),
            OpenAIChatModel("b", base_url=up.base_url, api_key="k", retry=ONE_TRY),
        )
        response = await model.request(ModelRequest([Message.user("hi")]))
    assert response.model_name == "b"


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_never_fall_back(server: FakeOpenAIServer, status: int) -> None:
    server.enqueue(error_reply(status), "never used")
    model = FallbackModel(chat(server, "a"), chat(server, "b"))
    with pytest.raises(ModelHTTPError) as info:
        await model.request(ModelRequest([Message.user("hi")]))
    assert info.value.status == status
    assert len(server.requests) == 1


async def test_the_last_models_error_is_raised(server: FakeOpenAIServer) -> None:
    server.enqueue(error_reply(503), error_reply(502))
    with pytest.raises(ModelHTTPError) as info:
        await FallbackModel(chat(server, "a"), chat(server, "b")).request(
            ModelRequest([Message.user("hi")]))
    assert info.value.status == 502 and "'b'" in str(info.value)


async def test_on_narrows_what_falls_back(server: FakeOpenAIServer) -> None:
    server.enqueue(error_reply(503), "never used")
    model = FallbackModel(chat(server, "a"), chat(server, "b"), on=(ModelConnectionError,))
    with pytest.raises(ModelHTTPError):
        await model.request(ModelRequest([Message.user("hi")]))


async def test_a_stream_falls_back_only_before_text(server: FakeOpenAIServer) -> None:
    server.enqueue(error_reply(503), text_reply("from b"))
    model = FallbackModel(chat(server, "a"), chat(server, "b"))
    items = [item async for item in model.stream(ModelRequest([Message.user("hi")]))]
    assert [i.text for i in items if isinstance(i, TextDelta)] == ["from", " b"]
    assert items[-1].model_name == "b"  # type: ignore[union-attr]

    server.enqueue(text_reply("one two three", drop_after=3), "never used")
    seen: list[str] = []
    with pytest.raises(ModelConnectionError):
        async for item in model.stream(ModelRequest([Message.user("hi")])):
            if isinstance(item, TextDelta):
                seen.append(item.text)
    assert seen == ["one", " two"]
    assert server.pending == 1


def test_bad_arguments_say_how_to_fix() -> None:
    with pytest.raises(ConfigurationError, match="at least one fallback"):
        FallbackModel(OpenAIChatModel("a", api_key="k"))
    with pytest.raises(ConfigurationError, match="OpenAIChatModel"):
        FallbackModel(OpenAIChatModel("a", api_key="k"), "gpt-4o")  # type: ignore[arg-type]


async def test_a_model_that_names_no_model_is_named_by_its_own_name() -> None:
    from agentkit.testing import FunctionModel, ScriptedModel

    def down(request: ModelRequest) -> str:
        raise ModelConnectionError("no route to host")

    backup = ScriptedModel(["hello"], name="backup")
    result = await Agent(model=FallbackModel(FunctionModel(down), backup)).run("hi")
    assert (result.output, result.model_name) == ("hello", "backup")
