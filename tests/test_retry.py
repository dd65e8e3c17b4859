"""RetryPolicy: backoff, retry-after parsing, stop rules, logging, with fake time."""

from __future__ import annotations

import email.utils
import logging

import pytest
from fake_time import FakeTime

from agentkit.errors import ModelConnectionError, ModelError
from agentkit.retry import RetryPolicy, TransientError, parse_reset_duration, parse_retry_after

pytestmark = pytest.mark.anyio




def policy(fake: FakeTime, **kwargs: object) -> RetryPolicy:
    return RetryPolicy(sleep=fake.sleep, clock=fake.clock, **kwargs)  # type: ignore[arg-type]


def transient(reason: str = "HTTP 503", retry_after: float | None = None) -> TransientError:
    def build(attempts: int, note: str) -> ModelError:
        return ModelConnectionError(
            f"failed after {attempts} attempt(s): {note}", attempts=attempts
        )

    return TransientError(
        reason, build_error=build, retry_after=retry_after, counts_as_request=True
    )


async def run(p: RetryPolicy, outcomes: list[BaseException | str]) -> tuple[str, int]:
    """Run attempts that raise/return the scripted outcomes; return (result, attempts)."""
    calls = 0
    result = ""
    attempts = p.attempts("test call")
    async for attempt in attempts:
        with attempt:
            outcome = outcomes[calls]
            calls += 1
            if isinstance(outcome, BaseException):
                raise outcome
            result = outcome
    return result, calls


def test_retry_after_seconds_ms_and_date() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    # retry-after-ms is more precise and wins over retry-after.
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=lambda: 1_000_000) == pytest.approx(30)
    past = email.utils.formatdate(999_000, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=lambda: 1_000_000) == 0.0
    for bad in ({}, {"retry-after": "soon"}, {"retry-after": "-3"}, {"retry-after-ms": "x"}):
        assert parse_retry_after(bad) is None


def test_reset_durations() -> None:
    assert parse_reset_duration("1s") == 1.0
    assert parse_reset_duration("6m0s") == 360.0
    assert parse_reset_duration("20ms") == pytest.approx(0.02)
    assert parse_reset_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_reset_duration("0.5") == 0.5
    assert parse_reset_duration("abc") is None
    assert parse_reset_duration("") is None


def test_backoff_is_exponential_with_full_jitter() -> None:
    top = RetryPolicy(initial_wait=0.5, max_wait=4.0, rng=lambda: 0.999999)
    assert [round(top.backoff(n), 3) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    bottom = RetryPolicy(rng=lambda: 0.0)
    assert bottom.backoff(3) == 0.0


def test_retryable_statuses() -> None:
    for status in (408, 409, 429, 500, 502, 503, 504, 529):
        assert RetryPolicy.retryable_status(status)
    for status in (400, 401, 403, 404, 422):
        assert not RetryPolicy.retryable_status(status)


def test_invalid_policy_rejected() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy(deadline=0)


async def test_succeeds_after_transient_failures_and_counts_answered() -> None:
    fake = FakeTime(1000.0)
    p = policy(fake, rng=lambda: 0.5, initial_wait=1.0)
    attempts = p.attempts("x")
    calls = 0
    async for attempt in attempts:
        with attempt:
            calls += 1
            if calls < 3:
                raise transient()
    assert calls == 3
    assert fake.sleeps == [0.5, 1.0]  # 0.5 * 1.0, then 0.5 * 2.0
    assert attempts.answered == 3  # the two failed attempts the server answered, and the last


async def test_retry_after_hint_replaces_backoff() -> None:
    fake = FakeTime(1000.0)
    result, calls = await run(policy(fake), [transient(retry_after=7.0), "ok"])
    assert (result, calls) == ("ok", 2)
    assert fake.sleeps == [7.0]


async def test_hint_above_cap_stops_at_once() -> None:
    fake = FakeTime(1000.0)
    with pytest.raises(ModelConnectionError) as info:
        await run(policy(fake, max_retry_after=10), [transient(retry_after=30.0), "ok"])
    assert info.value.attempts == 1
    assert "max_retry_after=10" in str(info.value)
    assert fake.sleeps == []


async def test_max_attempts_exhausted_names_attempts() -> None:
    fake = FakeTime(1000.0)
    with pytest.raises(ModelConnectionError) as info:
        await run(policy(fake, max_attempts=3), [transient()] * 5)
    assert info.value.attempts == 3
    assert "after 3 attempt(s)" in str(info.value)
    assert len(fake.sleeps) == 2


async def test_deadline_stops_before_sleeping_past_it() -> None:
    fake = FakeTime(1000.0)
    p = policy(fake, max_attempts=100, deadline=10.0)
    with pytest.raises(ModelConnectionError) as info:
        await run(p, [transient(retry_after=4.0)] * 100)
    # waits of 4 s: 4 + 4 = 8 fits, a third would reach 12 > 10.
    assert fake.sleeps == [4.0, 4.0]
    assert info.value.attempts == 3
    assert "10s deadline" in str(info.value)


async def test_non_transient_errors_are_not_retried() -> None:
    fake = FakeTime(1000.0)
    with pytest.raises(KeyError):
        await run(policy(fake), [KeyError("boom"), "ok"])
    assert fake.sleeps == []


async def test_each_retry_logged_at_warning_with_reason_and_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeTime(1000.0)
    caplog.set_level(logging.WARNING, logger="agentkit")
    await run(policy(fake), [transient("HTTP 503: overloaded", retry_after=2.0), "ok"])
    records = [r for r in caplog.records if r.name == "agentkit"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    text = records[0].getMessage()
    assert "HTTP 503: overloaded" in text and "2.00s" in text and "attempt 2 of 4" in text
