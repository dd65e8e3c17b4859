"""Agent entry points (agentkit/agent.py): run_sync from any context, Ctrl-C, model
resolution."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import traceback

import pytest

from agentkit import Agent, MaxTurnsExceeded, Message, ToolCall, tool
from agentkit.models import ModelResponse
from agentkit.testing import FakeOpenAIServer, FunctionModel

pytestmark = pytest.mark.anyio


@tool
def loop_forever() -> str:
    """Never finishes the conversation."""
    return "again"


def always_calls(request: object) -> ModelResponse:
    return ModelResponse(Message.assistant(None, [ToolCall("", "loop_forever", "{}")]),
                         "tool_calls")


def test_run_sync_errors_have_a_clean_traceback_outside_a_loop() -> None:
    agent = Agent(model=FunctionModel(always_calls), tools=[loop_forever], max_turns=2)
    with pytest.raises(MaxTurnsExceeded) as info:
        agent.run_sync("x")
    assert info.value.__context__ is None and info.value.__cause__ is None
    text = "".join(traceback.format_exception(info.value))
    assert "no running event loop" not in text


async def test_run_sync_errors_have_a_clean_traceback_inside_a_loop() -> None:
    agent = Agent(model=FunctionModel(always_calls), tools=[loop_forever], max_turns=2)
    with pytest.raises(MaxTurnsExceeded) as info:
        agent.run_sync("x")
    assert info.value.__context__ is None
    assert "no running event loop" not in "".join(traceback.format_exception(info.value))


# A run that would go on for a long time: the model asks for a tool every turn and each
# call takes a while. A timer sends SIGINT to the process after 0.5 s.
_INTERRUPT_SCRIPT = textwrap.dedent('''
    import asyncio, json, os, signal, sys, threading, time
    from agentkit import Agent, Message, ToolCall, tool
    from agentkit.models import ModelResponse
    from agentkit.testing import FunctionModel

    starts = []

    @tool
    async def step() -> str:
        """One slow step."""
        starts.append(("tool", time.monotonic()))
        await asyncio.sleep(0.2)
        return "done"

    def reply(request):
        starts.append(("request", time.monotonic()))
        return ModelResponse(Message.assistant(None, [ToolCall("", "step", "{}")]),
                             "tool_calls")

    agent = Agent(model=FunctionModel(reply), tools=[step], max_turns=1000)
    sent = {}

    def interrupt():
        time.sleep(0.5)
        sent["at"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)

    async def main():
        threading.Thread(target=interrupt, daemon=True).start()
        agent.run_sync("go")

    outcome = "finished"
    try:
        if sys.argv[1] == "asyncio.run":
            asyncio.run(main())
        elif sys.argv[1] == "loop":
            asyncio.new_event_loop().run_until_complete(main())
        else:
            threading.Thread(target=interrupt, daemon=True).start()
            agent.run_sync("go")
    except KeyboardInterrupt:
        outcome = "KeyboardInterrupt"
    raised = time.monotonic()
    time.sleep(1.0)  # anything the run still did would show up now
    print(json.dumps({
        "outcome": outcome,
        "delay": raised - sent["at"],
        "after": [kind for kind, at in starts if at > raised],
        "before": len(starts),
    }))
''')


@pytest.mark.parametrize("where", ["asyncio.run", "loop", "no loop"])
def test_ctrl_c_stops_a_run_sync_promptly_and_nothing_starts_afterwards(where: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_SCRIPT, where],
        capture_output=True, text=True, timeout=60,
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    assert report["outcome"] == "KeyboardInterrupt"
    assert report["delay"] < 1.0
    assert report["before"] >= 2  # the run was really going
    assert report["after"] == []


# --- model resolution --------------------------------------------------------------------------

module_agent = Agent(model="gpt-4o-mini")


def test_a_module_level_agent_follows_the_environment_between_tests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeOpenAIServer() as first, FakeOpenAIServer() as second:
        first.enqueue("from the first server")
        second.enqueue("from the second server")
        monkeypatch.setenv("OPENAI_API_KEY", first.api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", first.base_url)
        assert module_agent.run_sync("hi").output == "from the first server"
        monkeypatch.setenv("OPENAI_API_KEY", second.api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", second.base_url)
        assert module_agent.run_sync("hi").output == "from the second server"
        # Unchanged environment: the same model object (and its connection pool) is reused.
        assert module_agent.model is module_agent.model


def test_every_exception_and_run_value_is_importable_from_agentkit() -> None:
    import agentkit
    import agentkit.errors

    assert set(agentkit.errors.__all__) <= set(agentkit.__all__)
    for name in ("RunState", "PendingCall", "RunStatus", "RunOptions"):
        assert hasattr(agentkit, name), name
