"""A fake OpenAI-compatible server speaking real HTTP on 127.0.0.1, scripted per request.

API summary::

    from agentkit.testing.fake_openai import (
        FakeOpenAIServer, FakeToolCall, RecordedRequest, Reply,
        text_reply, tool_call_reply, error_reply, rate_limit_reply,
        raw_reply, raw_stream_reply, malformed_reply, disconnect_reply,
        parallel_tools_handler,
    )

    with FakeOpenAIServer([text_reply("Hi!")]) as server:     # or server.start()/stop()
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key,
                                    max_retries=0)
        ...
        server.requests            # list[RecordedRequest(method, path, headers, body, raw)]

    FakeOpenAIServer(replies=(), *, handler=None, models=("gpt-4o-mini", "gpt-4o"),
                     api_key="sk-fake-...", require_api_key=False, headers=None,
                     host="127.0.0.1", port=0)
    server.base_url  "http://127.0.0.1:PORT/v1"     server.url  "http://127.0.0.1:PORT"
    server.enqueue(*replies)   # FIFO; one reply per POST /v1/chat/completions or /v1/responses
    server.enqueue(*replies, endpoint="embeddings" | "moderations")   # faults / raw bodies
    server.handler = fn        # fn(request_body: dict) -> Reply | str, used when the queue is empty
    server.pending             # replies still queued
    server.clear()             # forget recorded requests and queued replies
    server.batches             # /v1/files and /v1/batches: see agentkit.testing.fake_batches

Reply builders (a ``str`` anywhere a reply is expected means ``text_reply(str)``)::

    text_reply(content="", *, finish_reason="stop", refusal=None, usage=None, model=None, ...)
    tool_call_reply(*calls, content=None, finish_reason="tool_calls", usage=None, model=None, ...)
        # each call: FakeToolCall(name, arguments: dict | str = {}, id=None) or (name, args[, id])
    error_reply(status=500, message=None, *, type=None, code=None, param=None, body=None, ...)
    rate_limit_reply(retry_after=None, *, retry_after_ms=None, message=..., code=..., ...)
    raw_reply(body: JSON value | bytes, *, status=200, content_type="application/json", ...)
    raw_stream_reply(chunks: [dict | str | bytes], *, done=True, status=200, ...)
    malformed_reply(body=b'{"id": "chatcmpl-', *, status=200, ...)   # a non-JSON 200 body
    disconnect_reply(*, delay=0.0)                          # close before any response byte

Keyword arguments of the builders (where they apply; or ``reply.with_options(...)``):
``headers={...}`` (response headers),
``delay=seconds`` (wait before answering), ``drop_after=N`` (close the connection after N
stream events; for a non-streamed answer, after the head and half the body),
``chunk_delay=seconds`` (pause between stream events).

``POST /v1/responses`` renders the same replies as Responses objects (or their event
stream); ``/v1/embeddings`` and ``/v1/moderations`` answer deterministically when nothing
is queued for them (see :mod:`agentkit.testing._fake_endpoints`).

Text and tool-call replies are streamed automatically when the request has
``"stream": true``: a first delta with the role, the text one word per delta, each tool call
opened with its index, id, type and name, then its arguments in up to 3 fragments, a final
chunk with ``finish_reason``, a usage chunk with ``choices: []`` when
``stream_options.include_usage`` is true, then ``data: [DONE]``.

``parallel_tools_handler(calls=..., answer=...)`` is the standard benchmark workload: when
the last message is the user's it calls the tools in parallel; after tool results it
answers with text.

Run a standalone server (for benchmarks in another process)::

    python -m agentkit.testing.fake_openai --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal

from agentkit.testing import _fake_endpoints as _endpoints
from agentkit.testing._http import BackgroundHTTPServer, HTTPRequest, Responder
from agentkit.testing.fake_batches import FakeBatchAPI

__all__ = [
    "FakeOpenAIServer",
    "FakeToolCall",
    "Handler",
    "RecordedRequest",
    "Reply",
    "disconnect_reply",
    "error_reply",
    "malformed_reply",
    "parallel_tools_handler",
    "rate_limit_reply",
    "raw_reply",
    "raw_stream_reply",
    "text_reply",
    "tool_call_reply",
]

_log = logging.getLogger("agentkit")

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})
_WORD = re.compile(r"\s*\S+\s*$|\s*\S+|\s+")


# --------------------------------------------------------------------------- recorded requests


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received, as sent.

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: The request target, e.g. ``"/v1/chat/completions"`` (with any query string).
        headers: Header names lower-cased, e.g. ``headers["authorization"]``.
        body: The body parsed as JSON, or ``None`` when empty or not JSON.
        raw: The body bytes exactly as received.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes

    def __repr__(self) -> str:
        # Credentials stay readable in .headers but out of reprs (assertion messages, logs).
        shown = {k: "<redacted>" if k in _SECRET_HEADERS else v for k, v in self.headers.items()}
        return (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, headers={shown!r}, "
            f"body={self.body!r})"
        )


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class FakeToolCall:
    """A tool call the fake model makes.

    Attributes:
        name: The function name.
        arguments: A dict (sent as JSON) or a raw string sent verbatim, so malformed,
            empty or double-encoded arguments can be scripted.
        id: The call id; ``None`` lets the server make a unique ``call_...`` id.
        arguments_json: The arguments as they go on the wire (serialized once, here).
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None
    arguments_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Serialized once rather than per request: replies are reused by handlers/benchmarks.
        wire = self.arguments if isinstance(self.arguments, str) else _dumps(dict(self.arguments))
        object.__setattr__(self, "arguments_json", wire)


_Args = Mapping[str, Any] | str

ReplyKind = Literal["completion", "error", "raw", "stream", "disconnect"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer of the server. Build it with the ``*_reply`` functions.

    ``kind`` says how it is rendered: ``"completion"`` (a chat completion, streamed when the
    request asks for it), ``"error"`` and ``"raw"`` (a fixed body), ``"stream"`` (fixed SSE
    events) or ``"disconnect"`` (no response at all). Use :meth:`with_options` to add
    headers or faults to any reply.
    """

    kind: ReplyKind
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop_after: int | None = None
    chunk_delay: float = 0.0
    content: str | None = None
    deltas: tuple[str, ...] | None = None
    refusal: str | None = None
    tool_calls: tuple[FakeToolCall, ...] = ()
    finish_reason: str = "stop"
    usage: Mapping[str, Any] | None = None
    model: str | None = None
    body: Any = None
    chunks: tuple[Mapping[str, Any] | str | bytes, ...] = ()
    done: bool = True
    content_type: str = _JSON
    reasoning: str | None = None

    def with_options(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        drop_after: int | None = None,
        chunk_delay: float | None = None,
    ) -> Reply:
        """A copy with extra response headers and/or faults (see the module docstring)."""
        return replace(
            self,
            headers=self.headers + _headers(headers),
            delay=self.delay if delay is None else _non_negative("delay", delay),
            drop_after=self.drop_after if drop_after is None else _drop(drop_after),
            chunk_delay=(
                self.chunk_delay
                if chunk_delay is None
                else _non_negative("chunk_delay", chunk_delay)
            ),
        )


Handler = Callable[[dict[str, Any]], "Reply | str"]
"""Makes a reply from the request body when the script queue is empty."""

Endpoint = Literal["model", "embeddings", "moderations"]
"""Which script a reply joins: ``"model"`` (chat completions and responses),
``"embeddings"`` or ``"moderations"``."""


def _headers(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if not headers:
        return ()
    pairs = tuple((str(k).lower(), str(v)) for k, v in headers.items())
    for name, value in pairs:
        if any(c in name + value for c in "\r\n") or not name or ":" in name:
            raise ValueError(f"invalid response header {name!r}: {value!r}")
    return pairs


def _non_negative(name: str, value: float) -> float:
    if value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return float(value)


def _drop(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise ValueError(f"drop_after must be >= 0, got {value!r}")
    return value


def _faults(
    headers: Mapping[str, str] | None, delay: float, drop_after: int | None, chunk_delay: float
) -> dict[str, Any]:
    return {
        "headers": _headers(headers),
        "delay": _non_negative("delay", delay),
        "drop_after": _drop(drop_after),
        "chunk_delay": _non_negative("chunk_delay", chunk_delay),
    }


def text_reply(
    content: str | Sequence[str] | None = "",
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    usage: Mapping[str, Any] | None = None,
    model: str | None = None,
    reasoning: str | None = None,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
    drop_after: int | None = None,
    chunk_delay: float = 0.0,
) -> Reply:
    """An assistant message with text.

    Args:
        content: The text; a list of strings fixes the streamed deltas exactly (the message
            is their concatenation); ``None`` sends ``"content": null`` (e.g. with
            ``finish_reason="content_filter"``).
        finish_reason: ``"stop"``, ``"length"``, ``"content_filter"`` or any string.
        refusal: The message's ``refusal`` text, if the model refuses.
        usage: Overrides ``prompt_tokens`` / ``completion_tokens`` / ``total_tokens`` (or
            any usage field); missing numbers are estimated (request bytes / 4, words).
        model: The ``model`` field of the response (default: the request's model).
        reasoning: A reasoning summary; ``/v1/responses`` renders it as a reasoning item
            (with ``encrypted_content`` when the request includes it). Chat ignores it.
        headers: Extra response headers, e.g. ``{"x-request-id": "req_1"}``.
        delay: Seconds to wait before answering.
        drop_after: Close the connection after this many stream events.
        chunk_delay: Seconds between stream events.
    """
    deltas: tuple[str, ...] | None = None
    if content is not None and not isinstance(content, str):
        deltas = tuple(content)
        content = "".join(deltas)
    return Reply(
        kind="completion",
        content=content,
        deltas=deltas,
        refusal=refusal,
        finish_reason=finish_reason,
        usage=usage,
        model=model,
        reasoning=reasoning,
        **_faults(headers, delay, drop_after, chunk_delay),
    )


def tool_call_reply(
    *calls: FakeToolCall | tuple[str, Mapping[str, Any] | str] | tuple[str, _Args, str],
    content: str | None = None,
    finish_reason: str = "tool_calls",
    usage: Mapping[str, Any] | None = None,
    model: str | None = None,
    reasoning: str | None = None,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
    drop_after: int | None = None,
    chunk_delay: float = 0.0,
) -> Reply:
    """An assistant message calling one or more tools (several calls are parallel calls).

    Args:
        calls: Each a :class:`FakeToolCall` or a tuple ``(name, arguments)`` or
            ``(name, arguments, id)``; arguments are a dict or a raw JSON string.
        content: Text sent alongside the calls (``null`` when ``None``).
        finish_reason: Defaults to ``"tool_calls"``; ``"length"`` scripts a cut-off call.
        usage, model, reasoning, headers, delay, drop_after, chunk_delay: As for
            :func:`text_reply`.
    """
    if not calls:
        raise ValueError("tool_call_reply() needs at least one call")
    normalized = tuple(c if isinstance(c, FakeToolCall) else FakeToolCall(*c) for c in calls)
    return Reply(
        kind="completion",
        content=content,
        tool_calls=normalized,
        finish_reason=finish_reason,
        usage=usage,
        model=model,
        reasoning=reasoning,
        **_faults(headers, delay, drop_after, chunk_delay),
    )


_ERROR_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", None),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout", None),
    409: ("Conflict: please retry.", "invalid_request_error", None),
    422: ("Unprocessable request.", "invalid_request_error", None),
    429: ("Rate limit reached. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def error_reply(
    status: int = 500,
    message: str | None = None,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
) -> Reply:
    """An HTTP error with OpenAI's error body ``{"error": {message, type, param, code}}``.

    Args:
        status: The HTTP status, e.g. 400, 401, 404, 429, 500, 503.
        message, type, code, param: The error fields; message, type and code default to
            what OpenAI sends for that status (e.g. 429 → ``rate_limit_exceeded``).
        body: Replaces the whole JSON body (for servers with their own error shapes).
        headers: E.g. ``{"retry-after": "2"}`` or ``{"x-ratelimit-remaining-requests": "0"}``.
        delay: Seconds to wait before answering.
    """
    if not 400 <= status <= 599:
        raise ValueError(f"error_reply() needs a 4xx or 5xx status, got {status}")
    default_message, default_type, default_code = _ERROR_DEFAULTS.get(
        status,
        (f"HTTP {status}", "server_error" if status >= 500 else "invalid_request_error", None),
    )
    if body is None:
        body = {
            "error": {
                "message": default_message if message is None else message,
                "type": default_type if type is None else type,
                "param": param,
                "code": default_code if code is None else code,
            }
        }
    return Reply(kind="error", status=status, body=body, **_faults(headers, delay, None, 0.0))


def rate_limit_reply(
    retry_after: float | str | None = None,
    *,
    retry_after_ms: float | None = None,
    message: str = "Rate limit reached for requests. Please try again later.",
    code: str = "rate_limit_exceeded",
    type: str = "requests",
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
) -> Reply:
    """A 429 with ``retry-after`` (seconds, or an HTTP date string) and/or ``retry-after-ms``.

    For an exhausted quota use ``code="insufficient_quota", type="insufficient_quota"``.
    """
    extra: dict[str, str] = {}
    if retry_after is not None:
        extra["retry-after"] = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
    if retry_after_ms is not None:
        extra["retry-after-ms"] = f"{retry_after_ms:g}"
    extra.update(headers or {})
    return error_reply(429, message, type=type, code=code, headers=extra, delay=delay)


def raw_reply(
    body: Any,
    *,
    status: int = 200,
    content_type: str = _JSON,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
    drop_after: int | None = None,
) -> Reply:
    """Any body as is, streamed request or not: a JSON value, or ``bytes`` sent verbatim.

    Use it for quirky servers (missing fields, extra fields, odd types).
    """
    return Reply(
        kind="raw",
        status=status,
        body=body,
        content_type=content_type,
        **_faults(headers, delay, drop_after, 0.0),
    )


def malformed_reply(
    body: bytes = b'{"id": "chatcmpl-',
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
) -> Reply:
    """A response whose body is not valid JSON although it claims to be."""
    return raw_reply(body, status=status, headers=headers, delay=delay)


def raw_stream_reply(
    chunks: Iterable[Mapping[str, Any] | str | bytes],
    *,
    done: bool = True,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
    drop_after: int | None = None,
    chunk_delay: float = 0.0,
) -> Reply:
    """An SSE stream of exactly these events, whatever the request asked for.

    Args:
        chunks: A dict is sent as ``data: <json>\\n\\n``; a ``str`` or ``bytes`` is sent
            verbatim (write the SSE framing yourself: ``"data: ...\\n\\n"``, comments, events).
        done: Append ``data: [DONE]\\n\\n`` at the end.
        status, headers, delay, drop_after, chunk_delay: As for :func:`text_reply`.
    """
    return Reply(
        kind="stream",
        status=status,
        chunks=tuple(chunks),
        done=done,
        **_faults(headers, delay, drop_after, chunk_delay),
    )


def disconnect_reply(*, delay: float = 0.0) -> Reply:
    """Close the connection without sending any response byte (after ``delay`` seconds)."""
    return Reply(kind="disconnect", delay=_non_negative("delay", delay))


def parallel_tools_handler(
    calls: Sequence[FakeToolCall | tuple[str, Mapping[str, Any] | str]] = (
        FakeToolCall("get_weather", {"city": "Paris"}),
        FakeToolCall("get_time", {"timezone": "Europe/Paris"}),
    ),
    *,
    answer: str = "It is sunny in Paris and the time is 12:00.",
) -> Handler:
    """The standard workload: tools in parallel after a user message, then a text answer.

    The returned handler answers a request whose last message has role ``"user"`` with
    all ``calls`` at once (fresh ids each time, unless a call fixes its id), and any other
    request (typically ending with ``"tool"`` results) with ``answer``.
    """
    call_reply = tool_call_reply(*calls)
    answer_reply = text_reply(answer)

    def handler(body: dict[str, Any]) -> Reply:
        # Chat sends "messages"; the Responses API sends "input" items.
        messages = body.get("messages") or body.get("input") or [{}]
        last = messages[-1] if isinstance(messages, list) and isinstance(messages[-1], dict) else {}
        return call_reply if last.get("role") == "user" else answer_reply

    return handler


# --------------------------------------------------------------------------- rendering


_str = json.encoder.encode_basestring  # a JSON string literal, without the encoder's overhead


def _opt(text: str | None) -> str:
    return "null" if text is None else _str(text)


def _usage_json(reply: Reply, request_raw: bytes) -> str:
    """The ``usage`` object: the reply's numbers, the rest estimated."""
    # A cheap stand-in for tokenization: about 4 bytes per prompt token, a word per token.
    prompt = max(1, len(request_raw) // 4)
    completion = len((reply.content or "").split()) + len((reply.refusal or "").split())
    for call in reply.tool_calls:
        completion += 1 + len(call.arguments_json) // 4
    if reply.usage:
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
        usage.update(reply.usage)
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
        usage.setdefault("total_tokens", prompt + completion)
        usage.setdefault("prompt_tokens_details", {"cached_tokens": 0, "audio_tokens": 0})
        usage.setdefault("completion_tokens_details", dict(_COMPLETION_DETAILS))
        return _dumps(usage)
    # Formatted by hand: this is on every request's path and json.dumps costs more.
    return (
        f'{{"prompt_tokens":{prompt},"completion_tokens":{completion},'
        f'"total_tokens":{prompt + completion},'
        '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
        '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
        '"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
    )


_COMPLETION_DETAILS = {
    "reasoning_tokens": 0,
    "audio_tokens": 0,
    "accepted_prediction_tokens": 0,
    "rejected_prediction_tokens": 0,
}


def _split_words(text: str) -> list[str]:
    return _WORD.findall(text) or [text]


def _fragments(arguments: str) -> list[str]:
    if not arguments:
        return []
    size = -(-len(arguments) // 3)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


class _Exchange:
    """Ids and the request facts shared by the rendering of one chat reply."""

    __slots__ = ("call_ids", "completion_id", "created", "model")

    def __init__(self, number: int, model: str, reply: Reply) -> None:
        self.completion_id = f"chatcmpl-fake{number:06d}"
        self.created = int(time.time())
        self.model = _str(reply.model or model)
        self.call_ids = [
            call.id or f"call_fake{number:06d}_{i}" for i, call in enumerate(reply.tool_calls)
        ]


def _completion_json(reply: Reply, ex: _Exchange, usage: str) -> bytes:
    """A ``chat.completion`` body, keys in OpenAI's order (assembled by hand for speed)."""
    message = (
        f'{{"role":"assistant","content":{_opt(reply.content)},'
        f'"refusal":{_opt(reply.refusal)},"annotations":[]'
    )
    if reply.tool_calls:
        calls = ",".join(
            f'{{"id":{_str(call_id)},"type":"function","function":'
            f'{{"name":{_str(call.name)},"arguments":{_str(call.arguments_json)}}}}}'
            for call, call_id in zip(reply.tool_calls, ex.call_ids, strict=True)
        )
        message += f',"tool_calls":[{calls}]'
    return (
        f'{{"id":"{ex.completion_id}","object":"chat.completion","created":{ex.created},'
        f'"model":{ex.model},"choices":[{{"index":0,"message":{message}}},'
        f'"logprobs":null,"finish_reason":{_str(reply.finish_reason)}}}],"usage":{usage},'
        '"service_tier":"default","system_fingerprint":"fp_fake"}'
    ).encode()


def _deltas(reply: Reply, ex: _Exchange) -> list[dict[str, Any]]:
    """The ``delta`` objects of a streamed completion, in order."""
    text = reply.content
    first: dict[str, Any] = {
        "role": "assistant",
        "content": None if text is None else "",
        "refusal": None,
    }
    deltas: list[dict[str, Any]] = [first]
    pieces = list(reply.deltas) if reply.deltas is not None else _split_words(text or "")
    deltas.extend({"content": piece} for piece in pieces if piece)
    if reply.refusal:
        deltas.extend({"refusal": piece} for piece in _split_words(reply.refusal))
    for index, (call, call_id) in enumerate(zip(reply.tool_calls, ex.call_ids, strict=True)):
        opening = {
            "tool_calls": [
                {
                    "index": index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ]
        }
        if len(deltas) == 1:
            # Like OpenAI: with no text before it, the first call opens in the role chunk.
            deltas[0] = {**first, **opening}
        else:
            deltas.append(opening)
        deltas.extend(
            {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
            for fragment in _fragments(call.arguments_json)
        )
    return deltas


def _stream_events(reply: Reply, ex: _Exchange, usage: str | None) -> list[bytes]:
    """The SSE events of a streamed completion, ``[DONE]`` included.

    With ``usage`` (the request set ``stream_options.include_usage``), every chunk has
    ``"usage": null`` and a last chunk with ``"choices": []`` carries the numbers.
    """
    head = (
        f'data: {{"id":"{ex.completion_id}","object":"chat.completion.chunk",'
        f'"created":{ex.created},"model":{ex.model},"service_tier":"default",'
        '"system_fingerprint":"fp_fake","choices":'
    )
    tail = '],"usage":null}\n\n' if usage is not None else "]}\n\n"
    events = [
        f'{head}[{{"index":0,"delta":{_dumps(delta)},"logprobs":null,"finish_reason":null}}{tail}'
        for delta in _deltas(reply, ex)
    ]
    finish = _str(reply.finish_reason)
    events.append(
        f'{head}[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":{finish}}}{tail}'
    )
    if usage is not None:
        events.append(f'{head}[],"usage":{usage}}}\n\n')
    events.append("data: [DONE]\n\n")
    return [event.encode() for event in events]


def _sse(chunk: Mapping[str, Any] | str | bytes) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode()
    return b"data: " + _dumps(chunk).encode() + b"\n\n"


def _error_body(message: str, type_: str, code: str | None = None) -> bytes:
    error = {"message": message, "type": type_, "param": None, "code": code}
    return _dumps({"error": error}).encode()


# --------------------------------------------------------------------------- the server


@dataclass(slots=True)
class _Plan:
    """What to write for one request, decided synchronously, maybe written later."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | None = None
    events: list[bytes] | None = None
    disconnect: bool = False
    delay: float = 0.0
    drop_after: int | None = None
    chunk_delay: float = 0.0

    @property
    def immediate(self) -> bool:
        return not (self.delay or self.chunk_delay or self.disconnect)


# Base URLs of the servers running in this process: block_model_requests() lets
# requests to these through, and only these, among OpenAI-compatible servers.
_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()


def is_running_fake_server(base_url: str) -> bool:
    """Whether ``base_url`` is that of a FakeOpenAIServer running in this process."""
    with _RUNNING_LOCK:
        return base_url.rstrip("/") in _RUNNING


class FakeOpenAIServer:
    """A real OpenAI-compatible HTTP server on 127.0.0.1, scripted per request.

    Each ``POST /v1/chat/completions`` or ``POST /v1/responses`` takes the next queued
    reply (FIFO; one script for both, rendered in each API's shape), or asks ``handler``
    when the queue is empty; with neither it answers 500 saying the script ran out.
    ``POST /v1/embeddings`` and ``POST /v1/moderations`` take replies queued with
    ``enqueue(..., endpoint="embeddings" | "moderations")`` and answer deterministically
    when none is (see :mod:`agentkit.testing._fake_endpoints`). ``GET /v1/models`` lists
    ``models``; other paths get OpenAI's 404. Every request is recorded in
    :attr:`requests`.

    Args:
        replies: The initial script: :class:`Reply` values or strings (text replies).
        handler: ``fn(request_body) -> Reply | str`` used when the queue is empty.
        models: The names ``/v1/models`` lists.
        api_key: A dummy key for clients (:attr:`api_key`); never a real secret.
        require_api_key: Answer 401 (``invalid_api_key``) unless the request carries
            ``Authorization: Bearer <api_key>``.
        headers: Response headers added to every chat-completions response.
        host: The interface to bind; keep 127.0.0.1 unless you know why.
        port: 0 picks a free port.
    """

    def __init__(
        self,
        replies: Iterable[Reply | str] = (),
        *,
        handler: Handler | None = None,
        models: Sequence[str] = ("gpt-4o-mini", "gpt-4o"),
        api_key: str = "sk-fake-agentkit-0000",
        require_api_key: bool = False,
        headers: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.handler: Handler | None = handler
        self.models = tuple(models)
        self.api_key = api_key
        self.require_api_key = require_api_key
        self._default_headers = list(_headers(headers))
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._aux_queues: dict[str, deque[Reply]] = {"embeddings": deque(), "moderations": deque()}
        self._requests: list[RecordedRequest] = []
        self._chat_count = itertools.count(1)
        self._consumed = 0
        self._http = BackgroundHTTPServer(self._app, host, port)
        #: The Files and Batch API (``/v1/files``, ``/v1/batches``): see fake_batches.
        self.batches = FakeBatchAPI(self._batch_answer)
        self.enqueue(*replies)

    def __repr__(self) -> str:
        state = f"{self.base_url}" if self._http.running else "stopped"
        return f"<FakeOpenAIServer {state} pending={self.pending}>"

    # -- lifecycle

    def start(self) -> FakeOpenAIServer:
        """Start serving in a background thread; returns self once the port is open."""
        self._http.start()
        with _RUNNING_LOCK:
            _RUNNING.add(self.base_url)
        return self

    def stop(self) -> None:
        """Close every connection, stop the thread. Idempotent."""
        with _RUNNING_LOCK:
            _RUNNING.discard(self.base_url)
        self._http.stop()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._http.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        return f"http://{self._http.host}:{self._http.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass it as an OpenAI client's ``base_url``."""
        return f"{self.url}/v1"

    # -- script and records

    def enqueue(self, *replies: Reply | str, endpoint: Endpoint = "model") -> None:
        """Append replies to a script: ``"model"`` (each chat-completions or responses
        request consumes the oldest one), ``"embeddings"`` or ``"moderations"`` (for
        faults and raw bodies there; without one those answer by themselves)."""
        items = [text_reply(r) if isinstance(r, str) else r for r in replies]
        for item in items:
            if not isinstance(item, Reply):
                raise TypeError(f"expected a Reply or a str, got {type(item).__name__}")
        if endpoint != "model" and endpoint not in self._aux_queues:
            raise ValueError(
                f"endpoint must be 'model', 'embeddings' or 'moderations', got {endpoint!r}"
            )
        with self._lock:
            (self._queue if endpoint == "model" else self._aux_queues[endpoint]).extend(items)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued (every endpoint)."""
        with self._lock:
            return len(self._queue) + sum(len(q) for q in self._aux_queues.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget the recorded requests and the queued replies."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            for queue in self._aux_queues.values():
                queue.clear()

    # -- HTTP application (runs in the server thread)

    def _app(self, request: HTTPRequest, responder: Responder) -> Any:
        body: Any = None
        if request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                body = None
        recorded = RecordedRequest(
            request.method, request.target, request.headers, body, request.body
        )
        with self._lock:
            self._requests.append(recorded)
        plan = self._route(request, body)
        if plan.immediate:
            self._write(plan, responder)
            return None
        return self._write_later(plan, responder)

    def _route(self, request: HTTPRequest, body: Any) -> _Plan:
        path, method = request.path.rstrip("/"), request.method
        if self.require_api_key and request.headers.get("authorization") != (
            f"Bearer {self.api_key}"
        ):
            return _error_plan(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        if path == "/v1/chat/completions" and method == "POST":
            return self._chat(request, body)
        if path == "/v1/responses" and method == "POST":
            return self._chat(request, body, responses=True)
        if path in ("/v1/embeddings", "/v1/moderations") and method == "POST":
            return self._aux(path.rsplit("/", 1)[1], request, body)
        if path.startswith(("/v1/files", "/v1/batches")):
            answer = self.batches.route(method, path, request.headers, request.body, body)
            if answer is not None:
                return _Plan(answer[0], [("content-type", answer[1])], body=answer[2])
        if path == "/v1/models" and method == "GET":
            data = [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"}
                for m in self.models
            ]
            return _json_plan(200, {"object": "list", "data": data})
        if path.startswith("/v1/models/") and method == "GET":
            name = path[len("/v1/models/") :]
            if name in self.models:
                info = {"id": name, "object": "model", "created": 1700000000, "owned_by": "system"}
                return _json_plan(200, info)
            return _error_plan(
                404,
                f"The model '{name}' does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        return _error_plan(404, f"Invalid URL ({method} {request.path})", "invalid_request_error")

    def _aux(self, endpoint: str, request: HTTPRequest, body: Any) -> _Plan:
        with self._lock:
            queue = self._aux_queues[endpoint]
            reply = queue.popleft() if queue else None
        number = next(self._chat_count)
        if reply is None:
            if endpoint == "embeddings":
                status, value = _endpoints.embedding_body(body)
            else:
                status, value = _endpoints.moderation_body(body, number)
            plan = _json_plan(status, value)
            plan.headers = [*plan.headers, *self._default_headers]
            return plan
        if reply.kind == "completion":
            return _error_plan(
                500,
                f"FakeOpenAIServer: a text or tool-call reply was queued for /v1/{endpoint}; "
                "queue raw_reply(...) or a fault there, or nothing for the default answer.",
                "server_error",
            )
        plan = self._render(reply, body if isinstance(body, dict) else {}, request.body, number)
        plan.headers = [*plan.headers, *self._default_headers, *reply.headers]
        plan.delay, plan.drop_after = reply.delay, reply.drop_after
        plan.chunk_delay = reply.chunk_delay
        return plan

    def _chat(self, request: HTTPRequest, body: Any, *, responses: bool = False) -> _Plan:
        if not isinstance(body, dict):
            return _error_plan(
                400,
                "We could not parse the JSON body of your request. The OpenAI API expects a "
                "JSON payload, but what was sent was not valid JSON.",
                "invalid_request_error",
            )
        with self._lock:
            reply = self._queue.popleft() if self._queue else None
            if reply is not None:
                self._consumed += 1
            consumed = self._consumed
        if reply is None:
            reply_or_error = self._from_handler(body, consumed)
            if isinstance(reply_or_error, _Plan):
                return reply_or_error
            reply = reply_or_error
        number = next(self._chat_count)
        plan = self._render(reply, body, request.body, number, responses=responses)
        plan.headers = [*plan.headers, *self._default_headers, *reply.headers]
        plan.delay, plan.drop_after = reply.delay, reply.drop_after
        plan.chunk_delay = reply.chunk_delay
        return plan

    def _batch_answer(self, body: dict[str, Any]) -> tuple[int, Any]:
        """One request of a batch, answered like a chat request (never streamed)."""
        with self._lock:
            reply = self._queue.popleft() if self._queue else None
            if reply is not None:
                self._consumed += 1
            consumed = self._consumed
        body = {**body, "stream": False}
        found = reply if reply is not None else self._from_handler(body, consumed)
        plan = found if isinstance(found, _Plan) else self._render(
            found, body, _dumps(body).encode(), next(self._chat_count)
        )
        if plan.disconnect or plan.body is None:
            return 500, {"error": {"message": "FakeOpenAIServer: a disconnect or a stream "
                                   "cannot answer a batch request", "type": "server_error"}}
        try:
            return plan.status, json.loads(plan.body)
        except ValueError:
            return plan.status, plan.body.decode("utf-8", "replace")

    def _from_handler(self, body: dict[str, Any], consumed: int) -> Reply | _Plan:
        handler = self.handler
        if handler is None:
            return _error_plan(
                500,
                "FakeOpenAIServer: the script ran out: no reply is queued for this chat "
                f"request ({consumed} scripted repl{'y was' if consumed == 1 else 'ies were'} "
                "used) and no handler is set. Queue more with server.enqueue(...) or set "
                "server.handler.",
                "server_error",
            )
        try:
            result = handler(body)
        except Exception as exc:
            _log.warning("FakeOpenAIServer handler raised", exc_info=True)
            return _error_plan(
                500,
                f"FakeOpenAIServer: the handler raised {type(exc).__name__}: {exc}",
                "server_error",
            )
        if isinstance(result, str):
            return text_reply(result)
        if not isinstance(result, Reply):
            return _error_plan(
                500,
                "FakeOpenAIServer: the handler must return a Reply or a str, "
                f"not {type(result).__name__}",
                "server_error",
            )
        return result

    def _render(
        self, reply: Reply, body: dict[str, Any], raw: bytes, number: int, *,
        responses: bool = False,
    ) -> _Plan:
        request_id = [("x-request-id", f"req_fake{number:06d}"), ("openai-version", "2020-10-01")]
        if reply.kind == "disconnect":
            return _Plan(0, [], disconnect=True)
        if reply.kind in ("error", "raw"):
            payload = reply.body if isinstance(reply.body, bytes) else _dumps(reply.body).encode()
            headers = [("content-type", reply.content_type), *request_id]
            return _Plan(reply.status, headers, body=payload)
        if reply.kind == "stream":
            events = [_sse(c) for c in reply.chunks]
            if reply.done:
                events.append(b"data: [DONE]\n\n")
            return _Plan(reply.status, [("content-type", _SSE), *request_id], events=events)
        if responses:
            if body.get("stream") is True:
                events = _endpoints.response_events(reply, body, raw, number)
                return _Plan(reply.status, [("content-type", _SSE), *request_id], events=events)
            payload = _endpoints.response_body(reply, body, raw, number)
            return _Plan(reply.status, [("content-type", _JSON), *request_id], body=payload)
        ex = _Exchange(number, str(body.get("model", "")), reply)
        usage = _usage_json(reply, raw)
        if body.get("stream") is True:
            options = body.get("stream_options")
            include = isinstance(options, dict) and options.get("include_usage") is True
            events = _stream_events(reply, ex, usage if include else None)
            return _Plan(reply.status, [("content-type", _SSE), *request_id], events=events)
        payload = _completion_json(reply, ex, usage)
        return _Plan(reply.status, [("content-type", _JSON), *request_id], body=payload)

    @staticmethod
    def _write(plan: _Plan, responder: Responder) -> None:
        if plan.disconnect:
            responder.close()
            return
        if plan.events is None:
            body = plan.body or b""
            truncate = None if plan.drop_after is None else len(body) // 2
            responder.respond(plan.status, plan.headers, body, truncate_at=truncate)
            return
        responder.start_stream(plan.status, plan.headers)
        events = plan.events
        if plan.drop_after is not None:
            responder.send_chunk(b"".join(events[: plan.drop_after]))
            responder.close()
            return
        responder.send_chunk(b"".join(events))
        responder.end_stream()

    async def _write_later(self, plan: _Plan, responder: Responder) -> None:
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if not responder.connected:
            return
        if plan.events is None or not plan.chunk_delay or plan.disconnect:
            self._write(plan, responder)
            return
        responder.start_stream(plan.status, plan.headers)
        limit = len(plan.events) if plan.drop_after is None else plan.drop_after
        for i, event in enumerate(plan.events[:limit]):
            if i:
                await asyncio.sleep(plan.chunk_delay)
            if not responder.connected:
                return
            responder.send_chunk(event)
        if plan.drop_after is not None:
            responder.close()
        else:
            responder.end_stream()


def _json_plan(status: int, value: Any) -> _Plan:
    return _Plan(status, [("content-type", _JSON)], body=_dumps(value).encode())


def _error_plan(status: int, message: str, type_: str, code: str | None = None) -> _Plan:
    return _Plan(status, [("content-type", _JSON)], body=_error_body(message, type_, code))


# --------------------------------------------------------------------------- standalone


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the standard parallel-tools workload until interrupted (for benchmarks)."""
    parser = argparse.ArgumentParser(
        prog="python -m agentkit.testing.fake_openai",
        description="A fake OpenAI-compatible server answering the parallel-tools workload.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(handler=parallel_tools_handler(), host=args.host, port=args.port)
    with server:
        logging.basicConfig(level=logging.INFO)
        _log.info("fake OpenAI server on %s (Ctrl-C to stop)", server.base_url)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
