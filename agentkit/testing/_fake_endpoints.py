"""The fake server's Responses, embeddings and moderation endpoints (renderers only; the
server, its script and its faults are in :mod:`agentkit.testing.fake_openai`).

* ``POST /v1/responses``: the same scripted replies as chat completions
  (``text_reply``, ``tool_call_reply``, ...), rendered as a Responses ``response`` object
  or, with ``"stream": true``, as its event stream. ``finish_reason="length"`` renders
  ``status: "incomplete"`` (``max_output_tokens``), ``"content_filter"`` likewise; a
  reply's ``reasoning`` text becomes a reasoning item (with ``encrypted_content`` when
  the request's ``include`` asks for it).
* ``POST /v1/embeddings``: deterministic vectors when nothing is scripted: each word of
  the text hashed into ``dimensions`` buckets (default 64), L2-normalised, so texts that
  share words are close. ``encoding_format`` ``"float"`` or ``"base64"``. More than 2,048
  inputs is a 400, as at OpenAI.
* ``POST /v1/moderations``: deterministic verdicts when nothing is scripted: an input is
  flagged for a category when it contains one of that category's words
  (:data:`MODERATION_WORDS`), score 0.9; otherwise every score is 0.01.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkit.testing.fake_openai import Reply

__all__ = [
    "MAX_EMBEDDING_INPUTS",
    "MODERATION_CATEGORIES",
    "MODERATION_WORDS",
    "embedding_body",
    "fake_embedding",
    "moderation_body",
    "response_body",
    "response_events",
]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_WORDS = re.compile(r"\w+", re.UNICODE)
_SPLIT = re.compile(r"\s*\S+\s*$|\s*\S+|\s+")

MAX_EMBEDDING_INPUTS = 2048
"""Inputs one embeddings request may carry (OpenAI's limit)."""

MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)
"""The categories of ``omni-moderation-latest``."""

MODERATION_WORDS: dict[str, tuple[str, ...]] = {
    "violence": ("kill", "murder", "attack", "shoot", "stab"),
    "harassment": ("idiot", "loser", "stupid"),
    "hate": ("hate",),
    "self-harm": ("suicide", "self-harm"),
    "illicit": ("meth", "counterfeit"),
}
"""Words that make the fake moderation endpoint flag a category."""


# --------------------------------------------------------------------------- responses


def _usage(reply: Reply, raw: bytes) -> dict[str, Any]:
    from agentkit.testing.fake_openai import _usage_json

    chat = json.loads(_usage_json(reply, raw))
    prompt, completion = chat["prompt_tokens"], chat["completion_tokens"]
    cached = (chat.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    reasoning = (chat.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    if reply.reasoning and not reasoning:
        reasoning = len(reply.reasoning.split())
        completion += reasoning
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": chat.get("total_tokens", prompt + completion)
        if not reply.reasoning else prompt + completion,
    }


class _Ids:
    def __init__(self, number: int, reply: Reply) -> None:
        self.response = f"resp_fake{number:06d}"
        self.message = f"msg_fake{number:06d}"
        self.reasoning = f"rs_fake{number:06d}"
        self.calls = [
            (f"fc_fake{number:06d}_{i}", call.id or f"call_fake{number:06d}_{i}")
            for i, call in enumerate(reply.tool_calls)
        ]


def _encrypted(text: str) -> str:
    # Opaque to the client, as OpenAI's is; the fake can read it back in tests.
    return "fake-enc:" + base64.b64encode(text.encode()).decode()


def _items(reply: Reply, ids: _Ids, body: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.reasoning is not None:
        item: dict[str, Any] = {
            "id": ids.reasoning,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": reply.reasoning}],
        }
        include = body.get("include") or ()
        if "reasoning.encrypted_content" in include:
            item["encrypted_content"] = _encrypted(reply.reasoning)
        items.append(item)
    if reply.content is not None or reply.refusal is not None:
        content: list[dict[str, Any]] = []
        if reply.content is not None:
            content.append({"type": "output_text", "text": reply.content, "annotations": []})
        if reply.refusal is not None:
            content.append({"type": "refusal", "refusal": reply.refusal})
        items.append({
            "id": ids.message, "type": "message", "status": "completed",
            "role": "assistant", "content": content,
        })
    for call, (item_id, call_id) in zip(reply.tool_calls, ids.calls, strict=True):
        items.append({
            "id": item_id, "type": "function_call", "status": "completed",
            "call_id": call_id, "name": call.name, "arguments": call.arguments_json,
        })
    return items


def _response(
    reply: Reply, ids: _Ids, body: dict[str, Any], output: list[dict[str, Any]],
    usage: dict[str, Any] | None, status: str | None = None,
) -> dict[str, Any]:
    incomplete = {"length": "max_output_tokens", "content_filter": "content_filter"}
    reason = incomplete.get(reply.finish_reason)
    return {
        "id": ids.response,
        "object": "response",
        "created_at": int(time.time()),
        "status": status or ("incomplete" if reason else "completed"),
        "error": None,
        "incomplete_details": {"reason": reason} if reason and status is None else None,
        "model": reply.model or str(body.get("model", "")),
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "store": bool(body.get("store", True)),
        "usage": usage,
    }


def response_body(reply: Reply, body: dict[str, Any], raw: bytes, number: int) -> bytes:
    """A non-streamed ``response`` object for a scripted text or tool-call reply."""
    ids = _Ids(number, reply)
    value = _response(reply, ids, body, _items(reply, ids, body), _usage(reply, raw))
    return _dumps(value).encode()


def _event(kind: str, sequence: int, **fields: Any) -> bytes:
    data = _dumps({"type": kind, "sequence_number": sequence, **fields})
    return f"event: {kind}\ndata: {data}\n\n".encode()


def response_events(reply: Reply, body: dict[str, Any], raw: bytes, number: int) -> list[bytes]:
    """The Responses event stream for a scripted reply: created, in_progress, each output
    item opened, its text one word per ``output_text.delta`` or its arguments in up to 3
    ``function_call_arguments.delta`` events, closed, then ``response.completed`` (or
    ``response.incomplete``)."""
    from agentkit.testing.fake_openai import _fragments

    ids = _Ids(number, reply)
    items = _items(reply, ids, body)
    events: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append(_event(kind, len(events), **fields))

    emit("response.created", response=_response(reply, ids, body, [], None, "in_progress"))
    emit("response.in_progress", response=_response(reply, ids, body, [], None, "in_progress"))
    for index, item in enumerate(items):
        kind = item["type"]
        opened = dict(item, status="in_progress")
        if kind == "message":
            opened["content"] = []
        elif kind == "function_call":
            opened["arguments"] = ""
        elif kind == "reasoning":
            opened.pop("encrypted_content", None)
            opened["summary"] = []
        emit("response.output_item.added", output_index=index, item=opened)
        if kind == "message" and reply.content is not None:
            part = {"type": "output_text", "text": "", "annotations": []}
            emit("response.content_part.added", item_id=item["id"], output_index=index,
                 content_index=0, part=part)
            words = list(reply.deltas) if reply.deltas is not None else (
                _SPLIT.findall(reply.content) or [reply.content])
            for word in words:
                emit("response.output_text.delta", item_id=item["id"], output_index=index,
                     content_index=0, delta=word, logprobs=[])
            emit("response.output_text.done", item_id=item["id"], output_index=index,
                 content_index=0, text=reply.content, logprobs=[])
            emit("response.content_part.done", item_id=item["id"], output_index=index,
                 content_index=0, part=item["content"][0])
        elif kind == "function_call":
            for fragment in _fragments(item["arguments"]):
                emit("response.function_call_arguments.delta", item_id=item["id"],
                     output_index=index, delta=fragment)
            emit("response.function_call_arguments.done", item_id=item["id"],
                 output_index=index, arguments=item["arguments"])
        emit("response.output_item.done", output_index=index, item=item)
    final = _response(reply, ids, body, items, _usage(reply, raw))
    emit(f"response.{final['status']}", response=final)
    return events


# --------------------------------------------------------------------------- embeddings


def fake_embedding(text: str, dimensions: int = 64) -> list[float]:
    """The fake server's vector for ``text``: its lower-cased words hashed into
    ``dimensions`` signed buckets, L2-normalised (all zeros but one for an empty text)."""
    vector = [0.0] * dimensions
    for word in _WORDS.findall(text.lower()) or [""]:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimensions
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if not norm:  # every word cancelled out
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


def embedding_body(body: Any) -> tuple[int, dict[str, Any]]:
    """Status and JSON body answering an embeddings request (400 for a bad one)."""

    def bad(message: str, param: str | None = None) -> tuple[int, dict[str, Any]]:
        error = {"message": message, "type": "invalid_request_error", "param": param,
                 "code": None}
        return 400, {"error": error}

    if not isinstance(body, dict) or "input" not in body:
        return bad("'input' is a required property", "input")
    raw_input = body["input"]
    inputs = [raw_input] if isinstance(raw_input, str) else raw_input
    if not isinstance(inputs, list) or not inputs:
        return bad("'input' must be a non-empty string or array", "input")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        return bad(f"'input' must have at most {MAX_EMBEDDING_INPUTS} items, got "
                   f"{len(inputs)}", "input")
    texts = [item if isinstance(item, str) else json.dumps(item) for item in inputs]
    if any(not text for text in texts):
        return bad("'input' cannot contain an empty string", "input")
    dimensions = body.get("dimensions", 64)
    if not isinstance(dimensions, int) or dimensions < 1:
        return bad(f"'dimensions' must be a positive integer, got {dimensions!r}", "dimensions")
    encoding = body.get("encoding_format", "float")
    data = []
    for index, text in enumerate(texts):
        vector = fake_embedding(text, dimensions)
        embedding: Any = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(max(1, len(_WORDS.findall(text))) for text in texts)
    return 200, {
        "object": "list",
        "data": data,
        "model": str(body.get("model", "")),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --------------------------------------------------------------------------- moderation


def moderation_result(text: str) -> dict[str, Any]:
    """The fake verdict on one text (see :data:`MODERATION_WORDS`)."""
    words = set(_WORDS.findall(text.lower())) | {w for w in text.lower().split()}
    categories = {name: False for name in MODERATION_CATEGORIES}
    scores = {name: 0.01 for name in MODERATION_CATEGORIES}
    for category, triggers in MODERATION_WORDS.items():
        if words & set(triggers):
            categories[category] = True
            scores[category] = 0.9
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": scores,
    }


def moderation_body(body: Any, number: int) -> tuple[int, dict[str, Any]]:
    """Status and JSON body answering a moderation request."""
    raw_input = body.get("input") if isinstance(body, dict) else None
    inputs = [raw_input] if isinstance(raw_input, str) else raw_input
    if not isinstance(inputs, list) or not inputs:
        error = {"message": "'input' must be a non-empty string or array",
                 "type": "invalid_request_error", "param": "input", "code": None}
        return 400, {"error": error}
    texts = [
        item if isinstance(item, str) else str(item.get("text", "")) if isinstance(item, dict)
        else str(item)
        for item in inputs
    ]
    return 200, {
        "id": f"modr-fake{number:06d}",
        "model": str(body.get("model") or "omni-moderation-latest"),
        "results": [moderation_result(text) for text in texts],
    }
