"""The response cache (agentkit/cache.py) and the end-user / prompt-cache settings."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, ModelSettings, TextDelta, tool
from agentkit.cache import ResponseCache
from agentkit.models import OpenAIChatModel
from agentkit.testing.fake_openai import FakeOpenAIServer, text_reply, tool_call_reply

pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        fake.handler = lambda body: text_reply(f"answer {len(fake.requests)}")
        yield fake


def _agent(server: FakeOpenAIServer, cache: ResponseCache, **settings: Any) -> Agent[str]:
    model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k")
    return Agent(model=model, cache=cache, settings=ModelSettings(**settings))


def _sent(server: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path.endswith("/chat/completions")]


async def test_a_repeated_deterministic_request_is_answered_from_the_cache(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    cache = ResponseCache(tmp_path / "cache.db")
    agent = _agent(server, cache, temperature=0)
    first = await agent.run("What is 2+2?")
    second = await agent.run("What is 2+2?")
    assert len(_sent(server)) == 1 and second.output == first.output == "answer 1"
    assert (first.usage.cache_misses, first.usage.cache_hits, first.usage.requests) == (1, 0, 1)
    assert (second.usage.cache_hits, second.usage.requests, second.usage.cost_usd) == (1, 0, 0.0)
    assert first.usage.cost_usd is not None and first.usage.cost_usd > 0
    # Another question, or the same in a new process (a new cache object), as expected.
    assert (await agent.run("What is 3+3?")).output == "answer 2"
    again = await _agent(server, ResponseCache(tmp_path / "cache.db"), temperature=0).run(
        "What is 2+2?"
    )
    assert again.output == "answer 1" and len(_sent(server)) == 2
    assert (cache.hits, cache.misses) == (1, 2)


@pytest.mark.parametrize(
    ("settings", "cached"),
    [
        ({}, False),
        ({"seed": 7}, False),
        ({"temperature": 0.7}, False),
        ({"temperature": 1.0, "top_p": 0.5}, False),
        ({"temperature": 0.0}, True),
        ({"temperature": 0.7, "seed": 7}, True),
    ],
)
async def test_only_deterministic_requests_are_ever_served_from_the_cache(
    server: FakeOpenAIServer, tmp_path: Path, settings: dict[str, Any], cached: bool
) -> None:
    agent = _agent(server, ResponseCache(tmp_path / "c.db"), **settings)
    outputs = [(await agent.run("Tell me a joke")).output for _ in range(3)]
    if cached:
        assert outputs == ["answer 1"] * 3 and len(_sent(server)) == 1
    else:
        assert outputs == ["answer 1", "answer 2", "answer 3"] and len(_sent(server)) == 3
    forced = _agent(server, ResponseCache(tmp_path / "f.db", force=True), **settings)
    assert (await forced.run("x")).output == (await forced.run("x")).output


async def test_the_key_is_the_whole_request_but_not_transport_details(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    cache = ResponseCache(tmp_path / "cache.db")

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: First.
            b: Second.
        """
        return a + b

    plain = _agent(server, cache, temperature=0)
    await plain.run("Q", history=[{"role": "user", "content": "earlier"}])
    await plain.run("Q")  # other history: a miss
    await _agent(server, cache, temperature=0, max_tokens=5).run("Q")  # other settings: a miss
    with_tool = _agent(server, cache, temperature=0)
    with_tool.tools.append(add)
    await with_tool.run("Q")  # other tools: a miss
    assert len(_sent(server)) == 4
    # Timeouts, headers and the server-side prompt-cache key do not change the answer.
    same = _agent(server, cache, temperature=0, timeout=9, extra_headers={"x-a": "1"},
                  prompt_cache_key="tenant-1")  # fmt: skip
    assert (await same.run("Q")).usage.cache_hits == 1 and len(_sent(server)) == 4


async def test_entries_expire_after_the_ttl(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr("agentkit.cache.time.time", lambda: now[0])
    agent = _agent(server, ResponseCache(tmp_path / "c.db", ttl=60), temperature=0)
    await agent.run("Q")
    now[0] += 59
    assert (await agent.run("Q")).usage.cache_hits == 1
    now[0] += 2
    assert (await agent.run("Q")).usage.cache_hits == 0 and len(_sent(server)) == 2


async def test_a_corrupted_cache_file_is_rebuilt_and_the_run_goes_on(
    server: FakeOpenAIServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"this is not a database" * 100)
    cache = ResponseCache(path)
    agent = _agent(server, cache, temperature=0)
    with caplog.at_level(logging.WARNING, logger="agentkit"):
        assert (await agent.run("Q")).output == "answer 1"
    assert "rebuilding it empty" in caplog.text
    assert (await agent.run("Q")).usage.cache_hits == 1
    # Corrupted again while in use (another process wrote over it).
    cache.close()
    path.write_bytes(b"\x00garbage" * 512)
    assert (await agent.run("Q")).output == "answer 2"
    assert (await agent.run("Q")).usage.cache_hits == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM responses").fetchone() == (1,)


async def test_streamed_runs_use_the_cache_too(server: FakeOpenAIServer, tmp_path: Path) -> None:
    agent = _agent(server, ResponseCache(tmp_path / "c.db"), temperature=0)
    first = [e async for e in agent.stream("Q")]
    second = [e async for e in agent.stream("Q")]
    assert len(_sent(server)) == 1
    assert "".join(e.text for e in first if isinstance(e, TextDelta)) == "answer 1"
    assert [e.text for e in second if isinstance(e, TextDelta)] == ["answer 1"]


async def test_tool_calls_are_cached_and_errors_are_not(tmp_path: Path) -> None:
    with FakeOpenAIServer([
        tool_call_reply(("add", {"a": 1, "b": 2})), text_reply("3"),
        text_reply("cut", finish_reason="length"), text_reply("whole"),
    ]) as server:  # fmt: skip
        @tool
        def add(a: int, b: int) -> int:
            """Add.

            Args:
                a: First.
                b: Second.
            """
            return a + b

        cache = ResponseCache(tmp_path / "c.db")
        agent = _agent(server, cache, temperature=0)
        agent.tools.append(add)
        assert (await agent.run("1+2?")).output == "3"
        again = await agent.run("1+2?")
        assert again.output == "3" and again.usage.cache_hits == 2 and len(_sent(server)) == 2
        with pytest.raises(Exception, match="ran out of tokens"):
            await agent.run("long")
        assert (await agent.run("long")).output == "whole"


async def test_end_user_ids_and_the_prompt_cache_key_are_sent(server: FakeOpenAIServer) -> None:
    model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k")
    settings = ModelSettings(user="u-1", safety_identifier="3f2a", prompt_cache_key="support")
    await Agent(model=model, settings=settings).run("hi")
    await Agent(model=model, settings=ModelSettings(user="u-2")).run("hi")
    openai_like = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k",
                                  user_field="safety_identifier")  # fmt: skip
    await Agent(model=openai_like, settings=ModelSettings(user="u-3")).run("hi")
    first, second, third = _sent(server)
    assert (first["user"], first["safety_identifier"], first["prompt_cache_key"]) == (
        "u-1", "3f2a", "support",
    )
    assert second["user"] == "u-2" and "safety_identifier" not in second
    assert third["safety_identifier"] == "u-3" and "user" not in third
