"""History policies: which part of a long conversation is sent to the model.

A policy is a function from the whole conversation to the messages sent; nothing stored
is ever changed. The built-in policies keep the leading instructions, never split a tool
call from its result and never start the sent part with a tool result, so any policy's
output is a history every server accepts. The same conversation always gives the same
messages, so what was sent can be reproduced from what is stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from agentkit.errors import ConfigurationError
from agentkit.messages import Message, to_openai
from agentkit.models.base import Model, ModelRequest
from agentkit.models.wrapping import wrap

__all__ = [
    "HistoryPolicy",
    "MemorySummaries",
    "SummaryCache",
    "estimate_tokens",
    "keep_last",
    "keep_tokens",
    "summarize",
]

HistoryPolicy = Callable[[Sequence[Message]], "list[Message] | Awaitable[list[Message]]"]
"""Maps the whole conversation (instructions first) to the messages to send (sync or
async)."""


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


class SummaryCache(Protocol):
    """Where ``summarize`` keeps its summaries: in memory, or with a stored thread."""

    async def get(self, key: str) -> str | None:
        """The summary stored under ``key``, if any."""
        ...

    async def put(self, key: str, text: str) -> None:
        """Keep ``text`` under ``key``."""
        ...


class MemorySummaries:
    """Summaries kept in this process (the most recent ``size``)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.items: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        """The summary stored under ``key``, if any."""
        return self.items.get(key)

    async def put(self, key: str, text: str) -> None:
        """Keep ``text`` under ``key``, forgetting the oldest beyond ``size``."""
        self.items[key] = text
        while len(self.items) > self.size:
            del self.items[next(iter(self.items))]


_SUMMARY_PROMPT = (
    "You summarize conversations between a user and an assistant that uses tools. Write "
    "a short, factual summary of the conversation below (and of the earlier summary, if "
    "there is one): what the user wants, the facts and tool results that matter, what was "
    "decided and what is still open. Plain text, no preamble."
)


class summarize:
    """Send the instructions, a summary of the older messages, and the last ones.

    Once the conversation is longer than ``keep_last + every`` messages, everything but
    about the last ``keep_last`` is replaced by one summary written by ``model``. The
    summary covers a prefix that grows in steps of ``every`` messages, so one summary
    serves ``every`` turns, and each new one extends the previous summary with the next
    messages only. On a stored thread the summaries are stored with it (as items that are
    never sent as messages) and reused by later runs, in any process; without a store
    they are kept in memory.

    Args:
        model: The model that writes summaries (a ``Model``, or a name like ``"local"``).
        keep_last: Messages always sent as they are.
        every: How many messages a new summary adds.
        prompt: The summarizer's instructions.
    """

    window: int | None = None

    def __init__(
        self,
        model: Model | str,
        *,
        keep_last: int = 20,
        every: int = 20,
        prompt: str = _SUMMARY_PROMPT,
        cache: SummaryCache | None = None,
    ) -> None:
        if keep_last < 1 or every < 1:
            raise ConfigurationError(
                f"summarize needs keep_last >= 1 and every >= 1, got {keep_last} and {every}"
            )
        self.model = model
        self.keep_last = keep_last
        self.every = every
        self.prompt = prompt
        self.cache: SummaryCache = cache if cache is not None else MemorySummaries()

    def with_cache(self, cache: SummaryCache) -> summarize:
        """This policy, keeping its summaries in ``cache`` (a stored thread's)."""
        return summarize(self.model, keep_last=self.keep_last, every=self.every,
                         prompt=self.prompt, cache=cache)

    async def __call__(self, messages: Sequence[Message]) -> list[Message]:
        head = _instructions(messages)
        body = list(messages[head:])
        covered = self._boundary(body, (len(body) - self.keep_last) // self.every)
        if covered == 0:
            return list(messages)
        summary = await self._summary(body, covered)
        note = Message.system(f"Summary of the earlier conversation:\n{summary}")
        return [*messages[:head], note, *body[covered:]]

    def _boundary(self, body: list[Message], step: int) -> int:
        """Where summary number ``step`` ends: ``step * every`` messages, moved back so
        that the messages sent as they are never start with a tool result."""
        cut = max(step, 0) * self.every
        while 0 < cut < len(body) and body[cut].role == "tool":
            cut -= 1
        return cut

    async def _summary(self, body: list[Message], covered: int) -> str:
        key = _digest(body[:covered])
        text = await self.cache.get(key)
        if text is not None:
            return text
        # Extend the latest earlier summary there is, instead of starting over.
        earlier, start = None, 0
        step = covered // self.every
        while step > 1 and earlier is None:
            step -= 1
            start = self._boundary(body, step)
            earlier = await self.cache.get(_digest(body[:start])) if start else None
        if earlier is None:
            start = 0
        text = await self._write(earlier, body[start:covered])
        await self.cache.put(key, text)
        return text

    async def _write(self, earlier: str | None, messages: list[Message]) -> str:
        model = self.model
        if isinstance(model, str):
            from agentkit.agent import resolve_model  # the agent layer resolves names

            model = self.model = resolve_model(model)
        lines = [f"Earlier summary:\n{earlier}\n"] if earlier else []
        for message in messages:
            text = message.text
            for call in message.tool_calls:
                text += f" [calls {call.name}({call.arguments})]"
            lines.append(f"{message.role}: {text}")
        request = ModelRequest(
            messages=[Message.system(self.prompt), Message.user("\n".join(lines))]
        )
        # Through the installed model wrappers, like the run's own requests: the request
        # blocker and cassettes apply to summaries too.
        response = await wrap(model).request(request)
        return response.message.text.strip()


def _digest(messages: Sequence[Message]) -> str:
    data = json.dumps(to_openai(messages), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()
