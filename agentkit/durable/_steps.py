"""A run's model and tools, each request and each call a DBOS step.

The loop of :mod:`agentkit.run` is left as it is: the durable workflow hands it a model
whose ``request`` is a step and tools whose ``invoke`` is a step. DBOS records each
step's result; a workflow that runs again after a crash gets the recorded results back
in order, and only the step in flight at the crash runs again.

Step results are stored as plain data (dicts of strings and numbers), not as pickled
objects, so a worker running a newer agentkit can still read them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from agentkit import errors
from agentkit.messages import Message, to_saved
from agentkit.models.base import Model, ModelRequest, ModelResponse, StreamItem, TextDelta
from agentkit.tools import RunContext, Tool, ToolResult
from agentkit.usage import Usage

__all__ = ["StepModel", "StepTool", "idempotency_key", "raise_recorded"]

logger = logging.getLogger("agentkit")

# Errors a step may record by name; anything else comes back as a RunError.
_RECORDED_ERRORS: dict[str, type[errors.AgentkitError]] = {
    cls.__name__: cls
    for cls in (
        errors.ModelError,
        errors.ModelHTTPError,
        errors.ModelConnectionError,
        errors.RateLimited,
        errors.QuotaExceeded,
        errors.AuthenticationError,
        errors.PermissionDenied,
        errors.ModelNotFound,
        errors.ContextLengthExceeded,
        errors.ConfigurationError,
        errors.RunError,
    )
}


def idempotency_key(run_id: str, call_id: str) -> str:
    """The key a tool call sees in ``ctx.idempotency_key``: the same for every attempt."""
    return f"{run_id}:{call_id}"


def _record_error(exc: errors.AgentkitError) -> dict[str, Any]:
    return {"error": type(exc).__name__, "message": str(exc)}


def raise_recorded(recorded: Mapping[str, Any]) -> None:
    """Raise the error a step recorded, as the closest agentkit type (the message kept)."""
    cls = _RECORDED_ERRORS.get(str(recorded["error"]), errors.RunError)
    try:
        error = cls(str(recorded["message"]))
    except TypeError:  # an error type whose constructor wants more than a message
        error = errors.RunError(str(recorded["message"]))
    raise error


class StepModel(Model):
    """``model`` with every request a DBOS step (streaming yields the whole text at once:
    a replayed step has no deltas to give)."""

    def __init__(self, model: Model) -> None:
        self.inner = model
        self.name = model.name
        self.supports_json_schema = model.supports_json_schema

    async def request(self, request: ModelRequest) -> ModelResponse:
        from dbos import DBOS

        async def send() -> dict[str, Any]:
            try:
                response = await self.inner.request(request)
            except errors.AgentkitError as exc:
                # Recorded, so that a replay fails the same way instead of asking again.
                return _record_error(exc)
            return {
                "message": to_saved(response.message),
                "finish_reason": response.finish_reason,
                "usage": dataclasses.asdict(response.usage),
                "model_name": response.model_name,
            }

        recorded = await DBOS.run_step_async({"name": "agentkit.model"}, send)
        if "error" in recorded:
            raise_recorded(recorded)
        return ModelResponse(
            message=Message.from_openai(recorded["message"]),
            finish_reason=recorded["finish_reason"],
            usage=_usage(recorded["usage"]),
            model_name=recorded["model_name"],
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        response = await self.request(request)
        if response.message.text:
            yield TextDelta(response.message.text)
        yield response


def _usage(data: Mapping[str, Any]) -> Usage:
    known = {f.name for f in dataclasses.fields(Usage)}
    return Usage(**{k: v for k, v in data.items() if k in known})


class StepTool(Tool[Any, Any]):
    """``tool`` with every invocation a DBOS step; the function sees
    ``ctx.idempotency_key == f"{run_id}:{call_id}"``."""

    def __init__(self, tool: Tool[Any, Any], run_id: str) -> None:
        # The same tool in every respect (schema, approval rule, retries) but invoke.
        self.__dict__.update(tool.__dict__)
        self.inner = tool
        self.run_id = run_id

    async def invoke(
        self, arguments: str | Mapping[str, Any] | None, context: RunContext[Any] | None = None
    ) -> ToolResult:
        from dbos import DBOS

        call_id = context.tool_call_id if context is not None else None
        if context is not None and call_id is not None:
            context = dataclasses.replace(
                context, idempotency_key=idempotency_key(self.run_id, call_id)
            )

        async def call() -> dict[str, Any]:
            result = await self.inner.invoke(arguments, context)
            return _encode_result(result)

        # The call id in the step name: a replay that reached another call fails loudly.
        name = f"agentkit.tool:{self.name}:{call_id or ''}"
        return _decode_result(await DBOS.run_step_async({"name": name}, call), self.name)


def _encode_result(result: ToolResult) -> dict[str, Any]:
    value = result.value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = None  # not plain data: a replay has the text the model read, not the value
    error = result.error
    return {
        "content": result.content,
        "is_error": result.is_error,
        "value": value,
        "error": None if error is None else {"type": type(error).__name__, "message": str(error)},
    }


def _decode_result(data: Mapping[str, Any], tool_name: str) -> ToolResult:
    error: errors.ToolCallError | None = None
    recorded = data.get("error")
    if recorded is not None:
        kind = {
            "ToolArgumentsError": errors.ToolArgumentsError,
            "UnknownToolError": errors.UnknownToolError,
        }.get(recorded["type"], errors.ToolCallError)
        error = kind(recorded["message"], tool_name=tool_name)
    return ToolResult(
        content=data["content"], is_error=bool(data["is_error"]), value=data["value"], error=error
    )
