"""History policies: which part of a long conversation is sent to the model.

A policy is a function from the whole conversation to the messages sent; nothing stored
is ever changed. The built-in policies keep the leading instructions, never split a tool
call from its result and never start the sent part with a tool result, so any policy's
output is a history every server accepts. The same conversation always gives the same
messages, so what was sent can be reproduced from what is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from agentkit.errors import ConfigurationError
from agentkit.messages import Message

__all__ = ["HistoryPolicy", "estimate_tokens", "keep_last", "keep_tokens"]

HistoryPolicy = Callable[[Sequence[Message]], list[Message]]
"""Maps the whole conversation (instructions first) to the messages to send."""


def estimate_tokens(message: Message) -> int:
    """A rough token count of one message (about 4 characters a token, plus overhead).

    Deliberately cheap and model-independent: it decides what to drop, not what is billed.
    """
    size = len(message.text) + sum(len(c.name) + len(c.arguments) for c in message.tool_calls)
    if isinstance(message.content, list):
        size = len(json.dumps(message.content))
    return size // 4 + 4


class keep_last:
    """Send the instructions and at most the last ``n`` other messages (a few more when
    the cut would separate a tool result from its call)."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ConfigurationError(f"keep_last(n) needs n >= 1, got {n}")
        self.n = n
        self.window = n
        """The most stored messages this policy can send: a run on a thread loads no more
        (plus a margin for the calls of leading tool results)."""

    def __call__(self, messages: Sequence[Message]) -> list[Message]:
        head = _instructions(messages)
        return _from(messages, head, max(head, len(messages) - self.n))

    def __repr__(self) -> str:
        return f"keep_last({self.n})"


class keep_tokens:
    """Send the instructions and the most recent messages that fit in about ``n`` tokens
    (by ``estimate``); the last message is always sent."""

    def __init__(self, n: int, estimate: Callable[[Message], int] = estimate_tokens) -> None:
        if n < 1:
            raise ConfigurationError(f"keep_tokens(n) needs n >= 1, got {n}")
        self.n = n
        self.estimate = estimate
        # The default estimate charges at least 4 tokens a message, which bounds how many
        # messages can fit; a custom estimate gives no such bound.
        self.window: int | None = n // 4 + 1 if estimate is estimate_tokens else None

    def __call__(self, messages: Sequence[Message]) -> list[Message]:
        head = _instructions(messages)
        budget = self.n - sum(self.estimate(m) for m in messages[:head])
        cut = len(messages)
        while cut > head:
            cost = self.estimate(messages[cut - 1])
            if cost > budget and cut < len(messages):
                break
            budget -= cost
            cut -= 1
        return _from(messages, head, cut)

    def __repr__(self) -> str:
        return f"keep_tokens({self.n})"


def _instructions(messages: Sequence[Message]) -> int:
    head = 0
    while head < len(messages) and messages[head].role in ("system", "developer"):
        head += 1
    return head


def _from(messages: Sequence[Message], head: int, cut: int) -> list[Message]:
    """The instructions plus ``messages[cut:]``, with ``cut`` moved back so that the sent
    part starts outside a tool call's results (it starts at the call instead)."""
    while head < cut < len(messages) and messages[cut].role == "tool":
        cut -= 1
    return [*messages[:head], *messages[cut:]]
