"""Runs that wait for a person: tools that need approval, external tools, resume with
decisions (agentkit/run.py, agentkit/agent.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentkit import (
    Agent,
    Message,
    NotPending,
    PendingCall,
    RunContext,
    RunFinished,
    RunState,
    ToolCall,
    tool,
)
from agentkit.models import ModelRequest, ModelResponse
from agentkit.testing import FunctionModel

pytestmark = pytest.mark.anyio

deleted: list[str] = []


@tool(needs_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    deleted.append(path)
    return f"deleted {path}"


@tool
def list_files() -> list[str]:
    """List the files."""
    return ["a.txt", "b.txt"]


@tool(external=True)
def get_location() -> str:
    """The user's location (the app asks the device)."""
    raise AssertionError("an external tool never runs in the agent")


@tool(needs_approval=lambda ctx, args: args["path"].startswith("/etc"))
def edit_file(path: str, text: str) -> str:
    """Edit a file."""
    return f"edited {path}"


def planner(*calls: ToolCall) -> FunctionModel:
    """Calls ``calls`` in its first turn, then reports every tool result it got."""

    def reply(request: ModelRequest) -> Any:
        if not any(m.role == "tool" for m in request.messages):
            return ModelResponse(Message.assistant(None, list(calls)), "tool_calls")
        return "Results: " + " | ".join(m.text for m in request.messages if m.role == "tool")

    return FunctionModel(reply)


@pytest.fixture(autouse=True)
def _clear() -> None:
    deleted.clear()


async def test_a_call_that_needs_approval_stops_the_run_and_the_others_run() -> None:
    model = planner(ToolCall("c1", "list_files", "{}"),
                    ToolCall("c2", "delete_file", '{"path": "a.txt"}'))
    agent = Agent(model=model, tools=[list_files, delete_file])
    result = await agent.run("Delete a.txt")
    assert result.status == "requires_action"
    assert result.output is None
    assert result.pending == [PendingCall("c2", "delete_file", {"path": "a.txt"}, "approval")]
    assert deleted == []
    # The call that needed nothing ran; the waiting one has no result yet.
    assert [m.tool_call_id for m in result.messages if m.role == "tool"] == ["c1"]
    assert len(model.requests) == 1

    done = await agent.resume(RunState.from_json(result.state.to_json()), approve=["c2"])
    assert done.status == "completed"
    assert deleted == ["a.txt"]
    assert done.output == 'Results: ["a.txt","b.txt"] | deleted a.txt'
    # Results stay in call order.
    assert [m.tool_call_id for m in done.messages if m.role == "tool"] == ["c1", "c2"]


async def test_a_rejection_reason_is_what_the_model_reads() -> None:
    agent = Agent(model=planner(ToolCall("c1", "delete_file", '{"path": "a.txt"}')),
                  tools=[delete_file])
    paused = await agent.run("Delete a.txt")
    done = await agent.resume(paused.state, reject={"c1": "keep my files"})
    assert deleted == []
    assert "keep my files" in done.output
    assert done.status == "completed"


async def test_an_external_tool_waits_for_its_output_and_non_strings_go_as_json() -> None:
    agent = Agent(model=planner(ToolCall("c1", "get_location", "{}")), tools=[get_location])
    paused = await agent.run("Where am I?")
    assert paused.pending == [PendingCall("c1", "get_location", {}, "external")]
    done = await agent.resume(paused.state, outputs={"c1": {"city": "Paris"}})
    assert done.output == 'Results: {"city": "Paris"}'
    assert json.loads(done.tool_results()[0].text) == {"city": "Paris"}


async def test_a_predicate_decides_per_call() -> None:
    agent = Agent(
        model=planner(ToolCall("c1", "edit_file", '{"path": "/tmp/x", "text": "hi"}'),
                      ToolCall("c2", "edit_file", '{"path": "/etc/hosts", "text": "hi"}')),
        tools=[edit_file],
    )
    paused = await agent.run("Edit both")
    assert [p.id for p in paused.pending] == ["c2"]
    assert [m.text for m in paused.messages if m.role == "tool"] == ["edited /tmp/x"]


async def test_undecided_calls_keep_waiting() -> None:
    agent = Agent(model=planner(ToolCall("c1", "delete_file", '{"path": "a.txt"}'),
                                ToolCall("c2", "delete_file", '{"path": "b.txt"}')),
                  tools=[delete_file])
    paused = await agent.run("Delete both")
    half = await agent.resume(paused.state, approve=["c1"])
    assert half.status == "requires_action"
    assert [p.id for p in half.pending] == ["c2"]
    assert deleted == ["a.txt"]
    done = await agent.resume(half.state, reject={"c2": "no"})
    assert done.status == "completed" and deleted == ["a.txt"]


async def test_deciding_on_a_call_that_is_not_pending_is_a_typed_error() -> None:
    agent = Agent(model=planner(ToolCall("c1", "delete_file", '{"path": "a.txt"}')),
                  tools=[delete_file])
    paused = await agent.run("Delete a.txt")
    before = paused.state.to_json()
    with pytest.raises(NotPending, match=r"'c9'.*c1 \(approval of delete_file\)"):
        await agent.resume(paused.state, approve=["c9"])
    with pytest.raises(NotPending, match="an output"):
        await agent.resume(paused.state, outputs={"c1": "x"})
    assert paused.state.to_json() == before  # nothing changed


async def test_a_streamed_run_ends_with_the_waiting_result() -> None:
    agent = Agent(model=planner(ToolCall("c1", "delete_file", '{"path": "a.txt"}')),
                  tools=[delete_file])
    events = [e async for e in agent.stream("Delete a.txt")]
    assert isinstance(events[-1], RunFinished)
    assert events[-1].result.status == "requires_action"


def test_an_external_tool_cannot_also_need_approval() -> None:
    from agentkit import ToolDefinitionError

    with pytest.raises(ToolDefinitionError, match="external"):
        @tool(external=True, needs_approval=True)
        def both() -> str:
            """Both."""
            return ""


async def test_the_predicate_sees_the_run_context() -> None:
    seen: list[Any] = []

    def rule(ctx: RunContext[Any], args: dict[str, Any]) -> bool:
        seen.append((ctx.deps, ctx.tool_name, args))
        return False

    @tool(needs_approval=rule)
    def guarded(x: int) -> int:
        """Guarded."""
        return x

    agent = Agent(model=planner(ToolCall("c1", "guarded", '{"x": 1}')), tools=[guarded])
    result = await agent.run("go", context="deps")
    assert result.status == "completed"
    assert seen == [("deps", "guarded", {"x": 1})]


async def test_a_rule_that_raises_asks_for_approval() -> None:
    @tool(needs_approval=lambda ctx, args: args["path"].startswith("/etc"))
    def touch(file: str) -> str:
        """Touch."""
        return "touched"

    agent = Agent(model=planner(ToolCall("c1", "touch", '{"file": "x"}')), tools=[touch])
    result = await agent.run("go")
    assert result.status == "requires_action" and result.pending[0].id == "c1"


async def test_resume_leaves_the_callers_state_and_results_as_they_were() -> None:
    agent = Agent(model=planner(ToolCall("c1", "delete_file", '{"path": "a.txt"}')),
                  tools=[delete_file])
    paused = await agent.run("Delete a.txt")
    before = paused.state.to_json()
    await agent.resume(paused.state, approve=["c1"])
    assert paused.state.to_json() == before and paused.status == "requires_action"
    assert len(paused.messages) == 2


async def test_decisions_that_make_no_sense_are_refused() -> None:
    from agentkit import ConfigurationError

    agent = Agent(model=planner(ToolCall("c1", "delete_file", '{"path": "a.txt"}')),
                  tools=[delete_file])
    paused = await agent.run("Delete a.txt")
    with pytest.raises(ConfigurationError, match=r"approve=\['c1'\]"):
        await agent.resume(paused.state, approve="c1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="both approved and rejected"):
        await agent.resume(paused.state, approve=["c1"], reject={"c1": "no"})
