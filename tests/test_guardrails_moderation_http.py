"""moderation() over real HTTP: OpenAIModeration against the FakeOpenAIServer's
/v1/moderations."""

from __future__ import annotations

import socket

import pytest

from agentkit import Agent, AgentkitError, GuardrailTripped
from agentkit.guardrails import moderation
from agentkit.testing import ScriptedModel
from agentkit.testing.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.anyio


async def test_moderation_over_http_to_the_fake_server() -> None:
    with FakeOpenAIServer() as server:
        guard = moderation(base_url=server.base_url, api_key=server.api_key)
        agent = Agent(model=ScriptedModel(["Hello to you too."]), guardrails=[guard])
        result = await agent.run("Hello there, how are you?")
        assert result.output == "Hello to you too."
        sent = [r for r in server.requests if r.path.endswith("/moderations")]
    # The input and the output were each checked once, over HTTP.
    assert len(sent) == 2
    assert sent[0].body is not None and "Hello there" in str(sent[0].body["input"])
    assert sent[1].body is not None and "Hello to you too." in str(sent[1].body["input"])


async def test_flagged_input_stops_the_run_before_any_model_request() -> None:
    model = ScriptedModel(["never sent"])
    with FakeOpenAIServer() as server:
        guard = moderation(base_url=server.base_url, api_key=server.api_key)
        agent = Agent(model=model, guardrails=[guard])
        with pytest.raises(GuardrailTripped) as caught:
            await agent.run("I will attack my neighbour tonight")
    assert caught.value.guardrail == "moderation"
    assert "violence" in str(caught.value.info)
    assert model.requests == []
    assert [m.role for m in caught.value.messages] == ["user"]


async def test_moderation_without_a_server_fails_with_a_typed_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    guard = moderation(base_url=f"http://127.0.0.1:{port}/v1", api_key="k")
    agent = Agent(model=ScriptedModel(["never"]), guardrails=[guard])
    with pytest.raises(AgentkitError):
        await agent.run("hello")
