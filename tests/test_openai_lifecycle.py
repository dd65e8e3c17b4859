"""OpenAIChatModel over many event loops and under slow servers: no leaked connections,
and ``timeout`` bounds a whole HTTP attempt, not just the time between two bytes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from agentkit import Agent
from agentkit.errors import ModelConnectionError
from agentkit.messages import Message
from agentkit.models.base import ModelRequest
from agentkit.models.openai import OpenAIChatModel
from agentkit.retry import RetryPolicy
from agentkit.settings import ModelSettings
from agentkit.testing.fake_openai import FakeOpenAIServer, raw_stream_reply, text_reply


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(handler=lambda body: text_reply("ok")) as srv:
        yield srv


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_thousand_run_sync_calls_keep_open_files_and_memory_flat(
    server: FakeOpenAIServer,
) -> None:
    agent = Agent(model=OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k"))
    for _ in range(50):  # warm up: imports, caches, the server's thread pool
        assert agent.run_sync("hi").output == "ok"
    fds, rss = _open_fds(), _rss_bytes()
    start = time.perf_counter()
    for _ in range(1000):
        agent.run_sync("hi")
    elapsed = time.perf_counter() - start
    # Each call runs on a new event loop; a client left behind per loop held a socket
    # (two fds here: the server is in this process) and about 0.9 MB.
    assert _open_fds() - fds <= 4
    assert _rss_bytes() - rss < 40 * 2**20
    assert elapsed < 60, elapsed  # ~5 ms a call on a quiet machine, 15 ms on a busy one


# --- timeout bounds the whole attempt ---------------------------------------------------


def _trickle() -> object:
    # A keep-alive comment every 0.5 s: never idle for a full second, never finished.
    return raw_stream_reply([": still here\n\n"] * 40, chunk_delay=0.5, done=False)


@pytest.mark.anyio
@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_timeout_bounds_the_whole_attempt_against_a_trickling_server(
    server: FakeOpenAIServer, streamed: bool
) -> None:
    server.enqueue(_trickle())  # type: ignore[arg-type]
    model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k", timeout=1,
                            retry=RetryPolicy(max_attempts=1))
    request = ModelRequest([Message.user("hi")])
    start = time.perf_counter()
    with pytest.raises(ModelConnectionError) as info:
        if streamed:
            async for _ in model.stream(request):
                pass
        else:
            await model.request(request)
    elapsed = time.perf_counter() - start
    assert 0.9 < elapsed < 2.0, elapsed
    message = str(info.value)
    assert "timed out" in message and "1 second" in message and "1 seconds" not in message


@pytest.mark.anyio
async def test_per_request_timeout_setting_bounds_the_attempt_too(
    server: FakeOpenAIServer,
) -> None:
    server.enqueue(_trickle(), "recovered")  # type: ignore[arg-type]
    model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key="k",
                            retry=RetryPolicy(initial_wait=0.01, max_wait=0.01))
    request = ModelRequest([Message.user("hi")], settings=ModelSettings(timeout=0.6))
    start = time.perf_counter()
    response = await model.request(request)
    # The trickling attempt is cut at 0.6 s and retried, like any timeout.
    assert response.message.text == "recovered"
    assert time.perf_counter() - start < 1.5
    assert len(server.requests) == 2
