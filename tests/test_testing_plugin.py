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
