"""Chat-completions wire format for :class:`~agentkit.models.openai.OpenAIChatModel`.

Builds request bodies from a :class:`ModelRequest`, and reads response bodies and stream
chunks (plain JSON dicts) straight into agentkit's own types, skipping the ``openai``
package's pydantic objects, which cost more than the rest of a turn. Both go through
:class:`StreamMerger` (a non-streamed body is one chunk holding the whole message), so
tool calls are normalised in one place.

The merger tolerates what real servers send: tool-call ``id`` only in the first chunk, the
``name`` repeated in every chunk, a missing ``index``, several calls at index 0 told apart
by id, ``choices: []`` chunks, a usage-only final chunk, the pre-tools ``function_call``,
content as a list of parts, and arguments sent as objects or double-encoded JSON.
"""

from __future__ import annotations

import json
from typing import Any

from agentkit.messages import Message, ToolCall, normalize_arguments
from agentkit.models.base import ModelRequest, ModelResponse
from agentkit.usage import Usage

__all__ = [
    "MalformedResponse",
    "StreamErrorEvent",
    "StreamMerger",
    "build_body",
    "estimate_tokens",
    "parse_completion",
    "parse_usage",
]

# ModelSettings fields sent under their own name when set.
_SAME_NAME = (
    "temperature", "top_p", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "seed"
)


class MalformedResponse(ValueError):
    """The server's body is not a chat completion (message says what is wrong)."""


class StreamErrorEvent(ValueError):
    """The server sent an error object inside a stream (``error`` holds it)."""

    def __init__(self, error: Any) -> None:
        super().__init__("error event in the stream")
        self.error = error


def build_body(
    model: str,
    request: ModelRequest,
    *,
    stream: bool,
    max_tokens_field: str,
    user_field: str,
) -> dict[str, Any]:
    """The JSON body of one chat-completions request.

    ``max_tokens_field`` is ``"max_completion_tokens"`` (OpenAI) or ``"max_tokens"``
    (most other servers); ``user_field`` is ``"safety_identifier"`` (OpenAI) or ``"user"``.
    ``extra_headers`` and ``timeout`` are not part of the body; the caller sends them.
    """
    s = request.settings
    body: dict[str, Any] = {"model": model, "messages": [m.to_openai() for m in request.messages]}
    if request.tools:
        body["tools"] = [t.to_openai() for t in request.tools]
    fields = [(name, getattr(s, name)) for name in _SAME_NAME]
    fields += [
        (max_tokens_field, s.max_tokens),
        ("response_format", request.response_format or s.response_format),
        # An explicit safety_identifier takes that field; a user id then goes as "user".
        ("user" if s.safety_identifier is not None else user_field, s.user),
        ("safety_identifier", s.safety_identifier),
        ("prompt_cache_key", s.prompt_cache_key),
    ]
    body.update((name, value) for name, value in fields if value is not None)
    if s.tool_choice in ("auto", "required", "none"):
        body["tool_choice"] = s.tool_choice
    elif s.tool_choice is not None:
        body["tool_choice"] = {"type": "function", "function": {"name": s.tool_choice}}
    # parallel_tool_calls is only meaningful (and some servers only accept it) with tools.
    if s.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = s.parallel_tool_calls
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(s.extra_body or {})
    return body


def estimate_tokens(body: dict[str, Any], default_output: int = 512) -> int:
    """A cheap upper-ish estimate of the tokens one request spends (for rate limiting):
    about four characters a token for the prompt, plus the output allowance."""
    chars = len(json.dumps(body["tools"])) if "tools" in body else 0
    for message in body.get("messages", ()):
        content = message.get("content")
        chars += 16 + (len(content) if isinstance(content, str) else len(json.dumps(content)))
        for call in message.get("tool_calls") or ():
            chars += len(call["function"]["arguments"]) + len(call["function"]["name"])
    output = body.get("max_completion_tokens") or body.get("max_tokens") or default_output
    return chars // 4 + int(output)


def parse_usage(raw: Any, requests: int = 1) -> Usage:
    """A :class:`Usage` from a chat-completions ``usage`` object (missing fields are 0)."""
    if not isinstance(raw, dict):
        return Usage(requests=requests)
    prompt, completion, total = (
        value if isinstance(value := raw.get(key), int) else 0
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    )
    usage = Usage(requests, prompt, completion, total or prompt + completion)
    usage.cached_tokens = _detail(raw, "prompt_tokens_details", "cached_tokens")
    usage.reasoning_tokens = _detail(raw, "completion_tokens_details", "reasoning_tokens")
    return usage


def _detail(raw: dict[str, Any], group: str, key: str) -> int:
    details = raw.get(group)
    value = details.get(key) if isinstance(details, dict) else None
    return value if isinstance(value, int) else 0


def parse_completion(data: Any) -> ModelResponse:
    """Read a non-streamed chat-completions body (already JSON-decoded)."""
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse(f"no choices in the response: {_clip(data)}")
    if not isinstance(choices[0].get("message"), dict):
        raise MalformedResponse(f"choices[0] has no message: {_clip(choices[0])}")
    merger = StreamMerger(whole=True)
    merger.feed(data)
    return merger.result()


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        # Some servers answer with content parts instead of a string.
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return str(content)


def _clip(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


class _PartialCall:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class StreamMerger:
    """Accumulates chat-completions chunks into one :class:`ModelResponse`.

    Feed each decoded chunk to :meth:`feed`, which returns the text it adds (or ``""``);
    call :meth:`result` at the end. ``whole=True`` reads a non-streamed body: each tool
    call in it is a call of its own, whatever its id or index.
    """

    def __init__(self, *, whole: bool = False) -> None:
        self.whole = whole
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._calls: list[_PartialCall] = []
        self._by_index: dict[int, int] = {}
        self._by_id: dict[str, int] = {}
        self._last = -1
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.chunks = 0
        self.choices = False

    def feed(self, chunk: Any) -> str:
        """Merge one chunk; return the assistant text it carries. Raises
        :class:`StreamErrorEvent` for an error object, :class:`MalformedResponse` for a
        chunk that is not a chat-completion chunk."""
        if not isinstance(chunk, dict):
            raise MalformedResponse(f"stream chunk is not a JSON object: {_clip(chunk)}")
        if chunk.get("error"):
            raise StreamErrorEvent(chunk["error"])
        self.chunks += 1
        self.model = self.model or chunk.get("model") or None
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not choices:
            return ""
        choice = choices[0]
        if not isinstance(choice, dict):
            raise MalformedResponse(f"stream choice is not a JSON object: {_clip(choice)}")
        self.choices = True
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        delta = choice.get("delta") or choice.get("message")
        if not isinstance(delta, dict):
            return ""
        raw_calls = delta.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise MalformedResponse(f"tool_calls is not a list: {_clip(delta)}")
        for raw in raw_calls:
            self._merge_call(raw)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict) and not raw_calls:
            # Servers on the pre-tools "functions" API send a single function_call.
            self._merge_call({"index": 0, "function": legacy})
        if delta.get("refusal"):
            self._refusal.append(delta["refusal"])
        text = _text(delta.get("content"))
        if text or (self.whole and text is not None):  # a whole message's "" stays ""
            self._text.append(text)
        return text or ""

    @property
    def finished(self) -> bool:
        """Whether a finish reason arrived (a stream without one, nor [DONE], was cut)."""
        return self.finish_reason is not None

    def check_complete(self) -> None:
        """Raise :class:`MalformedResponse` if no chunk had choices (the same answer as a
        non-streamed body without choices)."""
        if not self.choices:
            raise MalformedResponse("no choices in the stream")

    def _merge_call(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise MalformedResponse(f"tool-call delta is not a JSON object: {_clip(raw)}")
        function = raw.get("function")
        if function is None and not self.whole:
            function = {}  # a delta with only an id or an index
        if not isinstance(function, dict):
            raise MalformedResponse(f"a tool call's function is not an object: {_clip(raw)}")
        index = raw.get("index") if isinstance(raw.get("index"), int) else None
        call_id = raw.get("id") or None
        pos: int | None = None
        if self.whole:
            pass  # each call of a complete message is a call of its own
        elif call_id is not None and call_id in self._by_id:
            pos = self._by_id[call_id]
        elif index is not None and index in self._by_index:
            candidate = self._by_index[index]
            existing = self._calls[candidate].id
            # A new id at an index already in use is a new call (servers that put every
            # call at index 0).
            if call_id is None or not existing or existing == call_id:
                pos = candidate
        elif index is None and call_id is None and self._calls:
            pos = self._last
        if pos is None:
            pos = len(self._calls)
            self._calls.append(_PartialCall())
        if index is not None:
            self._by_index[index] = pos
        call = self._calls[pos]
        if call_id is not None and not call.id:
            call.id = str(call_id)
            self._by_id[call.id] = pos
        self._last = pos
        name = function.get("name")
        # Some servers repeat the full name in every chunk; others split it.
        if name and name != call.name:
            call.name += str(name)
        arguments = function.get("arguments")
        if arguments is not None:
            call.arguments.append(
                arguments if isinstance(arguments, str) else normalize_arguments(arguments)
            )

    def result(self, requests: int = 1) -> ModelResponse:
        """The complete response from everything fed so far."""
        calls = tuple(
            ToolCall(c.id, c.name, normalize_arguments("".join(c.arguments)))
            for c in self._calls
        )
        text = "".join(self._text) if self._text else None
        refusal = "".join(self._refusal) if self._refusal else None
        message = Message("assistant", text, calls, refusal=refusal)
        finish = self.finish_reason or ("tool_calls" if calls else "stop")
        if finish == "function_call":
            finish = "tool_calls"
        return ModelResponse(message, finish, parse_usage(self.usage, requests), self.model)
