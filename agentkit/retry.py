"""Retries and client-side rate limiting for model backends.

:class:`RetryPolicy` decides whether a failed attempt is tried again and how long to wait
(exponential backoff with full jitter, or the server's ``retry-after`` hint up to a cap),
within ``max_attempts`` and a total ``deadline``. A backend signals "this attempt may
succeed if repeated" by raising :class:`TransientError`; anything else is final.

:class:`RateLimit` holds requests-per-minute and tokens-per-minute token buckets shared by
every run that uses the same model object, pauses everyone after a 429, and reads the
``x-ratelimit-*`` headers servers send.

Time is injectable (``sleep`` and ``clock``) so tests check waits without sleeping.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import anyio
import tenacity

from agentkit.errors import ModelError

__all__ = [
    "RateLimit",
    "RetryPolicy",
    "TransientError",
    "parse_reset_duration",
    "parse_retry_after",
    "plural",
]

logger = logging.getLogger("agentkit")

SleepFn = Callable[[float], Awaitable[None]]
ClockFn = Callable[[], float]

RETRYABLE_STATUSES = frozenset({408, 409, 429})
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

E = TypeVar("E", bound=ModelError)


def plural(count: float, word: str) -> str:
    """``"1 attempt"``, ``"3 attempts"``, ``"0.5 seconds"``."""
    return f"{count:g} {word}" if count == 1 else f"{count:g} {word}s"


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class TransientError(Exception):
    """One attempt failed in a way another attempt may fix (internal to backends).

    Args:
        reason: Short description for the retry log line (never holds a secret).
        build_error: Makes the error the user sees if no attempt succeeds; it receives the
            number of attempts made and a sentence saying why retrying stopped.
        retry_after: The server's hint, in seconds, before trying again.
        counts_as_request: Whether the server answered (so the attempt counts in usage).
    """

    def __init__(
        self,
        reason: str,
        *,
        build_error: Callable[[int, str], ModelError],
        retry_after: float | None = None,
        counts_as_request: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.build_error = build_error
        self.retry_after = retry_after
        self.counts_as_request = counts_as_request


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``retry-after`` (seconds or an
    HTTP date), or None when the headers give no usable hint."""
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None and millis >= 0:
        return millis / 1000.0
    raw = (headers.get("retry-after") or "").strip()
    seconds = _number(raw)
    if seconds is None and raw:
        try:
            return max(email.utils.parsedate_to_datetime(raw).timestamp() - now(), 0.0)
        except (TypeError, ValueError, IndexError):
            return None
    return seconds if seconds is not None and seconds >= 0 else None


def parse_reset_duration(raw: str | None) -> float | None:
    """Parse an ``x-ratelimit-reset-*`` value such as ``"1s"``, ``"6m0s"``, ``"20ms"`` or
    ``"0.5"`` into seconds; None when it cannot be read."""
    text = (raw or "").strip()
    seconds = _number(text)
    if seconds is not None:
        return max(seconds, 0.0)
    parts = _DURATION_PART.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


@dataclass(frozen=True)
class RetryPolicy:
    """How a model backend retries failed requests.

    Retried: connection errors, timeouts, HTTP 408, 409, 429 (except
    ``insufficient_quota``) and 5xx. Never retried: other 4xx, and a stream once any
    text reached the caller.

    Attributes:
        max_attempts: Attempts in all, the first included (1 disables retries).
        initial_wait: Backoff ceiling for the first retry, in seconds; it doubles each time.
        max_wait: Largest backoff ceiling, in seconds. The actual wait is drawn uniformly
            from ``[0, ceiling]`` ("full jitter") so many clients do not retry in step.
        max_retry_after: Largest server ``retry-after`` hint honoured, in seconds; a longer
            hint ends the retries at once (the error carries the hint).
        deadline: Total seconds from the first attempt after which no retry starts.
        sleep: Async sleep function (injectable for tests).
        clock: Monotonic clock in seconds (injectable for tests).
        rng: Source of uniform floats in ``[0, 1)`` for the jitter.
    """

    max_attempts: int = 4
    initial_wait: float = 0.5
    max_wait: float = 20.0
    max_retry_after: float = 60.0
    deadline: float = 180.0
    sleep: SleepFn = field(default=anyio.sleep, repr=False, compare=False)
    clock: ClockFn = field(default=time.monotonic, repr=False, compare=False)
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}"
            )
        if self.initial_wait < 0 or self.max_wait < 0 or self.deadline <= 0:
            raise ValueError(
                "RetryPolicy waits must be >= 0 and the deadline > 0; got "
                f"initial_wait={self.initial_wait}, max_wait={self.max_wait}, "
                f"deadline={self.deadline}"
            )

    @staticmethod
    def retryable_status(status: int) -> bool:
        """Whether an HTTP status is worth another attempt (408, 409, 429, 5xx)."""
        return status in RETRYABLE_STATUSES or status >= 500

    def backoff(self, retry_number: int) -> float:
        """The jittered wait before retry number ``retry_number`` (1 for the first retry)."""
        ceiling = min(self.max_wait, self.initial_wait * (2.0 ** (retry_number - 1)))
        return ceiling * self.rng()

    def attempts(self, what: str) -> RetryAttempts:
        """Iterate attempts of one call: ``async for attempt in policy.attempts("x"):
        with attempt: ...``. Raises the final error (from :class:`TransientError`) when
        retrying stops; ``.answered`` counts the attempts the server answered.
        """
        return RetryAttempts(self, what)


class RetryAttempts:
    """The attempts of one retried call, and the one count of what they cost.

    tenacity drives the loop (waits, stop rules, logging); this object is each attempt's
    ``with`` block, and turns the last :class:`TransientError` into the backend's final
    error. :attr:`answered` counts every attempt the server answered (and may bill):
    successes, final errors and :class:`TransientError` s that say so. It is written on
    every error raised from here (``requests_answered``), and backends put it in the usage
    of their response.
    """

    def __init__(self, policy: RetryPolicy, what: str) -> None:
        self.policy = policy
        self.what = what
        self.number = 0
        self.answered = 0
        self._start = policy.clock()
        self._note = ""
        self._retrying = tenacity.AsyncRetrying(
            sleep=policy.sleep,
            stop=self._stop,
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(TransientError),
            before_sleep=self._log,
            reraise=True,
        )
        self._attempts: Any = None
        self._attempt: Any = None

    def __aiter__(self) -> RetryAttempts:
        return self

    async def __anext__(self) -> RetryAttempts:
        if self._attempts is None:
            self._attempts = self._retrying.__aiter__()
        failure: TransientError | None = None
        try:
            self._attempt = await self._attempts.__anext__()
        except TransientError as exc:
            failure = exc
        if failure is not None:
            # Raised outside the except block, so the final error chains to nothing: the
            # backend's own exceptions may quote secrets back.
            raise self.bill(failure.build_error(self.number, self._note))
        self.number += 1
        return self

    def __enter__(self) -> None:
        self._attempt.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None or isinstance(exc, ModelError):  # an answer, or a final error such as 400
            self.answered += 1
            if exc is not None:
                self.bill(exc)
        elif isinstance(exc, TransientError):
            self.answered += exc.counts_as_request
        # tenacity keeps the outcome and decides at the next iteration: retry, or re-raise.
        return bool(self._attempt.__exit__(kind, exc, tb))

    def bill(self, error: E) -> E:
        """``error`` with :attr:`answered` as its ``requests_answered``."""
        error.requests_answered = self.answered
        return error

    @staticmethod
    def _failure(state: tenacity.RetryCallState) -> TransientError | None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        return exc if isinstance(exc, TransientError) else None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        failure = self._failure(state)
        if failure is not None and failure.retry_after is not None:
            return failure.retry_after
        return self.policy.backoff(state.attempt_number)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        failure = self._failure(state)
        hinted = failure is not None and failure.retry_after is not None
        note = self._stop_note(state.upcoming_sleep, hinted=hinted)
        self._note = note or ""
        return note is not None

    def _log(self, state: tenacity.RetryCallState) -> None:
        failure = self._failure(state)
        logger.warning(
            "agentkit: %s failed (%s); retrying in %.2fs (attempt %d of %d)",
            self.what, failure.reason if failure is not None else "unknown error",
            state.upcoming_sleep, state.attempt_number + 1, self.policy.max_attempts,
        )

    def _stop_note(self, wait: float, *, hinted: bool) -> str | None:
        policy = self.policy
        if self.number >= policy.max_attempts:
            return f"Gave up after {plural(self.number, 'attempt')} (max_attempts)."
        if hinted and wait > policy.max_retry_after:
            return (
                f"The server asked to wait {wait:.1f}s, more than "
                f"RetryPolicy.max_retry_after={policy.max_retry_after:g}s."
            )
        elapsed = policy.clock() - self._start
        if elapsed + wait > policy.deadline:
            return (
                f"The next retry would pass the {policy.deadline:g}s deadline "
                f"({elapsed:.1f}s spent, next wait {wait:.1f}s)."
            )
        return None


class _Bucket:
    """A token bucket refilling ``per_minute`` units per minute, starting full."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` units are available (0 when they are now)."""
        self.refill(now)
        # A request larger than the bucket could never fit: let it go when the bucket is full.
        return max(min(amount, self.capacity) - self.level, 0.0) / self.rate


class RateLimit:
    """Client-side rate limit shared by every run that uses the same model object.

    A request first reserves one request and its estimated tokens (prompt estimate plus
    ``max_tokens``), waiting until both buckets allow it; the estimate is corrected from the
    response's usage. After a 429 every waiting request honours the cooldown, and the
    server's ``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*`` headers lower the
    buckets so the client stays under the server's own limits.

    Args:
        requests_per_minute: Requests allowed per minute (None: unlimited).
        tokens_per_minute: Tokens (input + output) allowed per minute (None: unlimited).
        sleep: Async sleep function (injectable for tests).
        clock: Monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        sleep: SleepFn = anyio.sleep,
        clock: ClockFn = time.monotonic,
    ) -> None:
        limits = {"requests": requests_per_minute, "tokens": tokens_per_minute}
        for kind, value in limits.items():
            if value is not None and value <= 0:
                raise ValueError(f"RateLimit.{kind}_per_minute must be positive, got {value}")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._sleep = sleep
        self._clock = clock
        self._buckets = {k: _Bucket(v, clock()) for k, v in limits.items() if v is not None}
        self._paused_until = 0.0
        # Runs may share one model across threads (run_sync in workers); bucket updates
        # are short and never await, so a plain lock keeps them atomic.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"RateLimit(requests_per_minute={self.requests_per_minute}, "
            f"tokens_per_minute={self.tokens_per_minute})"
        )

    async def acquire(self, tokens: int) -> int:
        """Wait until one request of about ``tokens`` tokens may be sent, and reserve it;
        returns the reservation to pass to :meth:`settle`."""
        amounts = {"requests": 1.0, "tokens": float(tokens)}
        while True:
            with self._lock:
                now = self._clock()
                waits = [b.wait_for(amounts[k], now) for k, b in self._buckets.items()]
                wait = max(self._paused_until - now, *waits, 0.0)
                if wait <= 0:
                    for kind, bucket in self._buckets.items():
                        bucket.level -= min(amounts[kind], bucket.capacity)
                    return tokens
            await self._sleep(wait)

    def settle(self, reservation: int, actual_tokens: int | None) -> None:
        """Correct the token bucket once the real usage of a request is known."""
        bucket = self._buckets.get("tokens")
        if bucket is None or actual_tokens is None:
            return
        with self._lock:
            reserved = min(float(reservation), bucket.capacity)
            bucket.level = min(bucket.capacity, bucket.level + reserved - actual_tokens)

    def pause(self, seconds: float) -> None:
        """Hold every request (waiting or new) for ``seconds``, e.g. after a 429."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(seconds, 0.0))

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Lower the buckets to what the server's ``x-ratelimit-*`` headers say is left."""
        with self._lock:
            now = self._clock()
            for kind in ("requests", "tokens"):
                remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
                if remaining is None:
                    continue
                reset = parse_reset_duration(headers.get(f"x-ratelimit-reset-{kind}"))
                bucket = self._buckets.get(kind)
                if bucket is not None:
                    bucket.refill(now)
                    bucket.level = min(bucket.level, remaining)
                if remaining < 1 and reset is not None:  # every request needs both kinds
                    self._paused_until = max(self._paused_until, now + reset)
