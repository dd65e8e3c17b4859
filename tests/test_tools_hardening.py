"""Tool hardening: secrets in tool errors are redacted everywhere the error text goes,
tools get a cancellation signal they can poll, and undecodable results still reach the
model as text."""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from typing import Any

import anyio
import pytest

from agentkit import Agent, RunContext, tool
from agentkit._secrets import redact
from agentkit.errors import ToolError, ToolRetriesExceeded
from agentkit.messages import to_openai
from agentkit.testing import ScriptedModel, tool_call_response

pytestmark = pytest.mark.anyio

CANARY = "sk-proj-Canary1234567890abcdefXYZ"
BEARER = "eyJhbGciOiJIUzI1NiJ9.canarypayload.sig0123"


@tool(max_retries=1)
def call_api(path: str) -> str:
    """Call the upstream API."""
    raise RuntimeError(
        f"401 from https://api.example.com{path}: request headers were "
        f"{{'Authorization': 'Bearer {BEARER}', 'X-Key': '{CANARY}'}}"
    )


def _leaks(text: str) -> list[str]:
    return [secret for secret in (CANARY, BEARER, CANARY[8:]) if secret in text]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {CANARY} rejected", "key sk-pr*** rejected"),
        (f"Authorization: Bearer {BEARER}", "Authorization: Bearer ***"),
        ("authorization: bearer abcdefgh12345678", "authorization: bearer ***"),
        ("GET /v1?api_key=abcd1234efgh5678&q=paris", "GET /v1?api_key=***&q=paris"),
        ('{"api_key": "abcd1234efgh5678", "n": 1}', '{"api_key": "***", "n": 1}'),
        ("x-api-key: abcd1234efgh5678", "x-api-key: ***"),
        ("access_token='abcd1234efgh5678'", "access_token='***'"),
    ],
)
def test_redact_recognises_common_key_shapes(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the bearer of bad news",
        "Bearer token missing",
        "max_tokens=100, api_key=None",
        "task-1234567890 and desk-lamp",
        "api_key: <set OPENAI_API_KEY>",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_keeps_json_valid() -> None:
    body = json.dumps({"message": f'api_key="{CANARY}" "access_token": "abcd1234efgh5678"'})
    cleaned = json.loads(redact(body))["message"]
    assert _leaks(cleaned) == []
    assert "abcd1234efgh5678" not in cleaned


async def test_tool_error_text_is_redacted_but_the_exception_is_kept() -> None:
    result = await call_api.invoke({"path": "/v1/items"})
    assert result.is_error and isinstance(result.error, ToolError)
    assert _leaks(result.content) == []
    assert result.content.startswith(
        "Tool 'call_api' raised RuntimeError: 401 from https://api.example.com/v1/items"
    )
    assert "Bearer ***" in result.content
    error = result.error
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error))
    assert _leaks(shown) == []
    # The original exception stays available to the program, untouched.
    assert isinstance(error.exception, RuntimeError) and CANARY in str(error.exception)


async def test_canary_never_leaves_the_tool_in_a_run() -> None:
    model = ScriptedModel(
        [tool_call_response(("call_api", {"path": "/a"})), "Could not reach the API."]
    )
    agent = Agent(model=model, tools=[call_api])
    result = await agent.run("go")
    assert result.output == "Could not reach the API."
    assert _leaks(json.dumps(result.to_openai())) == []
    assert _leaks(repr(result.messages)) == []
    second = model.requests[1]
    assert _leaks(json.dumps(to_openai(second.messages))) == []
    assert "Bearer ***" in json.dumps(to_openai(second.messages))


async def test_canary_not_in_tool_retries_exceeded() -> None:
    calls = [tool_call_response(("call_api", {"path": f"/{i}"})) for i in range(3)]
    agent = Agent(model=ScriptedModel(calls), tools=[call_api])
    with pytest.raises(ToolRetriesExceeded) as info:
        await agent.run("go")
    shown = str(info.value) + repr(info.value) + "".join(traceback.format_exception(info.value))
    assert _leaks(shown) == []
    assert _leaks(json.dumps(to_openai(info.value.messages))) == []


async def test_canary_not_in_raised_tool_error() -> None:
    agent = Agent(
        model=ScriptedModel([tool_call_response(("call_api", {"path": "/a"}))]),
        tools=[call_api],
        on_tool_error="raise",
    )
    with pytest.raises(ToolError) as info:
        await agent.run("go")
    assert _leaks("".join(traceback.format_exception(info.value))) == []


# --- cancellation -----------------------------------------------------------------------


def _polling_tool(exited: threading.Event, **options: Any) -> Any:
    def poll(ctx: RunContext[None]) -> str:
        try:
            while not ctx.cancelled:
                time.sleep(0.01)
            return "stopped"
        finally:
            exited.set()

    return tool(poll, **options)


def test_run_context_is_not_cancelled_by_default() -> None:
    ctx = RunContext(None)
    assert ctx.cancelled is False


async def test_sync_tool_polling_cancelled_stops_after_a_timeout() -> None:
    exited = threading.Event()
    poll = _polling_tool(exited, timeout=0.2)
    ctx = RunContext(None)
    result = await poll.invoke({}, ctx)
    assert result.is_error and "did not finish within 0.2 seconds" in result.content
    assert ctx.cancelled
    assert await anyio.to_thread.run_sync(exited.wait, 0.5)


async def test_sync_tool_polling_cancelled_stops_when_the_task_is_cancelled() -> None:
    exited = threading.Event()
    poll = _polling_tool(exited)
    ctx = RunContext(None)
    with anyio.move_on_after(0.2) as scope:
        await poll.invoke({}, ctx)
    assert scope.cancelled_caught
    assert ctx.cancelled
    assert await anyio.to_thread.run_sync(exited.wait, 0.5)


async def test_sync_tool_without_context_argument_gets_a_signal_too() -> None:
    exited = threading.Event()
    poll = _polling_tool(exited, timeout=0.1)
    result = await poll.invoke({})  # invoke makes a RunContext itself
    assert result.is_error and "did not finish within 0.1 seconds" in result.content
    assert await anyio.to_thread.run_sync(exited.wait, 0.5)


# --- undecodable results ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"caf\xc3\xa9 \xff", "café \ufffd"),
        (os.fsdecode(b"report-\xff.txt"), "report-\ufffd.txt"),
        ("pair \ud83d\ude00", "pair \ufffd\ufffd"),
        ([os.fsdecode(b"a\xff")], '["a\ufffd"]'),
        ({"name": os.fsdecode(b"\xff"), "size": 1}, '{"name":"\ufffd","size":1}'),
    ],
)
async def test_undecodable_results_reach_the_model_as_text(value: Any, expected: str) -> None:
    @tool
    def read() -> Any:
        """Read."""
        return value

    result = await read.invoke({})
    assert not result.is_error, result.content
    assert result.content == expected
    result.content.encode("utf-8")  # strict: no lone surrogates left
    assert result.value is value


async def test_undecodable_bytes_nested_in_a_result_are_sent_as_base64_text() -> None:
    @tool
    def read() -> dict[str, Any]:
        """Read."""
        return {"data": b"\xff\xfe", "name": "ok"}

    result = await read.invoke({})
    assert not result.is_error, result.content
    sent = json.loads(result.content)
    assert sent["name"] == "ok" and sent["data"] in ("//4=", "__4=")
