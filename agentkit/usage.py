"""Token and request accounting, and the limits a run must stay within."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["Usage", "UsageLimits"]


@dataclass(slots=True)
class Usage:
    """What one request, or a whole run, spent.

    ``requests`` counts model requests (failed attempts included when the backend reports
    them); ``tool_calls`` counts tool invocations made by the loop. ``cached_tokens`` (input
    tokens the server read from its prompt cache) and ``reasoning_tokens`` (output tokens a
    reasoning model spent thinking) are parts of ``input_tokens`` and ``output_tokens``.

    ``cost_usd`` is what the requests cost in US dollars (see :mod:`agentkit.pricing`), or
    None when any of them has no known price (never 0 for "unknown"). ``cache_hits`` and
    ``cache_misses`` count requests answered by, or missed in, a
    :class:`~agentkit.cache.ResponseCache`; a hit is not a request and costs nothing.
    """

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    tool_calls: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    cache_hits: int = 0
    cache_misses: int = 0

    def add(self, other: Usage) -> None:
        """Add ``other`` into this usage in place."""
        self.cost_usd = _sum_costs(self, other)
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.total_tokens += other.total_tokens
        self.tool_calls += other.tool_calls
        self.cache_hits += other.cache_hits
        self.cache_misses += other.cache_misses
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens

    def __add__(self, other: Usage) -> Usage:
        total = self.copy()
        total.add(other)
        return total

    def copy(self) -> Usage:
        """Return an independent copy."""
        return dataclasses.replace(self)


def _sum_costs(a: Usage, b: Usage) -> float | None:
    # Unknown stays unknown: requests without a price make the sum None, not an undercount.
    if (a.cost_usd is None and a.requests) or (b.cost_usd is None and b.requests):
        return None
    if a.cost_usd is None and b.cost_usd is None:
        return None
    return (a.cost_usd or 0.0) + (b.cost_usd or 0.0)


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """Limits checked before each request or tool call; breaking one raises
    :class:`~agentkit.errors.UsageLimitExceeded`.

    ``None`` means no limit. ``max_cost_usd`` is a budget in US dollars: before each
    request the run adds the worst case of that request (every prompt byte a token, the
    most output tokens allowed) to what it spent, and stops if that could pass the budget
    (see :mod:`agentkit.pricing`).
    """

    max_requests: int | None = None
    max_total_tokens: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    max_cost_usd: float | None = None

    def check_before_request(self, usage: Usage) -> str | None:
        """Return why one more request would break a limit, or None if it may go ahead."""
        if self.max_requests is not None and usage.requests + 1 > self.max_requests:
            return (
                f"the next request would be number {usage.requests + 1}, over "
                f"max_requests={self.max_requests}; raise UsageLimits(max_requests=...) "
                "if the run legitimately needs more"
            )
        for field, used in (
            ("max_total_tokens", usage.total_tokens),
            ("max_input_tokens", usage.input_tokens),
            ("max_output_tokens", usage.output_tokens),
        ):
            limit = getattr(self, field)
            if limit is not None and used >= limit:
                return (
                    f"{used} tokens used already reaches {field}={limit}; "
                    f"raise UsageLimits({field}=...) or shorten the run"
                )
        return None

    def check_tool_calls(self, usage: Usage, new_calls: int) -> str | None:
        """Return why ``new_calls`` more tool calls would break a limit, or None."""
        if self.max_tool_calls is not None and usage.tool_calls + new_calls > self.max_tool_calls:
            return (
                f"{new_calls} more tool call(s) would make {usage.tool_calls + new_calls}, over "
                f"max_tool_calls={self.max_tool_calls}; raise UsageLimits(max_tool_calls=...)"
            )
        return None
