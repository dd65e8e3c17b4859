"""Scripted test doubles for the Model interface: ScriptedModel and FunctionModel.

Both record every :class:`~agentkit.models.ModelRequest` they receive in ``.requests`` so a
test can assert what the agent sent.
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from agentkit.errors import ConfigurationError
from agentkit.messages import Message, ToolCall
from agentkit.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
    closing_stream,
)
from agentkit.usage import Usage

__all__ = [
    "FunctionModel",
    "ScriptItem",
    "ScriptedModel",
    "stream_words",
    "text_response",
    "tool_call_response",
]

ScriptItem = ModelResponse | Message | str | BaseException
"""One scripted reply: a ModelResponse, an assistant Message, plain text, or an exception
to raise from the model."""

_ids = itertools.count(1)


def text_response(
    text: str, *, finish_reason: str = "stop", usage: Usage | None = None
) -> ModelResponse:
    """A response with assistant ``text``."""
    return ModelResponse(
        Message.assistant(text), finish_reason, usage if usage is not None else Usage(requests=1)
    )


def tool_call_response(
    *calls: tuple[str, Mapping[str, Any] | str] | str,
    content: str | None = None,
    finish_reason: str = "tool_calls",
    usage: Usage | None = None,
) -> ModelResponse:
    """A response calling tools: each call is a tool name or ``(name, arguments)``.

    ``tool_call_response(("get_weather", {"city": "Paris"}), "get_time")``
    """
    built = []
    for call in calls:
        name, arguments = (call, {}) if isinstance(call, str) else call
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        built.append(ToolCall(f"call_{next(_ids)}", name, text))
    return ModelResponse(
        Message.assistant(content, built),
        finish_reason,
        usage if usage is not None else Usage(requests=1),
    )


def _as_response(item: ModelResponse | Message | str) -> ModelResponse:
    if isinstance(item, ModelResponse):
        return item
    if isinstance(item, Message):
        if item.role != "assistant":
            raise ConfigurationError(
                f"a scripted reply must be an assistant message, got role {item.role!r}"
            )
        return ModelResponse(item, "tool_calls" if item.tool_calls else "stop", Usage(requests=1))
    if isinstance(item, str):
        return text_response(item)
    raise ConfigurationError(
        f"a scripted reply must be a ModelResponse, an assistant Message, a str or an "
        f"exception; got {type(item).__name__}"
    )


async def stream_words(response: ModelResponse) -> AsyncIterator[StreamItem]:
    """Stream a complete ``response`` as a test double does: its text in word-sized
    deltas, then the response itself."""
    for piece in _split_deltas(response.message.text):
        yield TextDelta(piece)
    yield response


def _split_deltas(text: str) -> list[str]:
    # Word-sized deltas, like a real server, so streaming consumers see several pieces.
    if not text:
        return []
    parts: list[str] = []
    start = 0
    for index, char in enumerate(text):
        if char == " " and index > start:
            parts.append(text[start:index])
            start = index
    parts.append(text[start:])
    return parts


class ScriptedModel(Model):
    """Replays a list of replies, one per request, and records every request.

    >>> model = ScriptedModel([tool_call_response(("get_weather", {"city": "Paris"})),
    ...                        "It is 14°C in Paris."])

    Streaming splits each reply's text into word-sized deltas. Running out of replies
    raises a ``ConfigurationError`` that says how many were scripted.
    """

    supports_json_schema = True
    is_test_double = True

    def __init__(self, responses: Iterable[ScriptItem], *, name: str = "scripted") -> None:
        self.name = name
        self._script: list[ScriptItem] = list(responses)
        self._position = 0
        self.requests: list[ModelRequest] = []

    @property
    def remaining(self) -> int:
        """How many scripted replies have not been used yet."""
        return len(self._script) - self._position

    def _next(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        if self._position >= len(self._script):
            raise ConfigurationError(
                f"ScriptedModel {self.name!r} ran out of replies: it was given "
                f"{len(self._script)} and received request number {len(self.requests)}; "
                "add more replies to the script"
            )
        item = self._script[self._position]
        self._position += 1
        if isinstance(item, BaseException):
            raise item
        return _as_response(item)

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Return the next scripted reply."""
        return self._next(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Yield the next scripted reply's text in word-sized deltas, then the reply."""
        async for item in stream_words(self._next(request)):
            yield item


ModelFunction = Callable[
    [ModelRequest], "ModelResponse | Message | str | Awaitable[ModelResponse | Message | str]"
]
StreamFunction = Callable[[ModelRequest], AsyncIterator["str | ModelResponse"]]


class FunctionModel(Model):
    """A model whose replies are computed by your function of the request.

    ``function(request)`` (sync or async) returns a ModelResponse, an assistant Message or
    text. ``stream_function(request)``, if given, is an async generator yielding text
    deltas (``str``) and, optionally, a final ModelResponse; without it, streaming splits
    ``function``'s reply into word-sized deltas.
    """

    is_test_double = True

    def __init__(
        self,
        function: ModelFunction,
        *,
        stream_function: StreamFunction | None = None,
        name: str = "function",
        supports_json_schema: bool = True,
    ) -> None:
        self.name = name
        self.function = function
        self.stream_function = stream_function
        self.supports_json_schema = supports_json_schema
        self.requests: list[ModelRequest] = []

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Call the function and return its reply."""
        self.requests.append(request)
        reply = self.function(request)
        if inspect.isawaitable(reply):
            reply = await reply
        return _as_response(reply)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Stream through ``stream_function``, or split ``function``'s reply into deltas."""
        if self.stream_function is None:
            async for whole in stream_words(await self.request(request)):
                yield whole
            return
        self.requests.append(request)
        text: list[str] = []
        final: ModelResponse | None = None
        # Like a real stream: a consumer that stops early ends generation now.
        async with closing_stream(self.stream_function(request)) as items:
            async for item in items:
                if isinstance(item, str):
                    text.append(item)
                    yield TextDelta(item)
                else:
                    final = item
        yield final if final is not None else text_response("".join(text))
