"""How LocalModel talks to a chat model that knows nothing about tools.

Small GGUF chat models (SmolLM2 among them) have chat templates without tool support. So the
tools are described in the system prompt, and the reply is constrained by a JSON schema
(enforced token by token by llama.cpp's grammar sampler) to one of::

    {"tool": "<tool name>", "arguments": {...that tool's parameters...}}
    {"answer": "<text for the user>"}          # or the output schema, for structured output

The conversation's tool calls and tool results are rendered back as plain user/assistant
text in that same envelope, so the model sees a consistent protocol. Everything here is a
pure function of the request, so it is tested without loading a model.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentkit.errors import ConfigurationError, ContextLengthExceeded, ModelError
from agentkit.messages import Message, ToolCall
from agentkit.models.base import ToolDefinition

__all__ = [
    "AnswerStreamer",
    "ReplyPlan",
    "estimate_tokens",
    "fit_to_context",
    "new_call_id",
    "parse_reply",
    "plan_reply",
    "render_messages",
    "system_prompt",
]

# Found by trial on SmolLM2-135M: a concrete example dialogue gets copied verbatim (apples
# in a weather answer), while a fill-in pattern plus the question repeated after the
# result gets answers built from the result.
_EXAMPLE = (
    "When you answer after a tool result, give all its values in one sentence: "
    '{"answer": "It is <value> and <value> in <place>."}'
)
_ANSWER_HINT = "Question: {question}\nAnswer the question using the result."


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """How the next reply is constrained and read back.

    Attributes:
        schema: The JSON schema the reply must match, or None for free text.
        protocol: Whether the reply is the ``{"tool": ...}`` / ``{"answer": ...}`` envelope.
        tools: The tools offered in the envelope (after ``tool_choice`` narrowing).
        allow_answer: Whether the envelope may be an answer rather than a tool call.
        answer_is_text: Whether an answer is a plain string (so it can stream as text).
    """

    schema: dict[str, Any] | None
    protocol: bool
    tools: tuple[ToolDefinition, ...] = ()
    allow_answer: bool = True
    answer_is_text: bool = True


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's style (``call_`` and 24 hex digits)."""
    return "call_" + secrets.token_hex(12)


def _answer_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise ConfigurationError(
                f"response_format json_schema has no 'schema' object: {response_format!r:.200}"
            )
        return schema
    if kind == "json_object":
        return {"type": "object"}
    return None


def _rewrite_refs(node: Any, prefix: str) -> Any:
    """Point local ``$ref``s of one tool's schema at its renamed root-level definitions."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                for root in ("#/$defs/", "#/definitions/"):
                    if value.startswith(root):
                        value = f"#/$defs/{prefix}{value[len(root):]}"
                        break
                else:
                    if value == "#":
                        raise ConfigurationError(
                            f"schema for {prefix.rstrip('_')!r} refers to its own root "
                            "('$ref': '#'), which the local model's grammar cannot express"
                        )
            out[key] = _rewrite_refs(value, prefix)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, prefix) for item in node]
    return node


def _hoist(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Move ``schema``'s definitions into ``defs`` (renamed) and return the rest."""
    body = copy.deepcopy(schema)
    local: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        local.update(body.pop(key, None) or {})
    body.pop("$schema", None)
    for name, definition in local.items():
        defs[prefix + name] = _rewrite_refs(definition, prefix)
    result: dict[str, Any] = _rewrite_refs(body, prefix)
    return result


def _tool_branch(tool: ToolDefinition, defs: dict[str, Any]) -> dict[str, Any]:
    params = tool.parameters or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {
            "tool": {"const": tool.name},
            "arguments": _hoist(params, f"{tool.name}__", defs),
        },
        "required": ["tool", "arguments"],
        "additionalProperties": False,
    }


def plan_reply(
    tools: Sequence[ToolDefinition],
    tool_choice: str | None,
    response_format: dict[str, Any] | None,
) -> ReplyPlan:
    """Decide the reply schema for a request's tools, ``tool_choice`` and ``response_format``.

    ``"required"`` keeps only the tool branches, a tool name keeps only that tool, and
    ``"none"`` keeps only the answer. With no tools the reply is free text, or the
    ``response_format`` schema itself when one is given.
    """
    answer = _answer_schema(response_format)
    if not tools:
        return ReplyPlan(schema=answer, protocol=False, answer_is_text=answer is None)
    choice = tool_choice or "auto"
    offered: tuple[ToolDefinition, ...] = tuple(tools)
    allow_answer = True
    if choice == "none":
        offered = ()
    elif choice == "required":
        allow_answer = False
    elif choice != "auto":
        offered = tuple(t for t in tools if t.name == choice)
        if not offered:
            raise ConfigurationError(
                f"tool_choice={choice!r} names no tool of this request; the tools are "
                f"{', '.join(t.name for t in tools)} (or use 'auto', 'required', 'none')"
            )
        allow_answer = False
    defs: dict[str, Any] = {}
    branches = [_tool_branch(t, defs) for t in offered]
    if allow_answer:
        branches.append({
            "type": "object",
            "properties": {"answer": answer if answer is not None else {"type": "string"}},
            "required": ["answer"],
            "additionalProperties": False,
        })
    schema: dict[str, Any] = branches[0] if len(branches) == 1 else {"anyOf": branches}
    if defs:
        schema = {**schema, "$defs": defs}
    return ReplyPlan(
        schema=schema,
        protocol=True,
        tools=offered,
        allow_answer=allow_answer,
        answer_is_text=answer is None,
    )


def _type_text(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"list of {_type_text(schema['items'])}"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type_text(s) for s in schema[key] if isinstance(s, dict))
    return str(kind or "value")


def describe_tool(tool: ToolDefinition) -> str:
    """One line telling the model what ``tool`` does and what its arguments mean."""
    props = (tool.parameters or {}).get("properties") or {}
    required = set((tool.parameters or {}).get("required") or ())
    args = []
    for name, schema in props.items():
        schema = schema if isinstance(schema, dict) else {}
        text = f"{name} ({_type_text(schema)}{'' if name in required else ', optional'})"
        if schema.get("description"):
            text += f": {schema['description']}"
        args.append(_sentence(text))
    line = f"- {tool.name}: {_sentence(tool.description or 'no description')}"
    return line + (f" Arguments: {' '.join(args)}" if args else " No arguments.")


def _sentence(text: str) -> str:
    """``text`` ending with exactly one period (descriptions may or may not have one)."""
    return text.strip().rstrip(".") + "."


def system_prompt(instructions: str, plan: ReplyPlan) -> str:
    """The system message: the user's instructions, then the tools and the reply format."""
    parts = [instructions.strip()] if instructions.strip() else []
    if plan.protocol:
        if plan.tools:
            parts.append("Tools you can call:\n" + "\n".join(describe_tool(t) for t in plan.tools))
        formats = []
        if plan.tools:
            formats.append('to call a tool: {"tool": "<name>", "arguments": {...}}')
        if plan.allow_answer:
            formats.append('to answer the user: {"answer": ...}')
        parts.append(
            "Reply with one JSON object: " + "; ".join(formats) + "."
            + (f"\n{_EXAMPLE}" if plan.allow_answer and plan.tools else "")
        )
    return "\n\n".join(parts)


def _envelope_call(call: ToolCall) -> str:
    try:
        arguments = call.parsed_arguments()
    except json.JSONDecodeError:
        arguments = call.arguments
    return json.dumps({"tool": call.name, "arguments": arguments}, ensure_ascii=False)


def render_messages(messages: Iterable[Message], plan: ReplyPlan) -> list[dict[str, str]]:
    """Turn the conversation into plain system/user/assistant messages for the template.

    System and developer messages merge into one leading system message. Assistant tool
    calls become the JSON envelope the model itself would write, and tool results become a
    user message ``Result of <tool>: <content>`` so a tool-less template accepts them.
    Consecutive messages of one role are merged, since chat templates expect alternation.
    When the conversation ends with tool results and an answer is allowed, the user's last
    question is repeated after them: small models otherwise drift from it.
    """
    instructions: list[str] = []
    turns: list[dict[str, str]] = []
    names: dict[str, str] = {}
    question = ""
    last_role = ""
    for message in messages:
        last_role = message.role
        if message.role in ("system", "developer"):
            instructions.append(message.text)
            continue
        if message.role == "user":
            role, text = "user", message.text
            question = text
        elif message.role == "assistant":
            for call in message.tool_calls:
                names[call.id] = call.name
            pieces = [_envelope_call(c) for c in message.tool_calls]
            if message.text and (plan.protocol and not message.tool_calls):
                pieces.insert(0, json.dumps({"answer": message.text}, ensure_ascii=False))
            elif message.text:
                pieces.insert(0, message.text)
            role, text = "assistant", "\n".join(pieces)
        else:  # tool
            name = message.name or names.get(message.tool_call_id or "", "tool")
            label = "Error from" if message.is_error else "Result of"
            role, text = "user", f"{label} {name}: {readable_result(message.text)}"
        if turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": turns[-1]["content"] + "\n" + text}
        else:
            turns.append({"role": role, "content": text})
    if last_role == "tool" and plan.protocol and plan.allow_answer and question:
        turns[-1]["content"] += "\n" + _ANSWER_HINT.format(question=question)
    system = system_prompt("\n\n".join(i for i in instructions if i), plan)
    return ([{"role": "system", "content": system}] if system else []) + turns


def readable_result(text: str) -> str:
    """A flat JSON object result as short sentences, other text unchanged.

    A 135M model reading ``{"temperature_c": 14, "conditions": "rain"}`` tends to repeat
    one field and drop the rest; as sentences ("The temperature c is 14. ...") the facts
    survive into its answer (5 of 6 weather questions kept the temperature, against 2 of 6
    with the JSON, in a side-by-side check).
    """
    if not text.startswith("{"):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict) or not all(
        isinstance(v, (str, int, float, bool)) or v is None for v in data.values()
    ):
        return text
    return " ".join(f"The {key.replace('_', ' ')} is {value}." for key, value in data.items())


def estimate_tokens(text: str, chars_per_token: float) -> int:
    """A token count estimate for ``text`` (plus the template's per-message overhead)."""
    return int(len(text) / chars_per_token) + 4


def fit_to_context(
    rendered: list[dict[str, str]],
    plan: ReplyPlan,
    budget: int,
    chars_per_token: float,
) -> tuple[list[dict[str, str]], int]:
    """Drop the oldest turns after the system message until the prompt fits ``budget``.

    Returns the kept messages and how many were dropped. The kept conversation always
    starts with a user turn and keeps the last message.

    Raises:
        ConfigurationError: The system prompt (instructions and tool descriptions) alone
            does not fit; the message names the biggest tool.
        ContextLengthExceeded: Even the last message alone does not fit.
    """
    def size(msgs: Sequence[dict[str, str]]) -> int:
        return sum(estimate_tokens(m["content"], chars_per_token) for m in msgs)

    head = rendered[:1] if rendered and rendered[0]["role"] == "system" else []
    turns = rendered[len(head):]
    if size(head) > budget:
        if plan.tools:
            biggest = max(plan.tools, key=lambda t: len(describe_tool(t)))
            cost = estimate_tokens(describe_tool(biggest), chars_per_token)
            raise ConfigurationError(
                f"the instructions and tool descriptions need about {size(head)} tokens but "
                f"only {budget} fit in the local model's context; the biggest tool is "
                f"{biggest.name!r} (about {cost} tokens): shorten its description, pass "
                "fewer tools, or raise LocalModel(n_ctx=...)"
            )
        raise ConfigurationError(
            f"the instructions need about {size(head)} tokens but only {budget} fit in the "
            "local model's context; shorten them or raise LocalModel(n_ctx=...)"
        )
    dropped = 0
    while turns and size(head) + size(turns) > budget:
        if len(turns) == 1:
            raise ContextLengthExceeded(
                f"the last message alone needs about {size(turns)} tokens, more than the "
                f"{budget - size(head)} left in the local model's context; shorten it or "
                "raise LocalModel(n_ctx=...)",
                status=400,
            )
        turns = turns[1:]
        dropped += 1
        # A conversation that opens with an assistant turn confuses small models.
        while len(turns) > 1 and turns[0]["role"] != "user":
            turns = turns[1:]
            dropped += 1
    return head + turns, dropped


def parse_reply(text: str, finish_reason: str, plan: ReplyPlan) -> tuple[Message, str]:
    """Convert the model's raw reply into an assistant message and a finish reason.

    A tool envelope becomes a :class:`ToolCall` with a fresh id and JSON arguments
    (finish reason ``tool_calls``); an answer becomes the message text.

    Raises:
        ModelError: The reply should match the schema but is not valid JSON.
    """
    if not plan.protocol:
        return Message.assistant(text), finish_reason
    if finish_reason == "length":
        # Cut off mid-JSON: hand the raw text on so the run reports the truncation.
        return Message.assistant(text), "length"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"the local model's reply is not the JSON it was constrained to ({exc}): "
            f"{text[:300]!r}"
        ) from None
    if isinstance(data, dict) and "tool" in data:
        arguments = json.dumps(data.get("arguments", {}), ensure_ascii=False)
        call = ToolCall(id=new_call_id(), name=str(data["tool"]), arguments=arguments)
        return Message.assistant(None, [call]), "tool_calls"
    if isinstance(data, dict) and "answer" in data:
        answer = data["answer"]
        content = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        return Message.assistant(content), finish_reason
    raise ModelError(f"the local model's reply has neither 'tool' nor 'answer': {text[:300]!r}")


_ANSWER_OPEN = '{"answer":"'
_ANSWER_START = re.compile(r'\s*\{\s*"answer"\s*:\s*"')


def _complete_prefix(raw: str) -> str:
    """The longest prefix of a JSON string body that ends neither mid-escape nor after
    the closing quote."""
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == '"':
            return raw[:i]
        if char != "\\":
            i += 1
            continue
        if i + 1 >= len(raw):
            return raw[:i]
        if raw[i + 1] != "u":
            i += 2
            continue
        if i + 6 > len(raw):
            return raw[:i]
        code = int(raw[i + 2 : i + 6], 16)
        if 0xD800 <= code < 0xDC00:  # a surrogate pair is only decodable whole
            if i + 12 > len(raw):
                return raw[:i]
            i += 12
        else:
            i += 6
    return raw


class AnswerStreamer:
    """Turns the streamed JSON envelope into the answer's text deltas.

    Feed it the raw chunks as they arrive; it returns the newly decoded answer text, and
    nothing at all when the reply turns out to be a tool call (so raw JSON never leaks to
    the user as text).
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._start: int | None = None
        self._emitted = 0
        self._off = False

    @property
    def emitted(self) -> int:
        """How many characters of answer text have been returned so far."""
        return self._emitted

    def feed(self, piece: str) -> str:
        """Add a raw chunk; return the answer text it completes (possibly ``""``)."""
        self._buffer += piece
        if self._off:
            return ""
        if self._start is None:
            match = _ANSWER_START.match(self._buffer)
            if match is None:
                compact = re.sub(r"\s", "", self._buffer)
                if not _ANSWER_OPEN.startswith(compact):
                    self._off = True
                return ""
            self._start = match.end()
        body = _complete_prefix(self._buffer[self._start :])
        decoded: str = json.loads(f'"{body}"', strict=False)
        new = decoded[self._emitted :]
        self._emitted = len(decoded)
        return new
