"""RateLimit: token buckets, cooldown after 429, x-ratelimit headers, 50 concurrent runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anyio
import pytest
from fake_time import FakeTime

from agentkit.messages import Message
from agentkit.models.base import ModelRequest
from agentkit.models.openai import OpenAIChatModel
from agentkit.retry import RateLimit, RetryPolicy
from agentkit.settings import ModelSettings
from agentkit.testing.fake_openai import FakeOpenAIServer, Reply, rate_limit_reply, text_reply

pytestmark = pytest.mark.anyio




def limiter(fake: FakeTime, **kwargs: float) -> RateLimit:
    return RateLimit(sleep=fake.sleep, clock=fake.clock, **kwargs)


async def test_requests_bucket_allows_a_burst_then_paces() -> None:
    fake = FakeTime()
    rl = limiter(fake, requests_per_minute=60)
    for _ in range(60):
        await rl.acquire(10)
    assert fake.sleeps == []
    await rl.acquire(10)
    assert fake.sleeps == [pytest.approx(1.0)]  # one request per second refill


async def test_tokens_bucket_reserves_and_settles_from_usage() -> None:
    fake = FakeTime()
    rl = limiter(fake, tokens_per_minute=6000)  # 100 tokens per second
    reservation = await rl.acquire(5000)
    # Only 1000 left: a 3000-token request must wait 20 s ...
    rl.settle(reservation, 1000)  # ... unless the first one really used 1000 tokens.
    await rl.acquire(3000)
    assert fake.sleeps == []
    await rl.acquire(3000)
    assert fake.sleeps == [pytest.approx(10.0)]  # 2000 left, 1000 missing at 100/s


async def test_request_larger_than_bucket_goes_when_full() -> None:
    fake = FakeTime()
    rl = limiter(fake, tokens_per_minute=100)
    await rl.acquire(10_000)
    await rl.acquire(10_000)
    assert fake.sleeps == [pytest.approx(60.0)]


async def test_pause_holds_every_request() -> None:
    fake = FakeTime()
    rl = limiter(fake, requests_per_minute=1000)
    rl.pause(5.0)
    await rl.acquire(1)
    assert sum(fake.sleeps) == pytest.approx(5.0)


async def test_headers_lower_the_buckets_and_block_until_reset() -> None:
    fake = FakeTime()
    rl = limiter(fake, requests_per_minute=1000, tokens_per_minute=1_000_000)
    rl.observe_headers(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s",
         "x-ratelimit-remaining-tokens": "500", "x-ratelimit-reset-tokens": "1m"}
    )
    await rl.acquire(100)
    assert sum(fake.sleeps) == pytest.approx(2.0)
    # 500 tokens left on the server side (+ refill during the 2 s): 600 cannot go at once.
    await rl.acquire(40_000)
    assert len(fake.sleeps) > 1


async def test_headers_without_local_bucket_pause_when_exhausted() -> None:
    fake = FakeTime()
    rl = limiter(fake, requests_per_minute=1000)  # no token bucket configured
    rl.observe_headers({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "3s"})
    await rl.acquire(1)
    assert sum(fake.sleeps) == pytest.approx(3.0)


def test_invalid_limits_and_repr() -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimit(requests_per_minute=0)
    assert repr(RateLimit(requests_per_minute=10)) == (
        "RateLimit(requests_per_minute=10, tokens_per_minute=None)"
    )


# --- end to end: 50 concurrent runs sharing one model --------------------------------

SPEEDUP = 60.0  # one virtual minute per real second, so the test takes about a second


def fast_clock() -> float:
    return time.monotonic() * SPEEDUP


async def fast_sleep(seconds: float) -> None:
    await anyio.sleep(seconds / SPEEDUP)


@pytest.fixture
def timed_server() -> Iterator[tuple[FakeOpenAIServer, list[float]]]:
    arrivals: list[float] = []
    lock = threading.Lock()

    def handler(body: dict[str, object]) -> Reply:
        with lock:
            arrivals.append(fast_clock())
        return text_reply("ok")

    with FakeOpenAIServer(handler=handler) as server:
        yield server, arrivals


async def test_fifty_concurrent_runs_stay_under_requests_per_minute(
    timed_server: tuple[FakeOpenAIServer, list[float]],
) -> None:
    server, arrivals = timed_server
    rpm = 30  # burst of 30, then one every 2 virtual seconds
    model = OpenAIChatModel(
        "gpt-4o-mini",
        base_url=server.base_url,
        api_key=server.api_key,
        rate_limit=RateLimit(requests_per_minute=rpm, sleep=fast_sleep, clock=fast_clock),
    )
    request = ModelRequest([Message.user("hi")])
    start = fast_clock()
    results = []

    async def one() -> None:
        results.append(await model.request(request))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(one)

    assert len(results) == 50 and all(r.message.text == "ok" for r in results)
    arrivals.sort()
    # The k-th request (0-based) cannot start before the bucket had k+1 permits.
    slack = 0.5  # virtual seconds of scheduling noise
    for k, at in enumerate(arrivals):
        earliest = max(0.0, (k + 1 - rpm) * 60.0 / rpm)
        assert at - start >= earliest - slack, (k, at - start, earliest)
    assert arrivals[-1] - start >= (50 - rpm) * 60.0 / rpm - slack


async def test_fifty_concurrent_runs_all_wait_out_a_429_cooldown() -> None:
    arrivals: list[float] = []
    lock = threading.Lock()

    def handler(body: dict[str, object]) -> Reply:
        with lock:
            arrivals.append(fast_clock())
        return text_reply("ok")

    with FakeOpenAIServer(handler=handler) as server:
        # The first request is told to come back in 6 virtual seconds; everyone waits.
        server.enqueue(rate_limit_reply(6))
        backing_off = anyio.Event()

        async def retry_sleep(seconds: float) -> None:
            backing_off.set()  # the 429 has been seen (and the cooldown set)
            await fast_sleep(seconds)

        model = OpenAIChatModel(
            "gpt-4o-mini",
            base_url=server.base_url,
            api_key=server.api_key,
            rate_limit=RateLimit(requests_per_minute=100_000, sleep=fast_sleep, clock=fast_clock),
            retry=RetryPolicy(sleep=retry_sleep, clock=fast_clock),
        )
        request = ModelRequest([Message.user("hi")], settings=ModelSettings(max_tokens=5))
        usages = []

        async def one() -> None:
            usages.append((await model.request(request)).usage)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            await backing_off.wait()
            rejected_at = fast_clock()
            for _ in range(49):
                tg.start_soon(one)

    assert len(usages) == 50
    assert len(server.requests) == 51  # one 429, then one request each: no double retries
    # Every request, including the 49 started during the cooldown, waited it out.
    assert len(arrivals) == 50
    assert min(arrivals) >= rejected_at + 6.0 - 0.5
    # The rejected attempt counts as a request in the usage of the run that made it.
    assert sorted(u.requests for u in usages) == [1] * 49 + [2]
