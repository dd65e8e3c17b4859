"""Responses API wire format for :class:`~agentkit.models.responses.OpenAIResponsesModel`.

Turns agentkit :class:`Message` values into Responses *input items* (so a conversation
written with the chat backend continues here, and back), builds the request body, and
reads a response body or its event stream into a :class:`ModelResponse`. Reasoning items
come back on the assistant message (``Message.reasoning``) and are sent again on the next
turns, as the API wants with ``store=false``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentkit.errors import ModelError
from agentkit.messages import Message, ToolCall, normalize_arguments
from agentkit.models._openai_wire import MalformedResponse, StreamErrorEvent
from agentkit.models.base import ModelRequest, ModelResponse
from agentkit.usage import Usage

__all__ = [
    "UNSUPPORTED_SETTINGS",
    "EventReader",
    "build_body",
    "estimate_tokens",
    "input_items",
    "parse_response",
    "parse_usage",
]

UNSUPPORTED_SETTINGS = ("stop", "presence_penalty", "frequency_penalty", "logit_bias", "seed")
"""ModelSettings the Responses API has no field for (left out of the body)."""

_INCOMPLETE_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _part(part: Any) -> Any:
    """A chat-completions user content part as a Responses input part."""
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    if kind == "text":
        return {"type": "input_text", "text": part.get("text", "")}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        out: dict[str, Any] = {"type": "input_image", "image_url": url}
        if isinstance(image, dict) and image.get("detail"):
            out["detail"] = image["detail"]
        return out
    return part  # already a Responses part (input_file, input_audio, ...)


def input_items(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The Responses ``input`` for a conversation of agentkit messages."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            items.append(
                {"type": "function_call_output", "call_id": m.tool_call_id, "output": m.text}
            )
        elif m.role == "assistant":
            items.extend(m.reasoning)
            if m.content:
                items.append({"role": "assistant", "content": m.text})
            items.extend(
                {"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}
                for c in m.tool_calls
            )
        elif isinstance(m.content, list):
            items.append({"role": m.role, "content": [_part(p) for p in m.content]})
        else:
            items.append({"role": m.role, "content": m.content or ""})
    return items


def _text_format(response_format: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions ``response_format`` as the Responses ``text.format``."""
    if response_format.get("type") == "json_schema" and isinstance(
        response_format.get("json_schema"), dict
    ):
        return {"type": "json_schema", **response_format["json_schema"]}
    return response_format


def build_body(
    model: str,
    request: ModelRequest,
    *,
    stream: bool,
    store: bool,
    include: Sequence[str],
    user_field: str,
    reasoning: dict[str, Any] | None = None,
    previous_response_id: str | None = None,
    skip: int = 0,
) -> dict[str, Any]:
    """The JSON body of one Responses request. ``skip`` leaves out the first messages,
    which the server already holds under ``previous_response_id``."""
    s = request.settings
    body: dict[str, Any] = {
        "model": model,
        "input": input_items(request.messages[skip:]),
        "store": store,
    }
    if previous_response_id is not None:
        body["previous_response_id"] = previous_response_id
    if include:
        body["include"] = list(include)
    if request.tools:
        tools = []
        for definition in request.tools:
            tool: dict[str, Any] = {
                "type": "function",
                "name": definition.name,
                "description": definition.description,
                "parameters": definition.parameters,
                "strict": bool(definition.strict),
            }
            tools.append(tool)
        body["tools"] = tools
    fields = (
        ("temperature", s.temperature),
        ("top_p", s.top_p),
        ("max_output_tokens", s.max_tokens),
        (user_field, s.user),
        ("reasoning", reasoning),
    )
    body.update((name, value) for name, value in fields if value is not None)
    response_format = request.response_format or s.response_format
    if response_format is not None:
        body["text"] = {"format": _text_format(response_format)}
    if s.tool_choice in ("auto", "required", "none"):
        body["tool_choice"] = s.tool_choice
    elif s.tool_choice is not None:
        body["tool_choice"] = {"type": "function", "name": s.tool_choice}
    if s.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = s.parallel_tool_calls
    if stream:
        body["stream"] = True
    body.update(s.extra_body or {})
    return body


def estimate_tokens(body: dict[str, Any], default_output: int = 512) -> int:
    """About four characters a token for the input, plus the output allowance (for rate
    limiting)."""
    chars = len(json.dumps(body["input"])) + (
        len(json.dumps(body["tools"])) if "tools" in body else 0
    )
    return chars // 4 + int(body.get("max_output_tokens") or default_output)


def parse_usage(raw: Any, requests: int = 1) -> Usage:
    """A :class:`Usage` from a Responses ``usage`` object (missing fields are 0)."""
    if not isinstance(raw, dict):
        return Usage(requests=requests)

    def number(value: Any) -> int:
        return value if isinstance(value, int) else 0

    def detail(group: str, key: str) -> int:
        details = raw.get(group)
        return number(details.get(key)) if isinstance(details, dict) else 0

    input_tokens, output_tokens = number(raw.get("input_tokens")), number(raw.get("output_tokens"))
    usage = Usage(
        requests,
        input_tokens,
        output_tokens,
        number(raw.get("total_tokens")) or input_tokens + output_tokens,
    )
    usage.cached_tokens = detail("input_tokens_details", "cached_tokens")
    usage.reasoning_tokens = detail("output_tokens_details", "reasoning_tokens")
    return usage


def _clip(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _message_from_output(output: list[Any]) -> Message:
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[dict[str, Any]] = []
    for item in output:
        if not isinstance(item, dict):
            raise MalformedResponse(f"an output item is not a JSON object: {_clip(item)}")
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text":
                    texts.append(str(part.get("text", "")))
                elif part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal", "")))
        elif kind == "function_call":
            call_id = item.get("call_id") or item.get("id") or ""
            arguments = normalize_arguments(item.get("arguments"))
            calls.append(ToolCall(str(call_id), str(item.get("name") or ""), arguments))
        elif kind == "reasoning":
            # "status" is output-only: the API refuses it on input items.
            reasoning.append({k: v for k, v in item.items() if k != "status"})
    return Message(
        "assistant",
        "".join(texts) if texts else None,
        tuple(calls),
        refusal="".join(refusals) if refusals else None,
        reasoning=tuple(reasoning),
    )


def parse_response(data: Any, requests: int = 1) -> tuple[ModelResponse, str | None]:
    """Read a response object (already JSON-decoded): the :class:`ModelResponse` and the
    response's id. Raises :class:`~agentkit.errors.ModelError` for ``status: "failed"``."""
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {type(data).__name__}")
    status = data.get("status")
    if status == "failed":
        raw_error = data.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        raise ModelError(
            f"the model failed to answer (response status 'failed', code "
            f"{error.get('code')!r}): {error.get('message') or 'no message'}. Retry later; "
            "if it keeps failing, shorten or simplify the request."
        )
    output = data.get("output")
    if not isinstance(output, list):
        raise MalformedResponse(f"no output list in the response: {_clip(data)}")
    message = _message_from_output(output)
    finish = "tool_calls" if message.tool_calls else "stop"
    if status == "incomplete":
        details = data.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        finish = _INCOMPLETE_FINISH.get(str(reason), str(reason or "incomplete"))
    model = data.get("model") if isinstance(data.get("model"), str) else None
    response_id = data.get("id") if isinstance(data.get("id"), str) else None
    return ModelResponse(message, finish, parse_usage(data.get("usage"), requests), model), (
        response_id
    )


class EventReader:
    """Reads the Responses event stream (``response.output_text.delta``,
    ``response.function_call_arguments.delta``, ``response.output_item.done``, ...,
    ``response.completed``) into one :class:`ModelResponse`.

    The final ``response.completed`` (or ``.incomplete``) event holds the whole response;
    items collected from ``output_item`` events stand in when a server leaves its
    ``output`` empty.
    """

    def __init__(self) -> None:
        self.chunks = 0
        self.final: dict[str, Any] | None = None
        self.response_id: str | None = None
        self._items: dict[int, dict[str, Any]] = {}
        self._text: dict[int, list[str]] = {}
        self._arguments: dict[int, list[str]] = {}

    @property
    def finished(self) -> bool:
        """Whether a final event arrived."""
        return self.final is not None

    def feed(self, event: Any) -> str:
        """Merge one event; return the text it adds."""
        if not isinstance(event, dict):
            raise MalformedResponse(f"stream event is not a JSON object: {_clip(event)}")
        kind = event.get("type")
        self.chunks += 1
        if kind == "error":
            raise StreamErrorEvent(
                {k: event.get(k) for k in ("code", "message", "param") if k in event}
            )
        if kind == "response.failed":
            response = event.get("response")
            error = response.get("error") if isinstance(response, dict) else None
            raise StreamErrorEvent(error or {"message": "response failed"})
        index = event.get("output_index")
        index = index if isinstance(index, int) else 0
        if kind == "response.output_text.delta":
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                self._text.setdefault(index, []).append(delta)
                return delta
        elif kind == "response.function_call_arguments.delta":
            delta = event.get("delta")
            if isinstance(delta, str):
                self._arguments.setdefault(index, []).append(delta)
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = event.get("item")
            if isinstance(item, dict):
                self._items[index] = item
        elif kind in _TERMINAL:
            response = event.get("response")
            if not isinstance(response, dict):
                raise MalformedResponse(f"a {kind} event without a response: {_clip(event)}")
            self.final = response
        elif kind == "response.created":
            response = event.get("response")
            if isinstance(response, dict) and isinstance(response.get("id"), str):
                self.response_id = response["id"]
        return ""

    def check_complete(self) -> None:
        """Raise :class:`MalformedResponse` if the stream ended without a final event."""
        if self.final is None:
            raise MalformedResponse("the stream ended without response.completed")

    def _collected(self) -> list[dict[str, Any]]:
        output = []
        for index in sorted(self._items):
            item = dict(self._items[index])
            if item.get("type") == "message" and index in self._text and not item.get("content"):
                text = "".join(self._text[index])
                item["content"] = [{"type": "output_text", "text": text}]
            if item.get("type") == "function_call" and index in self._arguments:
                item.setdefault("arguments", "".join(self._arguments[index]))
                if not item["arguments"]:
                    item["arguments"] = "".join(self._arguments[index])
            output.append(item)
        return output

    def result(self, requests: int = 1) -> ModelResponse:
        """The complete response."""
        final = dict(self.final or {"status": "completed"})
        if not final.get("output"):
            final["output"] = self._collected()
        response, response_id = parse_response(final, requests)
        self.response_id = response_id or self.response_id
        return response
