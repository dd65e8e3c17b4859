"""Token and request accounting, and the limits a run must stay within."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Usage", "UsageLimits"]


@dataclass(slots=True)
class Usage:
    """What one request, or a whole run, spent.

    ``requests`` counts model requests (failed attempts included when the backend reports
    them); ``tool_calls`` counts tool invocations made by the loop. ``cached_tokens`` (input
    tokens the server read from its prompt cache) and ``reasoning_tokens`` (output tokens a
    reasoning model spent thinking) are parts of ``input_tokens`` and ``output_tokens``.
    """

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    tool_calls: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, other: Usage) -> None:
        """Add ``other`` into this usage in place."""
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.total_tokens += other.total_tokens
        self.tool_calls += other.tool_calls
        self.cached_tokens += other.cached_tokens
        self.reasoning_tokens += other.reasoning_tokens

    def __add__(self, other: Usage) -> Usage:
        total = self.copy()
        total.add(other)
        return total

    def copy(self) -> Usage:
        """Return an independent copy."""
        return Usage(
            self.requests,
            self.input_tokens,
            self.output_tokens,
            self.total_tokens,
            self.tool_calls,
            self.cached_tokens,
            self.reasoning_tokens,
        )


@dataclass(frozen=True, slots=True)
class UsageLimits:
    """Limits checked before each request or tool call; breaking one raises
    :class:`~agentkit.errors.UsageLimitExceeded`.

    ``None`` means no limit.
    """

    max_requests: int | None = None
    max_total_tokens: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None

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
