"""Assertions about what a run did, with failure messages that show what happened instead."""

from __future__ import annotations

import json
from typing import Any, Protocol

from agentkit.messages import Message, ToolCall

__all__ = ["assert_called_tool", "assert_no_tool_errors"]


class _HasMessages(Protocol):
    @property
    def new_messages(self) -> list[Message]: ...


def _calls(result: _HasMessages) -> list[ToolCall]:
    return [call for message in result.new_messages for call in message.tool_calls]


def _describe(call: ToolCall) -> str:
    try:
        arguments = json.dumps(call.parsed_arguments(), sort_keys=True, ensure_ascii=False)
    except ValueError:
        arguments = repr(call.arguments) + " (not valid JSON)"
    return f"{call.name}({arguments})"


def _made(calls: list[ToolCall]) -> str:
    if not calls:
        return "no tool calls were made"
    lines = "\n".join(f"  {i}. {_describe(call)}" for i, call in enumerate(calls, 1))
    return f"the calls made were:\n{lines}"


def assert_called_tool(result: _HasMessages, name: str, /, **expected_args: Any) -> ToolCall:
    """Assert the run called tool ``name`` with at least the given arguments.

    Only the arguments you pass are compared, so ``assert_called_tool(result,
    "get_weather", city="Paris")`` passes for a call with ``city="Paris", unit="c"``.
    Returns the first matching call; on failure the message lists every call made.
    """
    calls = _calls(result)
    named = [call for call in calls if call.name == name]
    if not named:
        raise AssertionError(f"expected a call to tool {name!r}, but {_made(calls)}")
    for call in named:
        try:
            arguments = call.parsed_arguments()
        except ValueError:
            continue
        if isinstance(arguments, dict) and all(
            key in arguments and arguments[key] == value for key, value in expected_args.items()
        ):
            return call
    wanted = json.dumps(expected_args, sort_keys=True, ensure_ascii=False, default=repr)
    raise AssertionError(
        f"expected a call to tool {name!r} with arguments including {wanted}, but {_made(calls)}"
    )


def assert_no_tool_errors(result: _HasMessages) -> None:
    """Assert no tool call of the run failed (bad arguments, unknown tool, exception,
    timeout); on failure the message lists each failed call and its error text."""
    calls = {call.id: call for call in _calls(result)}
    failures = [m for m in result.new_messages if m.role == "tool" and m.is_error]
    if not failures:
        return
    lines = []
    for message in failures:
        call = calls.get(message.tool_call_id or "")
        what = _describe(call) if call is not None else f"{message.name}(?)"
        lines.append(f"  - {what}: {message.text}")
    raise AssertionError(f"{len(failures)} tool call(s) failed:\n" + "\n".join(lines))
