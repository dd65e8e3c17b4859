"""Observers only observe; test doubles are models: ``RunObserver.wrap_model`` is how a
test helper (cassette, request blocker, your own) stands in front of a run's model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentkit import Agent, tool
from agentkit.errors import ModelRequestsBlocked
from agentkit.models.base import Model, ModelRequest, ModelResponse, StreamItem, TextDelta
from agentkit.observers import RunObserver, observe
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


class Tagging(RunObserver):
    def __init__(self, tag: str, log: list[str]) -> None:
        self.tag, self.log = tag, log

    def wrap_model(self, model: Model) -> Model:
        self.log.append(f"{self.tag} wraps {model.name}")
        return Tagged(model, self.tag)


def test_wrap_model_runs_once_per_run_innermost_observer_first() -> None:
    log: list[str] = []
    model = ScriptedModel([tool_call_response(("get_weather", {"city": "Oslo"})), "Cold."])
    with observe(Tagging("outer", log)), observe(Tagging("inner", log)):
        result = Agent(model=model, tools=[get_weather]).run_sync("Weather in Oslo?")
    # Two requests, one wrapping; the outer observer sees the inner one's wrapper.
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

    class Answering(RunObserver):
        def wrap_model(self, model: Model) -> Model:
            return Canned()

    untouched = ScriptedModel([])
    with observe(Answering()):
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


def test_observers_see_responses_and_run_ends() -> None:
    seen: list[str] = []

    class Watching(RunObserver):
        def on_response(
            self, model: Model, request: ModelRequest, response: ModelResponse
        ) -> None:
            seen.append(f"{model.name}: {response.message.text}")

        def on_run_end(self, messages: list, usage: object, error: BaseException | None) -> None:  # type: ignore[type-arg]
            seen.append(f"end: {len(messages)} messages, error={error}")

    with observe(Watching()):
        Agent(model=ScriptedModel(["hello"])).run_sync("hi")
    assert seen == ["scripted: hello", "end: 2 messages, error=None"]
