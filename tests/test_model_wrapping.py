"""Test doubles are models: a model wrapper (``agentkit.models.wrapping``) is how a test
helper (cassette, request blocker, your own) stands in front of a run's model; hooks only
watch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentkit import Agent, tool
from agentkit.errors import ModelRequestsBlocked
from agentkit.hooks import HookContext, RunHooks, use_hooks
from agentkit.models.base import Model, ModelRequest, ModelResponse, StreamItem, TextDelta
from agentkit.models.wrapping import wrapping_models
from agentkit.run import RunFinished
from agentkit.testing.cassettes import cassette
from agentkit.testing.models import ScriptedModel, text_response, tool_call_response


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"14C in {city}"


class Tagged(Model):
    """Forwards to ``inner``, adding ``+tag`` to the answer text."""

    def __init__(self, inner: Model, tag: str) -> None:
        self.inner, self.tag = inner, tag
        self.wrapped = inner  # lets block_model_requests see the test double inside
        self.name = f"{inner.name}+{tag}"

    async def request(self, request: ModelRequest) -> ModelResponse:
        response = await self.inner.request(request)
        if response.message.tool_calls:
            return response
        return text_response(f"{response.message.text}+{self.tag}")


def tagging(tag: str, log: list[str]):  # type: ignore[no-untyped-def]
    def wrap(model: Model) -> Model:
        log.append(f"{tag} wraps {model.name}")
        return Tagged(model, tag)

    return wrap


def test_wrappers_apply_once_per_run_innermost_first() -> None:
    log: list[str] = []
    model = ScriptedModel([tool_call_response(("get_weather", {"city": "Oslo"})), "Cold."])
    with wrapping_models(tagging("outer", log)), wrapping_models(tagging("inner", log)):
        result = Agent(model=model, tools=[get_weather]).run_sync("Weather in Oslo?")
    # Two requests, one wrapping; the outer wrapper sees the inner one's.
    assert log == ["inner wraps scripted", "outer wraps scripted+inner"]
    assert result.output == "Cold.+inner+outer"
    assert len(model.requests) == 2


def test_a_wrapper_can_answer_without_the_model_streamed_too() -> None:
    class Canned(Model):
        name = "canned"
        is_test_double = True  # so the plugin's blocker lets it answer

        async def request(self, request: ModelRequest) -> ModelResponse:
            return text_response("from the wrapper")

        async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
            yield TextDelta("from the ")
            yield TextDelta("wrapper")
            yield text_response("from the wrapper")

    untouched = ScriptedModel([])
    with wrapping_models(lambda model: Canned()):
        assert Agent(model=untouched).run_sync("hi").output == "from the wrapper"

        async def main() -> list[str]:
            deltas = []
            async for event in Agent(model=untouched).stream("hi"):
                if isinstance(event, TextDelta):
                    deltas.append(event.text)
                elif isinstance(event, RunFinished):
                    assert event.result.output == "from the wrapper"
            return deltas

        from agentkit.agent import run_blocking

        assert run_blocking(main) == ["from the ", "wrapper"]
    assert untouched.requests == []


class _Remote(Model):
    name = "remote-llm"

    async def request(self, request: ModelRequest) -> ModelResponse:
        return text_response("the real model answered")


def test_the_plugin_blocker_wraps_outside_a_cassette(tmp_path: Path) -> None:
    # This test runs under the plugin's blocker: the cassette is inside it, so the
    # blocker sees the cassette's wrapper and lets it record the real model.
    path = tmp_path / "remote.jsonl"
    with cassette(path, mode="record"):
        assert Agent(model=_Remote()).run_sync("hi").output == "the real model answered"
    with cassette(path, mode="replay"):
        assert Agent(model=_Remote()).run_sync("hi").output == "the real model answered"
    with pytest.raises(ModelRequestsBlocked, match="remote-llm"):
        Agent(model=_Remote()).run_sync("hi")


def test_hooks_in_a_block_see_responses_and_run_ends_in_run_sync() -> None:
    seen: list[str] = []

    class Watching(RunHooks):
        def on_model_end(self, ctx: HookContext, response: ModelResponse) -> None:
            assert ctx.model is not None
            seen.append(f"{ctx.model.name}: {response.message.text}")

        def on_run_end(self, ctx: HookContext, outcome: object) -> None:
            seen.append(f"end: {len(ctx.messages)} messages, {type(outcome).__name__}")

    with use_hooks(Watching()):
        Agent(model=ScriptedModel(["hello"])).run_sync("hi")
    assert seen == ["scripted: hello", "end: 2 messages, RunResult"]
