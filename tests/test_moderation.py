"""OpenAIModeration over real HTTP against FakeOpenAIServer's /v1/moderations, and the
fake server's new endpoints seen from a plain HTTP client.

Retries and faults of OpenAIModeration are in test_model_faults.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from agentkit.errors import ConfigurationError, MissingAPIKey
from agentkit.models import ModerationResult, OpenAIModeration
from agentkit.testing.fake_openai import (
    FakeOpenAIServer,
    raw_reply,
    text_reply,
    tool_call_reply,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def moderation(server: FakeOpenAIServer) -> OpenAIModeration:
    return OpenAIModeration(base_url=server.base_url, api_key=server.api_key)


async def test_one_result_per_input_with_categories_and_scores(server: FakeOpenAIServer) -> None:
    threat, greeting = await moderation(server).moderate(["I will kill you", "Hello there"])
    assert threat.flagged and threat.categories["violence"] is True
    assert threat.scores["violence"] == 0.9 and threat.flagged_categories == ["violence"]
    assert not greeting.flagged and not any(greeting.categories.values())
    assert server.requests[0].body == {
        "model": "omni-moderation-latest", "input": ["I will kill you", "Hello there"]}


async def test_a_single_string_and_a_scripted_verdict(server: FakeOpenAIServer) -> None:
    verdict = {"id": "modr-1", "model": "omni-moderation-latest", "results": [{
        "flagged": True,
        "categories": {"harassment": True, "hate": False},
        "category_scores": {"harassment": 0.71, "hate": 0.2},
    }]}
    server.enqueue(raw_reply(verdict), endpoint="moderations")
    assert await moderation(server).moderate("anything") == [
        ModerationResult(True, {"harassment": True, "hate": False},
                         {"harassment": 0.71, "hate": 0.2})
    ]


async def test_bad_input_and_a_missing_key_are_refused_before_any_request(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="a string or a list of strings"):
        await moderation(server).moderate([1, 2])  # type: ignore[list-item]
    assert await moderation(server).moderate([]) == []
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(MissingAPIKey, match=r"OpenAIModeration\('omni-moderation-latest'"):
        await OpenAIModeration().moderate("hi")
    assert server.requests == []


# --- the fake server's endpoints, over plain HTTP --------------------------------------


def test_responses_stream_events_come_in_order(server: FakeOpenAIServer) -> None:
    server.enqueue(tool_call_reply(("f", {"a": 1}), content="Calling f.", reasoning="hm"))
    body = {"model": "o4-mini", "input": "x", "stream": True,
            "include": ["reasoning.encrypted_content"]}
    raw = httpx.post(f"{server.base_url}/responses", json=body).text
    events = [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:")]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    arguments = "".join(e["delta"] for e in events
                        if e["type"] == "response.function_call_arguments.delta")
    assert arguments == '{"a":1}'
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "Calling f."
    final = events[-1]["response"]["output"]
    assert [item["type"] for item in final] == ["reasoning", "message", "function_call"]
    assert final[0]["encrypted_content"].startswith("fake-enc:")


def test_embedding_limits_and_misplaced_replies(server: FakeOpenAIServer) -> None:
    too_many = httpx.post(f"{server.base_url}/embeddings",
                          json={"model": "m", "input": ["a"] * 2049})
    assert too_many.status_code == 400 and "2048" in too_many.json()["error"]["message"]
    server.enqueue(text_reply("hi"), endpoint="embeddings")
    misplaced = httpx.post(f"{server.base_url}/embeddings", json={"model": "m", "input": "a"})
    assert misplaced.status_code == 500 and "raw_reply" in misplaced.json()["error"]["message"]
    with pytest.raises(ValueError, match="endpoint must be"):
        server.enqueue("x", endpoint="files")  # type: ignore[arg-type]
