"""Tests for examples/weather_bot.py, the way a user would write them: offline, free and
deterministic, using each of agentkit's testing helpers.

Run with ``pytest examples/test_weather_bot.py``; no API key and no network needed.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from types import ModuleType

import anyio
import pytest
import weather_bot

from agentkit.errors import ModelRequestsBlocked
from agentkit.testing import Cassette
from agentkit.testing.assertions import assert_called_tool, assert_no_tool_errors
from agentkit.testing.capture import capture_run
from agentkit.testing.fake_openai import FakeOpenAIServer, text_reply, tool_call_reply
from agentkit.testing.models import ScriptedModel, tool_call_response
from agentkit.testing.test_model import TestModel


def test_the_tool_runs_with_any_valid_city(test_model: TestModel) -> None:
    # TestModel calls get_weather with generated, schema-valid arguments.
    result = weather_bot.agent.run_sync("What's the weather in Paris?", model=test_model)
    call = assert_called_tool(result, "get_weather")
    assert_no_tool_errors(result)
    city = call.parsed_arguments()["city"]
    assert json.loads(result.output) == {
        "get_weather": {"city": city, "temperature_c": 14, "conditions": "light rain"}
    }


def test_the_model_sees_the_tool_result() -> None:
    model = ScriptedModel([
        tool_call_response(("get_weather", {"city": "Paris"})),
        "Light rain and 14°C in Paris.",
    ])
    with capture_run() as captured:
        result = weather_bot.agent.run_sync("What's the weather in Paris?", model=model)
    assert_called_tool(result, "get_weather", city="Paris")
    assert result.output == "Light rain and 14°C in Paris."
    tool_message = captured.requests[1].messages[-1]
    assert tool_message.role == "tool" and "light rain" in tool_message.text
    assert captured.usage.requests == 2 and captured.usage.tool_calls == 1


@pytest.fixture
def online_bot(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[
    ModuleType
]:
    """weather_bot imported with OPENAI_* pointing at the fake server (it reads them at
    import time), so its agent uses gpt-4o-mini over real HTTP."""
    monkeypatch.delitem(sys.modules, "weather_bot")
    yield importlib.import_module("weather_bot")


PARIS_REPLIES = [
    tool_call_reply(("get_weather", {"city": "Paris"})),
    text_reply("Light rain, 14°C in Paris."),
]


def test_main_streams_the_answer_against_a_fake_openai_server(
    online_bot: ModuleType, fake_openai: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.enqueue(*PARIS_REPLIES)
    answer = anyio.run(online_bot.main, "What's the weather in Paris?")
    assert answer == "Light rain, 14°C in Paris."
    printed = capsys.readouterr().out
    assert '-> get_weather({"city":"Paris"})' in printed
    first, second = (r.body for r in fake_openai.requests)
    assert first["stream"] is True and first["model"] == "gpt-4o-mini"
    assert second["messages"][-1]["role"] == "tool"


def test_recorded_conversation_replays(
    online_bot: ModuleType, fake_openai: FakeOpenAIServer, cassette: Cassette
) -> None:
    # examples/cassettes/test_recorded_conversation_replays.jsonl holds the conversation;
    # `pytest --agentkit-record` records it again (here against the fake server).
    fake_openai.enqueue(*PARIS_REPLIES)
    result = online_bot.agent.run_sync("What's the weather in Paris?")
    assert result.output == "Light rain, 14°C in Paris."
    assert_called_tool(result, "get_weather", city="Paris")
    assert len(fake_openai.requests) == (2 if cassette.recording else 0)


def test_real_models_are_blocked_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delitem(sys.modules, "weather_bot")
    bot = importlib.import_module("weather_bot")
    with pytest.raises(ModelRequestsBlocked, match="gpt-4o-mini"):
        bot.agent.run_sync("What's the weather in Paris?")
