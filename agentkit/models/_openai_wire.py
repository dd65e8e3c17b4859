"""Chat-completions wire format for :class:`~agentkit.models.openai.OpenAIChatModel`.

Builds request bodies from a :class:`ModelRequest`, and reads response bodies and stream
chunks (plain JSON dicts) straight into agentkit's own types, skipping the ``openai``
package's pydantic objects, which cost more than the rest of a turn.

The stream merger tolerates what real servers send: tool-call ``id`` only in the first
chunk, the ``name`` repeated in every chunk, a missing ``index``, several calls at index 0
told apart by id, ``choices: []`` chunks, a usage-only final chunk, and arguments sent as
objects or double-encoded JSON.
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
    body: dict[str, Any] = {
        "model": model,
        "messages": [m.to_openai() for m in request.messages],
    }
    if request.tools:
        body["tools"] = [t.to_openai() for t in request.tools]
    if s.temperature is not None:
        body["temperature"] = s.temperature
    if s.top_p is not None:
        body["top_p"] = s.top_p
    if s.max_tokens is not None:
        body[max_tokens_field] = s.max_tokens
    if s.stop is not None:
        body["stop"] = s.stop
    if s.presence_penalty is not None:
        body["presence_penalty"] = s.presence_penalty
    if s.frequency_penalty is not None:
        body["frequency_penalty"] = s.frequency_penalty
    if s.logit_bias is not None:
        body["logit_bias"] = s.logit_bias
    if s.seed is not None:
        body["seed"] = s.seed
    response_format = request.response_format or s.response_format
    if response_format is not None:
        body["response_format"] = response_format
    if s.tool_choice is not None:
        if s.tool_choice in ("auto", "required", "none"):
            body["tool_choice"] = s.tool_choice
        else:
            body["tool_choice"] = {"type": "function", "function": {"name": s.tool_choice}}
    # parallel_tool_calls is only meaningful (and some servers only accept it) with tools.
    if s.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = s.parallel_tool_calls
    if s.user is not None:
        body[user_field] = s.user
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if s.extra_body:
        body.update(s.extra_body)
    return body


def estimate_tokens(body: dict[str, Any], default_output: int = 512) -> int:
    """A cheap upper-ish estimate of the tokens one request spends (for rate limiting):
    about four characters a token for the prompt, plus the output allowance."""
    chars = 0
    for message in body.get("messages", ()):
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif content:
            chars += len(json.dumps(content))
        for call in message.get("tool_calls") or ():
            chars += len(call["function"]["arguments"]) + len(call["function"]["name"])
        chars += 16
    if "tools" in body:
        chars += len(json.dumps(body["tools"]))
    output = body.get("max_completion_tokens") or body.get("max_tokens") or default_output
    return chars // 4 + int(output)


def parse_usage(raw: Any, requests: int = 1) -> Usage:
    """A :class:`Usage` from a chat-completions ``usage`` object (missing fields are 0)."""
    if not isinstance(raw, dict):
        return Usage(requests=requests)
    prompt = _int(raw.get("prompt_tokens"))
    completion = _int(raw.get("completion_tokens"))
    total = _int(raw.get("total_tokens")) or prompt + completion
    return Usage(requests, prompt, completion, total)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        # Some servers answer with content parts instead of a string.
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return str(content)


def parse_completion(data: Any) -> ModelResponse:
    """Read a non-streamed chat-completions body (already JSON-decoded)."""
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse(f"no choices in the response: {_clip(data)}")
    choice = choices[0]
    raw_message = choice.get("message")
    if not isinstance(raw_message, dict):
        raise MalformedResponse(f"choices[0] has no message: {_clip(choice)}")
    calls: list[ToolCall] = []
    raw_calls = raw_message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise MalformedResponse(f"tool_calls is not a list: {_clip(raw_message)}")
    for raw in raw_calls:
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict):
            raise MalformedResponse(f"a tool call has no function object: {_clip(raw)}")
        calls.append(
            ToolCall(
                str(raw.get("id") or ""),
                str(function.get("name") or ""),
                normalize_arguments(function.get("arguments")),
            )
        )
    legacy = raw_message.get("function_call")
    if not calls and isinstance(legacy, dict) and legacy.get("name"):
        # Servers on the pre-tools "functions" API answer with a single function_call.
        calls.append(
            ToolCall("", str(legacy["name"]), normalize_arguments(legacy.get("arguments")))
        )
    message = Message(
        "assistant",
        _text(raw_message.get("content")),
        tuple(calls),
        refusal=raw_message.get("refusal"),
    )
    finish = choice.get("finish_reason") or ("tool_calls" if calls else "stop")
    if finish == "function_call":
        finish = "tool_calls"
    return ModelResponse(message, finish, parse_usage(data.get("usage")), data.get("model"))


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
    """Accumulates streamed chat-completions chunks into one :class:`ModelResponse`.

    Feed each decoded chunk to :meth:`feed`, which returns the text it adds (or ``""``);
    call :meth:`result` at the end.
    """

    def __init__(self) -> None:
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
        if self.model is None and chunk.get("model"):
            self.model = chunk["model"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = chunk.get("choices")
        if not choices:
            return ""
        choice = choices[0]
        if not isinstance(choice, dict):
            raise MalformedResponse(f"stream choice is not a JSON object: {_clip(choice)}")
        self.choices = True
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta") or choice.get("message")
        if not isinstance(delta, dict):
            return ""
        raw_calls = delta.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise MalformedResponse(f"tool_calls is not a list: {_clip(delta)}")
        for raw in raw_calls:
            self._merge_call(raw)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            self._merge_call({"index": 0, "function": legacy})
        refusal = delta.get("refusal")
        if refusal:
            self._refusal.append(refusal)
        text = _text(delta.get("content"))
        if text:
            self._text.append(text)
            return text
        return ""

    def _merge_call(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            raise MalformedResponse(f"tool-call delta is not a JSON object: {_clip(raw)}")
        index = raw.get("index")
        if not isinstance(index, int):
            index = None
        call_id = raw.get("id") or None
        pos: int | None = None
        if call_id is not None and call_id in self._by_id:
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
        function = raw.get("function") or {}
        if not isinstance(function, dict):
            raise MalformedResponse(f"a tool-call delta's function is not an object: {_clip(raw)}")
        name = function.get("name")
        # Some servers repeat the full name in every chunk; others split it.
        if name and name != call.name:
            call.name += name
        arguments = function.get("arguments")
        if arguments is not None:
            call.arguments.append(
                arguments if isinstance(arguments, str) else normalize_arguments(arguments)
            )

    @property
    def has_tool_calls(self) -> bool:
        """Whether any tool-call delta has arrived."""
        return bool(self._calls)

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
