"""Typed conversation messages and their conversion to and from the OpenAI wire format.

This is the only module that knows the chat-completions message shape, so a thread saved
with :func:`to_openai` today loads with :func:`from_openai` tomorrow, against any
OpenAI-compatible server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentkit.errors import ConfigurationError

__all__ = [
    "Message",
    "Role",
    "ToolCall",
    "from_openai",
    "normalize_arguments",
    "to_openai",
    "to_saved",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]
_ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for: the tool's ``name`` and its ``arguments`` as JSON text."""

    id: str
    name: str
    arguments: str = "{}"

    def to_openai(self) -> dict[str, Any]:
        """The wire form used inside an assistant message's ``tool_calls``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (``""`` decodes to ``{}``)."""
        return json.loads(self.arguments) if self.arguments.strip() else {}


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation.

    Build them with the constructors: ``Message.system(...)``, ``Message.user(...)``,
    ``Message.assistant(...)``, ``Message.tool(...)``.

    Attributes:
        role: ``system``, ``developer``, ``user``, ``assistant`` or ``tool``.
        content: The text (or, for user messages, a list of OpenAI content parts).
        tool_calls: For assistant messages, the tool calls the model made.
        tool_call_id: For tool messages, the id of the call this answers.
        name: Optional participant name (for tool messages, the tool's name).
        refusal: For assistant messages, the model's refusal text, if it refused.
        is_error: For tool messages, whether the tool call failed (not sent on the wire).
        reasoning: For assistant messages from the Responses API, the model's reasoning
            items (opaque, encrypted), sent back to that API on the next turns so the model
            keeps its chain of thought; chat-completions servers never see them.
    """

    role: Role
    content: str | list[dict[str, Any]] | None = None
    tool_calls: tuple[ToolCall, ...] = field(default=())
    tool_call_id: str | None = None
    name: str | None = None
    refusal: str | None = None
    is_error: bool = False
    reasoning: tuple[dict[str, Any], ...] = field(default=(), hash=False)

    @classmethod
    def system(cls, content: str) -> Message:
        """A system message (the agent's instructions)."""
        return cls("system", content)

    @classmethod
    def user(cls, content: str | list[dict[str, Any]]) -> Message:
        """A user message: text or a list of OpenAI content parts."""
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str | None = None, tool_calls: Sequence[ToolCall] = ()) -> Message:
        """An assistant message: text, tool calls, or both."""
        return cls("assistant", content, tuple(tool_calls))

    @classmethod
    def tool(
        cls, tool_call_id: str, content: str, *, name: str | None = None, is_error: bool = False
    ) -> Message:
        """The result of the tool call ``tool_call_id``."""
        return cls("tool", content, (), tool_call_id, name, None, is_error)

    @property
    def text(self) -> str:
        """The content as plain text (content parts joined; ``""`` when there is none)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(
            str(part.get("text", "")) for part in self.content if part.get("type") == "text"
        )

    def to_openai(self) -> dict[str, Any]:
        """This message as a chat-completions wire dict."""
        out: dict[str, Any] = {"role": self.role}
        if self.role == "assistant":
            out["content"] = self.content
            if self.tool_calls:
                out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
            if self.refusal is not None:
                out["refusal"] = self.refusal
        else:
            out["content"] = self.content if self.content is not None else ""
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
        elif self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_openai(cls, data: Mapping[str, Any]) -> Message:
        """Parse one wire dict (as sent to or received from an OpenAI-compatible server)."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                f"a message must be a dict like {{'role': 'user', 'content': 'hi'}}, "
                f"got {type(data).__name__}: {data!r:.200}"
            )
        role = data.get("role")
        if role not in _ROLES:
            raise ConfigurationError(
                f"message role must be one of {', '.join(_ROLES)}; got {role!r} in "
                f"{dict(data)!r:.200}"
            )
        content = data.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ConfigurationError(
                f"message content must be a string, a list of content parts or null; got "
                f"{type(content).__name__} in {dict(data)!r:.200}"
            )
        tool_calls: tuple[ToolCall, ...] = ()
        if role == "assistant" and data.get("tool_calls"):
            tool_calls = tuple(_tool_call_from_openai(raw) for raw in data["tool_calls"])
        if role == "tool" and not data.get("tool_call_id"):
            raise ConfigurationError(
                f"a tool message needs the 'tool_call_id' of the call it answers: "
                f"{dict(data)!r:.200}"
            )
        return cls(
            role=role,
            content=content,
            tool_calls=tool_calls,
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
            refusal=data.get("refusal"),
            # Not part of the wire format: stored threads and saved run states keep it.
            is_error=bool(data.get("is_error", False)),
            reasoning=tuple(
                dict(item) for item in data.get("reasoning") or () if isinstance(item, Mapping)
            ),
        )


def _tool_call_from_openai(raw: Mapping[str, Any]) -> ToolCall:
    function = raw.get("function") or {}
    return ToolCall(
        id=str(raw.get("id") or ""),
        name=str(function.get("name") or ""),
        arguments=normalize_arguments(function.get("arguments")),
    )


def normalize_arguments(raw: Any) -> str:
    """Tool-call arguments as JSON text: objects are encoded, ``""`` becomes ``"{}"`` and
    double-encoded JSON (a JSON string holding an object) is unwrapped."""
    if raw is None:
        return "{}"
    if not isinstance(raw, str):
        return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    stripped = raw.strip()
    if not stripped:
        return "{}"
    if stripped[0] == '"':
        try:
            inner = json.loads(stripped)
        except ValueError:
            return raw
        if isinstance(inner, str) and inner.strip()[:1] in ("{", "["):
            try:
                json.loads(inner)
            except ValueError:
                return raw
            return inner
    return raw


def to_saved(message: Message) -> dict[str, Any]:
    """``message`` as a wire dict plus what the wire drops (``is_error``, a tool result's
    ``name``), so that :meth:`Message.from_openai` loads it back equal: the form of saved
    run states and stored thread items."""
    data = message.to_openai()
    if message.is_error:
        data["is_error"] = True
    if message.role == "tool" and message.name is not None:
        data["name"] = message.name
    if message.reasoning:
        data["reasoning"] = list(message.reasoning)
    return data


def to_openai(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Convert messages to chat-completions wire dicts (JSON-serialisable)."""
    return [message.to_openai() for message in messages]


def from_openai(messages: Iterable[Message | Mapping[str, Any]]) -> list[Message]:
    """Convert wire dicts (or already typed messages) to :class:`Message` objects."""
    return [m if isinstance(m, Message) else Message.from_openai(m) for m in messages]
