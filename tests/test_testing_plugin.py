"""The pytest plugin, exercised on generated test files with pytester."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
import os
import pytest
from agentkit import Agent, tool
from agentkit.errors import ModelRequestsBlocked
from agentkit.models.base import Model
from agentkit.testing.models import ScriptedModel
from agentkit.testing.test_model import TestModel


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"14C in {city}"


class Remote(Model):
    name = "remote-llm"

    async def request(self, request):
        return ScriptedModel(["the real model answered"])._next(request)


def test_blocked_by_default():
    with pytest.raises(ModelRequestsBlocked, match="remote-llm"):
        Agent(model=Remote()).run_sync("hi")


@pytest.mark.allow_model_requests
def test_allowed_when_marked():
    assert Agent(model=Remote()).run_sync("hi").output == "the real model answered"


def test_test_model_fixture(test_model):
    assert isinstance(test_model, TestModel)
    result = Agent(model=test_model, tools=[get_weather]).run_sync("go")
    assert result.tool_calls(name="get_weather")


def test_fake_openai_fixture(fake_openai):
    fake_openai.enqueue("Hello from the fake server.")
    assert os.environ["OPENAI_BASE_URL"] == fake_openai.base_url
    assert Agent(model="gpt-4o-mini").run_sync("hi").output == "Hello from the fake server."
    assert fake_openai.requests[0].body["messages"][-1]["content"] == "hi"


def test_cassette_fixture(cassette):
    model = ScriptedModel([os.environ.get("ANSWER", "recorded answer")])
    assert Agent(model=model).run_sync("hi").output == "recorded answer"
'''


# The inner session runs in this process: this test's own blocker would apply to it too.
@pytest.mark.allow_model_requests
def test_plugin_end_to_end(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    first = pytester.runpytest("--strict-markers", "-W", "error::pytest.PytestCollectionWarning")
    first.assert_outcomes(passed=5)
    path = pytester.path / "cassettes" / "test_cassette_fixture.jsonl"
    assert path.exists()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[1]["response"]["message"]["content"] == "recorded answer"

    # Replayed: what the model would now say does not matter...
    monkeypatch.setenv("ANSWER", "a new answer")
    pytester.runpytest("-k", "cassette").assert_outcomes(passed=1)
    # ...until the cassette is re-recorded.
    again = pytester.runpytest("-k", "cassette", "--agentkit-record")
    again.assert_outcomes(failed=1)
    assert "a new answer" in path.read_text()


def test_options_and_marker_are_registered(pytester: pytest.Pytester) -> None:
    help_text = pytester.runpytest("--help").stdout.str()
    assert "--agentkit-record" in help_text
    markers = pytester.runpytest("--markers").stdout.str()
    assert "allow_model_requests" in markers


def test_parametrized_tests_get_distinct_cassette_files(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_params='''
import pytest
from agentkit import Agent
from agentkit.testing.models import ScriptedModel

class TestGroup:
    @pytest.mark.parametrize("word", ["a b", "c/d"])
    def test_it(self, cassette, word):
        Agent(model=ScriptedModel([word])).run_sync(word)
''')
    pytester.runpytest().assert_outcomes(passed=2)
    names = sorted(p.name for p in (pytester.path / "cassettes").iterdir())
    assert names == ["TestGroup.test_it-a-b-.jsonl", "TestGroup.test_it-c-d-.jsonl"]


MODULE_LEVEL_AGENT = '''
import pytest
from agentkit import Agent

agent = Agent(model="gpt-4o-mini")  # resolved once, at import, as users write it


@pytest.mark.parametrize("n", [1, 2, 3])
def test_fake_server(fake_openai, n):
    fake_openai.enqueue(f"answer {n}")
    assert agent.run_sync("hi").output == f"answer {n}"


@pytest.mark.parametrize("n", [1, 2])
def test_cassette(fake_openai, cassette, n):
    fake_openai.enqueue(f"recorded {n}")
    assert agent.run_sync(f"hi {n}").output == f"recorded {n}"
'''


# Issue 11 item 11: needs the Agent-side fix (the model is resolved per run, not at
# import) as well as the cassette-side one; re-run after merging agent.py.
@pytest.mark.allow_model_requests
def test_documented_module_level_agent_pattern(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    pytester.makepyfile(test_module_agent=MODULE_LEVEL_AGENT)
    pytester.runpytest().assert_outcomes(passed=5)
    cassettes = pytester.path / "cassettes"
    assert sorted(p.name for p in cassettes.iterdir()) == [
        "test_cassette-1-.jsonl", "test_cassette-2-.jsonl"]
    recorded = {p.name: p.read_text() for p in cassettes.iterdir()}
    # Replayed, in the other order, the fake server answering nothing.
    pytester.runpytest("-k", "cassette and 2").assert_outcomes(passed=1)
    pytester.runpytest("-k", "cassette").assert_outcomes(passed=2)
    assert {p.name: p.read_text() for p in cassettes.iterdir()} == recorded
