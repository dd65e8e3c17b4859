"""Runs on stored threads (agentkit/threads/runner.py), on SQLite and a real PostgreSQL:
items stored per step, statuses, approvals across processes, cancel, failures, leases."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import anyio
import pytest
from conftest import Backend
from test_threads_store import ROOT

from agentkit import (
    Agent,
    ConfigurationError,
    Message,
    ModelConnectionError,
    NotPending,
    ToolCall,
    tool,
)
from agentkit.errors import RunStatusError, ThreadBusy
from agentkit.models import ModelRequest, ModelResponse
from agentkit.testing import FunctionModel
from agentkit.threads import Store

pytestmark = pytest.mark.anyio

calls: list[str] = []


@tool
def lookup(city: str) -> str:
    """Weather for a city."""
    calls.append(f"lookup:{city}")
    return f"rain in {city}"


@tool(needs_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    calls.append(f"delete:{path}")
    return f"deleted {path}"


def planner(request: ModelRequest) -> Any:
    """Asks for the tool named in the last user message, then answers from its result."""
    last = request.messages[-1]
    if last.role == "user":
        name, _, arg = last.text.partition(" ")
        key = "path" if name == "delete_file" else "city"
        call = ToolCall(f"c{len(request.messages)}", name, json.dumps({key: arg}))
        return ModelResponse(Message.assistant(None, [call]), "tool_calls")
    return f"done: {last.text}"


@pytest.fixture(autouse=True)
def _clear() -> None:
    calls.clear()


def agent(store: Store | None = None) -> Agent[str]:
    return Agent(name="bot", instructions="Be brief.", model=FunctionModel(planner),
                 tools=[lookup, delete_file], store=store)


async def test_each_run_stores_its_messages_and_the_next_run_continues(store: Store) -> None:
    thread = await store.create_thread(metadata={"user": "u1"})
    first = await agent().run("lookup Paris", thread=thread.id, store=store)
    assert first.status == "completed" and first.output == "done: rain in Paris"
    stored = await store.messages(thread.id)
    assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored == first.new_messages  # the instructions are not stored

    second = await agent(store).run("lookup Oslo", thread=thread.id)
    assert [m.text for m in second.messages[:5]] == ["Be brief.", *[m.text for m in stored]]
    assert len(await store.messages(thread.id)) == 8
    record = await store.get_run(second.run_id)
    assert record.status == "completed" and record.thread_id == thread.id
    assert record.agent == "bot" and record.usage.requests == 2
    assert [r.id for r in await store.list_runs(thread.id)] == [first.run_id, second.run_id]


async def test_a_streamed_run_on_a_thread_is_stored_too(store: Store) -> None:
    thread = await store.create_thread()
    events = [e async for e in agent(store).stream("lookup Rome", thread=thread.id)]
    assert events[-1].result.run_id is not None
    assert len(await store.messages(thread.id)) == 4


async def test_approval_waits_in_the_store_and_a_resume_continues(store: Store) -> None:
    thread = await store.create_thread()
    paused = await agent(store).run("delete_file a.txt", thread=thread.id)
    assert paused.status == "requires_action" and calls == []
    record = await store.get_run(paused.run_id)
    assert record.status == "requires_action"
    assert [(p.id, p.name, p.kind) for p in record.pending] == [
        (paused.pending[0].id, "delete_file", "approval")
    ]
    # The waiting run is the thread's active run.
    with pytest.raises(ThreadBusy):
        await agent(store).run("lookup Paris", thread=thread.id)
    # A bad decision changes nothing.
    with pytest.raises(NotPending):
        await agent(store).resume(paused.run_id, approve=["nope"])
    assert (await store.get_run(paused.run_id)).status == "requires_action"

    done = await agent(store).resume(paused.run_id, approve=[paused.pending[0].id])
    assert done.status == "completed" and calls == ["delete:a.txt"]
    assert done.run_id == paused.run_id
    assert (await store.get_run(paused.run_id)).status == "completed"
    assert [m.role for m in await store.messages(thread.id)] == [
        "user", "assistant", "tool", "assistant"
    ]
    with pytest.raises(RunStatusError, match="not waiting"):
        await agent(store).resume(paused.run_id, approve=[paused.pending[0].id])


async def test_a_resume_from_another_process_hours_later(store: Store, backend: Backend) -> None:
    thread = await store.create_thread()
    paused = await agent(store).run("delete_file b.txt", thread=thread.id)
    script = textwrap.dedent('''
        import sys, anyio
        sys.path.insert(0, "tests")
        from test_threads_runs import agent, calls
        from agentkit.threads import SQLiteStore, PostgresStore
        kind, url, run_id, call_id = sys.argv[1:]
        async def main():
            store = SQLiteStore(url) if kind == "sqlite" else PostgresStore(url)
            result = await agent(store).resume(run_id, reject={call_id: "keep it"})
            await store.close()
            print(result.status, calls, result.output)
        anyio.run(main)
    ''')
    done = subprocess.run(
        [sys.executable, "-c", script, backend.kind, backend.url, paused.run_id,
         paused.pending[0].id],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("completed [] done: Not run: the user rejected")
    assert "keep it" in (await store.messages(thread.id))[2].text


async def test_cancel_stops_the_run_at_the_next_step(store: Store) -> None:
    started = anyio.Event()

    @tool
    async def slow() -> str:
        """Slow."""
        started.set()
        await anyio.sleep(0.5)
        return "finished anyway"

    def reply(request: ModelRequest) -> Any:
        if request.messages[-1].role == "user":
            return ModelResponse(Message.assistant(None, [ToolCall("s1", "slow", "{}")]),
                                 "tool_calls")
        return "should not be asked"

    model = FunctionModel(reply)
    thread = await store.create_thread()
    bot = Agent(model=model, tools=[slow], store=store)
    result: Any = None

    async def run() -> None:
        nonlocal result
        result = await bot.run("go", thread=thread.id)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await started.wait()
        run_id = (await store.list_runs(thread.id))[0].id
        assert (await store.cancel_run(run_id)).status == "cancelling"
    assert result.status == "cancelled" and result.output is None
    assert len(model.requests) == 1  # no request after the cancel
    assert (await store.get_run(run_id)).status == "cancelled"
    # The thread stays valid: the tool's result was stored with its call.
    assert [m.role for m in await store.messages(thread.id)] == ["user", "assistant", "tool"]
    follow = await agent(store).run("lookup Paris", thread=thread.id)
    assert follow.status == "completed"


async def test_a_failed_run_is_recorded_and_frees_the_thread(store: Store) -> None:
    def broken(request: ModelRequest) -> Any:
        if any(m.role == "tool" for m in request.messages):
            raise ModelConnectionError("connection refused (test)")
        return planner(request)

    thread = await store.create_thread()
    bot = Agent(model=FunctionModel(broken), tools=[lookup], store=store)
    with pytest.raises(ModelConnectionError):
        await bot.run("lookup Paris", thread=thread.id)
    record = (await store.list_runs(thread.id))[0]
    assert record.status == "failed" and "connection refused" in (record.error or "")
    assert [m.role for m in await store.messages(thread.id)] == ["user", "assistant", "tool"]
    assert (await agent(store).run("lookup Oslo", thread=thread.id)).status == "completed"


async def test_thread_without_store_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="needs a store"):
        await agent().run("hi", thread="thread_x")


async def test_a_killed_run_stops_blocking_its_thread_after_its_lease(
    store: Store, backend: Backend
) -> None:
    thread = await store.create_thread()
    script = textwrap.dedent('''
        import sys, anyio
        sys.path.insert(0, "tests")
        from agentkit import Agent, tool
        from agentkit.threads import SQLiteStore, PostgresStore, runner
        from test_threads_runs import planner
        from agentkit.testing import FunctionModel
        runner.LEASE = 1.0
        kind, url, thread_id = sys.argv[1:]

        @tool
        async def lookup(city: str) -> str:
            """Hangs."""
            print("in tool", flush=True)
            await anyio.sleep(60)
            return ""

        async def main():
            store = SQLiteStore(url) if kind == "sqlite" else PostgresStore(url)
            await Agent(model=FunctionModel(planner), tools=[lookup]).run(
                "lookup Paris", thread=thread_id, store=store)
        anyio.run(main)
    ''')
    child = subprocess.Popen([sys.executable, "-c", script, backend.kind, backend.url,
                              thread.id], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "in tool"
    child.kill()
    child.wait()
    with pytest.raises(ThreadBusy):
        await agent(store).run("lookup Oslo", thread=thread.id)
    deadline = time.monotonic() + 30
    while True:
        try:
            result = await agent(store).run("lookup Oslo", thread=thread.id)
            break
        except ThreadBusy:
            assert time.monotonic() < deadline
            await anyio.sleep(0.2)
    assert result.status == "completed"
    dead = (await store.list_runs(thread.id))[0]
    assert dead.status in ("expired", "failed")
    # The dead run's call without a result was answered before the thread was sent on.
    roles = [m.role for m in await store.messages(thread.id)]
    assert roles[:3] == ["user", "assistant", "tool"]


async def test_a_history_policy_loads_only_the_tail_of_a_long_thread(store: Store) -> None:
    from agentkit.threads import keep_last, keep_tokens

    thread = await store.create_thread()
    for i in range(100):
        await store.append_items(thread.id, None, [
            Message.user("q"),
            Message.assistant(None, [ToolCall(f"x{i}", "lookup", "{}")]),
            Message.tool(f"x{i}", "rain", name="lookup"),
            Message.assistant("a"),
        ])
    model = FunctionModel(lambda request: "ok")
    for policy in (keep_last(6), keep_tokens(40)):
        bot = Agent(instructions="Be brief.", model=model, history_policy=policy)
        result = await bot.run("latest?", thread=thread.id, store=store)
        # Loaded: about the policy's window, not the 400 stored messages.
        assert len(result.messages) < 60
        sent = model.requests[-1].messages
        assert sent[0].role == "system" and sent[-1].text == "latest?"
        assert sent[1].role != "tool"
    assert len(await store.messages(thread.id)) == 404


async def test_summaries_are_stored_with_the_thread_and_reused_by_later_runs(
    store: Store,
) -> None:
    from agentkit.threads import summarize

    asked: list[str] = []

    def write(request: ModelRequest) -> str:
        asked.append(request.messages[-1].text)
        return f"they talked about {len(asked)} things"

    thread = await store.create_thread()
    for i in range(15):
        await store.append_items(thread.id, None, [Message.user(f"q{i}"), Message.assistant("a")])
    answers = FunctionModel(lambda request: "ok")

    def bot() -> Agent[str]:  # a new policy object each time, as in a new process
        policy = summarize(FunctionModel(write), keep_last=6, every=10)
        return Agent(model=answers, history_policy=policy, store=store)

    await bot().run("first", thread=thread.id)
    assert len(asked) == 1
    assert list((await store.summaries(thread.id)).values()) == ["they talked about 1 things"]
    await bot().run("second", thread=thread.id)
    assert len(asked) == 1  # the stored summary was reused
    sent = answers.requests[-1].messages
    assert sent[0].text.endswith("they talked about 1 things")
    assert sent[-1].text == "second"
    # Summaries are never messages.
    assert all(m.role in ("user", "assistant") for m in await store.messages(thread.id))


async def test_history_and_thread_together_are_refused(store: Store) -> None:
    thread = await store.create_thread()
    with pytest.raises(ConfigurationError, match="history= and thread="):
        await agent(store).run("hi", thread=thread.id, history=[Message.user("x")])


async def test_resuming_a_thread_that_starts_with_a_system_message_stores_nothing_twice(
    store: Store,
) -> None:
    thread = await store.create_thread()
    await store.append_items(thread.id, None, [Message.system("Stored prompt.")])
    paused = await agent(store).run("delete_file a.txt", thread=thread.id)
    done = await agent(store).resume(paused.run_id, approve=[paused.pending[0].id])
    assert done.status == "completed"
    roles = [m.role for m in await store.messages(thread.id)]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]


async def test_leaving_a_streamed_run_early_frees_the_thread_at_once(store: Store) -> None:
    thread = await store.create_thread()
    events = agent(store).stream("lookup Paris", thread=thread.id)
    async for _ in events:
        break
    await events.aclose()  # type: ignore[attr-defined]
    assert (await store.list_runs(thread.id))[0].status == "cancelled"
    assert (await agent(store).run("lookup Oslo", thread=thread.id)).status == "completed"


async def test_a_cancel_while_tools_run_wins_over_waiting_for_approval(store: Store) -> None:
    started = anyio.Event()

    @tool
    async def slow_list() -> str:
        """Slow."""
        started.set()
        await anyio.sleep(0.3)
        return "a.txt"

    def reply(request: ModelRequest) -> Any:
        calls = [ToolCall("l1", "slow_list", "{}"),
                 ToolCall("d1", "delete_file", '{"path": "a.txt"}')]
        return ModelResponse(Message.assistant(None, calls), "tool_calls")

    thread = await store.create_thread()
    bot = Agent(model=FunctionModel(reply), tools=[slow_list, delete_file], store=store)
    result: Any = None

    async def run() -> None:
        nonlocal result
        result = await bot.run("go", thread=thread.id)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await started.wait()
        await store.cancel_run((await store.list_runs(thread.id))[0].id)
    assert result.status == "cancelled"
    assert (await store.list_runs(thread.id))[0].status == "cancelled"
