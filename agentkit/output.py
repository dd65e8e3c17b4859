"""Structured output: how a run asks for, and validates, an ``output_type`` answer.

Two strategies, chosen per model:

* ``response_format``: the model is sent a JSON-schema ``response_format`` and answers
  with JSON text (used when ``Model.supports_json_schema`` is true);
* a final-answer tool named ``final_result`` whose arguments are the output (used for
  backends that cannot constrain the message text).

Types that are not JSON objects (``list[int]``, ``int``, a union ...) are wrapped in an
object ``{"result": ...}`` because both strategies need an object at the root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pydantic

from agentkit.models.base import ToolDefinition
from agentkit.schema import NotStrictError, to_strict

__all__ = ["FINAL_RESULT_TOOL", "OutputSpec"]

FINAL_RESULT_TOOL = "final_result"


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """Everything a run needs to request and validate one ``output_type``; built once."""

    output_type: Any
    adapter: pydantic.TypeAdapter[Any]
    schema: dict[str, Any]
    strict: bool
    wrapped: bool
    name: str

    @classmethod
    def build(cls, output_type: Any) -> OutputSpec | None:
        """The spec for ``output_type``, or None for plain text (``str``)."""
        if output_type is str:
            return None
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(output_type)
        schema = adapter.json_schema()
        wrapped = schema.get("type") != "object"
        if wrapped:
            inner = dict(schema)
            defs = inner.pop("$defs", None)
            schema = {
                "type": "object",
                "properties": {"result": inner},
                "required": ["result"],
            }
            if defs:
                schema["$defs"] = defs
        strict_schema = _strict_or_none(schema)
        name = getattr(output_type, "__name__", None) or "output"
        return cls(
            output_type=output_type,
            adapter=adapter,
            schema=strict_schema if strict_schema is not None else schema,
            strict=strict_schema is not None,
            wrapped=wrapped,
            name="".join(c if c.isalnum() or c in "_-" else "_" for c in str(name))[:64],
        )

    def response_format(self) -> dict[str, Any]:
        """The chat-completions ``response_format`` asking for this output."""
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.schema, "strict": self.strict},
        }

    def tool_definition(self) -> ToolDefinition:
        """The final-answer tool used when the model cannot honour ``response_format``."""
        return ToolDefinition(
            name=FINAL_RESULT_TOOL,
            description="Give the final answer. Call this exactly once, when you are done.",
            parameters=self.schema,
            strict=self.strict,
        )

    def validate_json(self, text: str) -> Any:
        """Validate the model's JSON answer; raises ``ValueError`` with a readable reason."""
        if self.wrapped:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"the answer is not valid JSON: {exc}") from exc
            if not isinstance(data, dict) or "result" not in data:
                raise ValueError('the answer must be a JSON object {"result": ...}')
            return self._validate_python(data["result"])
        try:
            return self.adapter.validate_json(text or "")
        except pydantic.ValidationError as exc:
            raise ValueError(_describe(exc)) from exc

    def _validate_python(self, value: Any) -> Any:
        try:
            return self.adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise ValueError(_describe(exc)) from exc


def _strict_or_none(schema: dict[str, Any]) -> dict[str, Any] | None:
    # Optional fields would become nullable in strict form, and a null would then have to
    # mean "the default"; for outputs that is not worth it, so such types go non-strict.
    try:
        strict = to_strict(schema)
    except NotStrictError:
        return None
    if any(strict.null_means_default.values()):
        return None
    return strict.schema


def _describe(exc: pydantic.ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(root)"
        lines.append(f"{where}: {error['msg']}")
    return "; ".join(lines)
