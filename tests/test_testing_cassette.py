"""Cassettes: record model traffic to JSONL, replay it offline, diff a mismatch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, tool
from agentkit.errors import CassetteMismatch, ConfigurationError, ModelConnectionError
from agentkit.models.base import TextDelta
from agentkit.models.openai import OpenAIChatModel
from agentkit.retry import RetryPolicy
from agentkit.run import RunFinished
from agentkit.testing.cassettes import Cassette, cassette
from agentkit.testing.fake_openai import (
    FakeOpenAIServer,
    disconnect_reply,
    rate_limit_reply,
    text_reply,
    tool_call_reply,
)
from agentkit.testing.models import ScriptedModel, tool_call_response

SECRET = "sk-canary-0123456789abcdefghij"


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"14C in {city}"


def scripted() -> ScriptedModel:
    return ScriptedModel([tool_call_response(("get_weather", {"city": "Paris"})), "Mild, 14C."])


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_model_level_record_then_replay(tmp_path: Path) -> None:
    path = tmp_path / "weather.jsonl"
    with cassette(path, mode="record") as recording:
        recorded = Agent(model=scripted(), tools=[get_weather]).run_sync("Weather in Paris?")
    assert recording.recording
    lines = read_lines(path)
    assert lines[0] == {"agentkit_cassette": 1}
    assert [line["kind"] for line in lines[1:]] == ["model", "model"]
    assert lines[1]["request"]["messages"] == [{"role": "user", "content": "Weather in Paris?"}]

    # An empty script: any request reaching the model itself would fail.
    empty = ScriptedModel([], name="scripted")
    with cassette(path, mode="replay") as replaying:
        replayed = Agent(model=empty, tools=[get_weather]).run_sync("Weather in Paris?")
    assert replayed.output == recorded.output == "Mild, 14C."
    assert replayed.messages == recorded.messages
    assert empty.requests == [] and replaying.unplayed == 0


def test_once_records_when_missing_and_replays_when_present(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "once.jsonl"
    with cassette(path) as first:
        Agent(model=scripted(), tools=[get_weather]).run_sync("Weather in Paris?")
    assert first.recording and path.exists()
    with cassette(path) as second:
        result = Agent(model=ScriptedModel([]), tools=[get_weather]).run_sync("Weather in Paris?")
    assert not second.recording and result.output == "Mild, 14C."


def test_replay_mismatch_shows_a_unified_diff(tmp_path: Path) -> None:
    path = tmp_path / "weather.jsonl"
    with cassette(path, mode="record"):
        Agent(model=scripted(), tools=[get_weather]).run_sync("Weather in Paris?")
    with cassette(path, mode="replay"), pytest.raises(CassetteMismatch) as info:
        Agent(model=ScriptedModel([]), tools=[get_weather]).run_sync("Weather in Rome?")
    message = str(info.value)
    assert "request to model 'scripted' does not match cassette" in message
    assert "--- recorded\n+++ actual\n" in message
    assert '-      "content": "Weather in Paris?",' in message
    assert '+      "content": "Weather in Rome?",' in message
    assert "--agentkit-record" in message


def test_replay_beyond_the_recording_fails(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    with cassette(path, mode="record"):
        Agent(model=ScriptedModel(["hi"])).run_sync("hello")
    with cassette(path, mode="replay"):
        Agent(model=ScriptedModel([])).run_sync("hello")
        with pytest.raises(CassetteMismatch, match="all 1 recorded model-level request"):
            Agent(model=ScriptedModel([])).run_sync("hello")


def test_replay_needs_the_file_and_modes_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="nothing to replay"):
        cassette(tmp_path / "missing.jsonl", mode="replay")
    with pytest.raises(ConfigurationError, match="mode must be one of"):
        cassette(tmp_path / "x.jsonl", mode="sometimes")  # type: ignore[arg-type]


def test_concurrent_runs_replay_by_content_not_order(tmp_path: Path) -> None:
    path = tmp_path / "two.jsonl"
    with cassette(path, mode="record"):
        Agent(model=ScriptedModel(["A"])).run_sync("first")
        Agent(model=ScriptedModel(["B"])).run_sync("second")
    with cassette(path, mode="replay"):
        assert Agent(model=ScriptedModel([])).run_sync("second").output == "B"
        assert Agent(model=ScriptedModel([])).run_sync("first").output == "A"


# --- OpenAIChatModel against FakeOpenAIServer --------------------------------------------


def openai_agent(base_url: str, **kwargs: Any) -> Agent:
    model = OpenAIChatModel("gpt-4o-mini", base_url=base_url, api_key=SECRET,
                            retry=RetryPolicy(initial_wait=0.001, max_wait=0.01), **kwargs)
    return Agent(model=model, tools=[get_weather])


@pytest.mark.parametrize("stream", [False, True])
def test_openai_run_recorded_against_fake_server_replays_with_server_stopped(
    tmp_path: Path, stream: bool
) -> None:
    path = tmp_path / "openai.jsonl"
    with FakeOpenAIServer([tool_call_reply(("get_weather", {"city": "Paris"})),
                           text_reply("Mild, 14C in Paris.")]) as server:
        base_url = server.base_url
        with cassette(path, mode="record"):
            recorded = run(openai_agent(base_url), stream)
        assert len(server.requests) == 2
    # The server is stopped: replay must not need it.
    with cassette(path, mode="replay"):
        replayed = run(openai_agent(base_url), stream)
    assert replayed == recorded
    assert recorded[0] == "Mild, 14C in Paris."
    assert SECRET not in path.read_text()


def run(agent: Agent, stream: bool) -> tuple[str, list[str]]:
    if not stream:
        result = agent.run_sync("Weather in Paris?")
        return result.output, [m.role for m in result.messages]

    async def main() -> tuple[str, list[str]]:
        text = ""
        async for event in agent.stream("Weather in Paris?"):
            if isinstance(event, TextDelta):
                text += event.text
            elif isinstance(event, RunFinished):
                return text, [m.role for m in event.result.messages]
        raise AssertionError("no final event")

    from agentkit.agent import run_blocking

    return run_blocking(main)


# --- HTTP level ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_http_level_replays_retries_and_streams_faithfully(tmp_path: Path, stream: bool) -> None:
    path = tmp_path / "http.jsonl"
    replies = [
        rate_limit_reply(retry_after_ms=1),
        disconnect_reply(),
        tool_call_reply(("get_weather", {"city": "Paris"})),
        text_reply("Mild, 14C in Paris."),
    ]
    with FakeOpenAIServer(replies) as server:
        base_url = server.base_url
        with cassette(path, mode="record"):
            recorded = run(openai_agent(base_url), stream)
        assert len(server.requests) == 4
    lines = read_lines(path)[1:]
    assert [line["kind"] for line in lines] == ["http"] * 4
    assert [line["response"].get("status") for line in lines] == [429, None, 200, 200]
    assert lines[1]["response"]["error"] in ("RemoteProtocolError", "ReadError", "ConnectError")
    assert lines[0]["request"]["path"] == "/v1/chat/completions"
    assert lines[0]["request"]["body"].get("stream", False) is stream
    text = path.read_text().lower()
    assert SECRET.lower() not in text and "authorization" not in text
    if stream:
        assert len(lines[3]["response"]["chunks"]) >= 1
        assert "data: [DONE]" in "".join(lines[3]["response"]["chunks"])

    with Cassette(path, mode="replay") as replaying:
        replayed = run(openai_agent(base_url), stream)
    assert replayed == recorded and replaying.unplayed == 0


def test_http_level_mismatch_shows_the_body_diff(tmp_path: Path) -> None:
    path = tmp_path / "http.jsonl"
    with FakeOpenAIServer([text_reply("Hello.")]) as server:
        base_url = server.base_url
        with cassette(path, mode="record"):
            Agent(model=OpenAIChatModel("gpt-4o-mini", base_url=base_url, api_key=SECRET)).run_sync(
                "hi")
    with cassette(path, mode="replay"), pytest.raises(CassetteMismatch) as info:
        Agent(model=OpenAIChatModel("gpt-4o", base_url=base_url, api_key=SECRET)).run_sync("hi")
    message = str(info.value)
    assert "HTTP POST /v1/chat/completions does not match" in message
    assert '-    "model": "gpt-4o-mini"\n+    "model": "gpt-4o"\n' in message


def test_credentials_in_custom_headers_are_never_recorded(tmp_path: Path) -> None:
    path = tmp_path / "headers.jsonl"
    custom = "custom-credential-5d1e9a"
    with FakeOpenAIServer([text_reply("ok")]) as server:
        agent = openai_agent(server.base_url, default_headers={"X-Auth-Token": custom})
        with cassette(path, mode="record"):
            assert agent.run_sync("hi").output == "ok"
        assert server.requests[0].headers["x-auth-token"] == custom
    text = path.read_text()
    assert custom not in text and SECRET not in text
    assert '"content-type"' in text  # harmless headers are still kept


# --- failures are never recorded; replay needs no key ---------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
def test_a_cassette_is_never_written_from_failed_requests(tmp_path: Path, existing: bool) -> None:
    path = tmp_path / "failed.jsonl"
    if existing:
        with FakeOpenAIServer([text_reply("Good.")]) as server, cassette(path, mode="record"):
            openai_agent(server.base_url).run_sync("hi")
    before = path.read_text() if existing else None
    with FakeOpenAIServer() as server:
        stopped = server.base_url  # connection refused from now on
    with cassette(path, mode="record") as recording, pytest.raises(ModelConnectionError):
        openai_agent(stopped).run_sync("hi")
    assert recording.interactions  # the failed exchanges were seen...
    assert (path.read_text() if path.exists() else None) == before  # ...and not written


def test_a_failed_model_level_request_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "failed-model.jsonl"
    with cassette(path, mode="record"):
        Agent(model=ScriptedModel(["fine"])).run_sync("first")
        with pytest.raises(ConfigurationError):
            Agent(model=ScriptedModel([])).run_sync("second")
    assert not path.exists()


@pytest.mark.parametrize("stream", [False, True])
def test_replay_needs_no_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    path = tmp_path / "nokey.jsonl"
    with FakeOpenAIServer([text_reply("Recorded.")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        with cassette(path, mode="record"):
            recorded = run(Agent(model="gpt-4o-mini"), stream)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")  # replaying a recording of OpenAI proper
    with cassette(path, mode="replay") as replaying:
        assert run(Agent(model="gpt-4o-mini"), stream) == recorded
    assert replaying.unplayed == 0
    assert recorded[0] == "Recorded."
