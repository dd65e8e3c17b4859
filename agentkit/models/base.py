"""The Model interface every backend implements, and the values that cross it.

A model takes a :class:`ModelRequest` (the whole conversation, tool definitions, settings)
and returns a :class:`ModelResponse` (one assistant message, a finish reason, usage), or
streams :class:`TextDelta` values followed by the final :class:`ModelResponse`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentkit.messages import Message
from agentkit.settings import ModelSettings
from agentkit.tools import ToolDefinition
from agentkit.usage import Usage

__all__ = [
    "FinishReason",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "StreamItem",
    "TextDelta",
    "ToolDefinition",
    "closing_stream",
]

FinishReason = str
"""``"stop"``, ``"tool_calls"``, ``"length"``, ``"content_filter"`` (or a server's own)."""


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One request to a model.

    Attributes:
        messages: The whole conversation, instructions first.
        tools: The tools the model may call.
        settings: Sampling and tool-choice settings for this request.
        response_format: A chat-completions ``response_format`` (JSON schema) when the
            run wants structured output from the message text, else None.
    """

    messages: list[Message]
    tools: list[ToolDefinition] = field(default_factory=list)
    settings: ModelSettings = field(default_factory=ModelSettings)
    response_format: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """A model's answer to one request: one assistant message, why it stopped, and usage."""

    message: Message
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=lambda: Usage(requests=1))
    model_name: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of assistant text, as it streams in."""

    text: str


StreamItem = TextDelta | ModelResponse
"""What :meth:`Model.stream` yields: text deltas, then exactly one final ModelResponse."""


class Model(abc.ABC):
    """A chat model backend. Subclass it and implement :meth:`request` (and optionally
    :meth:`stream`) to plug any model into agentkit.

    Attributes:
        name: A readable name for logs and errors (never contains a secret).
        supports_json_schema: Whether the backend honours a JSON-schema
            ``response_format``; when False, structured output uses a final-answer tool.
    """

    name: str = "model"
    supports_json_schema: bool = True

    @abc.abstractmethod
    async def request(self, request: ModelRequest) -> ModelResponse:
        """Send one request and return the complete response."""

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Yield :class:`TextDelta` values as text arrives, then the final ModelResponse.

        The default implementation calls :meth:`request` and yields its text in one delta.
        """
        response = await self.request(request)
        if response.message.text:
            yield TextDelta(response.message.text)
        yield response

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


ItemT = TypeVar("ItemT")


@asynccontextmanager
async def closing_stream(items: AsyncIterator[ItemT]) -> AsyncIterator[AsyncIterator[ItemT]]:
    """Iterate ``items`` and close it on leaving, even when the reader stops early, so a
    model's stream (an HTTP response, a generation) ends now rather than at garbage
    collection. Iterators without ``aclose`` are left as they are."""
    try:
        yield items
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()
