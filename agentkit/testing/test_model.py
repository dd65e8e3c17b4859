"""TestModel: a model that exercises an agent's tools and output type with no script at all.

On the first turn of a run it calls each chosen tool once, with arguments generated from
the tool's JSON schema (valid, and the same for the same ``seed``). Then it answers: with
``output`` if given, else with a generated instance of the structured output type, else
with JSON text summarising the tool results. Every request is recorded in ``.requests``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import pydantic

from agentkit.errors import ConfigurationError
from agentkit.messages import Message, ToolCall
from agentkit.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    StreamItem,
    ToolDefinition,
)
from agentkit.output import FINAL_RESULT_TOOL
from agentkit.testing._values import generate_value
from agentkit.testing.models import stream_words
from agentkit.usage import Usage

__all__ = ["TestModel"]


class TestModel(Model):
    """A model for tests that needs no script: it calls your tools with valid generated
    arguments, then gives a valid final answer.

    Args:
        call_tools: ``"all"`` (every tool of the request) or a list of tool names to call
            on the first turn; ``[]`` calls none.
        output: The final answer. For a structured ``output_type``, a value of that type,
            a dict, or JSON text; for text output, a string. When None, a structured
            answer is generated from the schema and a text answer summarises the tool
            results as JSON (``{"tool_name": result, ...}``).
        seed: Seed of the argument and output generator; the same seed gives the same
            values.
        name: The model's name in logs and errors.
        supports_json_schema: False makes runs use the ``final_result`` tool for
            structured output, like backends without JSON-schema support.

    Attributes:
        requests: Every request received, in order.
    """

    __test__ = False  # its name starts with "Test"; keep pytest from collecting it
    is_test_double = True

    def __init__(
        self,
        call_tools: Literal["all"] | Sequence[str] = "all",
        output: Any = None,
        seed: int = 0,
        *,
        name: str = "test",
        supports_json_schema: bool = True,
    ) -> None:
        if isinstance(call_tools, str) and call_tools != "all":
            raise ConfigurationError(
                f"call_tools must be 'all' or a list of tool names, got {call_tools!r}"
            )
        self.call_tools: Literal["all"] | tuple[str, ...] = (
            "all" if call_tools == "all" else tuple(call_tools)
        )
        self.output = output
        self.seed = seed
        self.name = name
        self.supports_json_schema = supports_json_schema
        self.requests: list[ModelRequest] = []

    def __repr__(self) -> str:
        return f"TestModel(call_tools={self.call_tools!r}, seed={self.seed})"

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Answer one request: tool calls on a run's first turn, then the final answer."""
        self.requests.append(request)
        message = self._reply(request)
        finish = "tool_calls" if message.tool_calls else "stop"
        return ModelResponse(message, finish, _usage(request, message), model_name=self.name)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        """Like :meth:`request`, with the answer's text in word-sized deltas."""
        async for item in stream_words(await self.request(request)):
            yield item

    # --- decisions --------------------------------------------------------------------

    def _reply(self, request: ModelRequest) -> Message:
        tools = [t for t in request.tools if t.name != FINAL_RESULT_TOOL]
        output_tool = next((t for t in request.tools if t.name == FINAL_RESULT_TOOL), None)
        results = _tool_results_since_user(request.messages)
        if results is None:
            calls = self._tool_calls(tools, len(self.requests))
            if calls:
                return Message.assistant(None, calls)
        if output_tool is not None:
            arguments = self._structured(output_tool.parameters, "final_result")
            call = ToolCall(f"call_{len(self.requests)}_final", FINAL_RESULT_TOOL, arguments)
            return Message.assistant(None, [call])
        response_format = request.response_format or request.settings.response_format
        schema = _json_schema_of(response_format)
        if schema is not None:
            return Message.assistant(self._structured(schema, "response_format"))
        if self.output is not None:
            text = self.output if isinstance(self.output, str) else _dump_json(self.output)
            return Message.assistant(text)
        return Message.assistant(_summary(results or []))

    def _tool_calls(self, tools: list[ToolDefinition], request_number: int) -> list[ToolCall]:
        if self.call_tools == "all":
            chosen = tools
        else:
            by_name = {t.name: t for t in tools}
            missing = [n for n in self.call_tools if n not in by_name]
            if missing:
                known = ", ".join(sorted(by_name)) or "(none)"
                raise ConfigurationError(
                    f"TestModel was asked to call {', '.join(map(repr, missing))} but the "
                    f"request offers only these tools: {known}"
                )
            chosen = [by_name[n] for n in self.call_tools]
        return [
            ToolCall(
                f"call_{request_number}_{index}",
                tool.name,
                json.dumps(generate_value(tool.parameters, f"{self.seed}:{tool.name}")),
            )
            for index, tool in enumerate(chosen)
        ]

    def _structured(self, schema: dict[str, Any], where: str) -> str:
        if self.output is None:
            return json.dumps(generate_value(schema, f"{self.seed}:{where}"))
        if isinstance(self.output, str):
            return self.output
        value = pydantic.TypeAdapter(type(self.output)).dump_python(self.output, mode="json")
        if _is_wrapped(schema) and not (isinstance(value, dict) and "result" in value):
            # Non-object output types travel as {"result": ...} (see agentkit.output).
            value = {"result": value}
        return json.dumps(value)


def _tool_results_since_user(messages: Sequence[Message]) -> list[Message] | None:
    """The tool results after the last user message, or None on a run's first turn."""
    results: list[Message] = []
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role == "tool":
            results.append(message)
    return list(reversed(results)) if results else None


def _json_schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else {}


def _is_wrapped(schema: dict[str, Any]) -> bool:
    return list((schema.get("properties") or {}).keys()) == ["result"]


def _dump_json(value: Any) -> str:
    return json.dumps(pydantic.TypeAdapter(type(value)).dump_python(value, mode="json"))


def _summary(results: list[Message]) -> str:
    if not results:
        return "success (no tool calls)"
    summary: dict[str, Any] = {}
    for message in results:
        try:
            content: Any = json.loads(message.text)
        except ValueError:
            content = message.text
        summary[message.name or message.tool_call_id or "tool"] = content
    return json.dumps(summary)


def _usage(request: ModelRequest, message: Message) -> Usage:
    # A rough word count, so usage accounting and limits can be tested meaningfully.
    prompt = sum(len(m.text.split()) + 1 for m in request.messages)
    completion = len(message.text.split()) + sum(
        len(call.arguments.split()) + 1 for call in message.tool_calls
    )
    return Usage(
        requests=1,
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=prompt + completion,
    )
