"""Fine-tuning export (runs, eval runs, threads) and validation of the JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentkit import Agent, ConfigurationError, Message, ToolCall, tool
from agentkit.evals import Case, Dataset, checks
from agentkit.finetune import (
    ValidationIssue,
    export_jsonl,
    training_stats,
    validate_jsonl,
)
from agentkit.testing import ScriptedModel
from agentkit.testing.models import tool_call_response
from agentkit.threads import SQLiteStore


@tool
def lookup(order: int) -> str:
    """Look up an order."""
    return f"order {order}: shipped"


def order_agent(*replies: Any) -> Agent[str]:
    return Agent(instructions="You are support.", tools=[lookup],
                 model=ScriptedModel(list(replies)))


def tool_run() -> Any:
    agent = order_agent(tool_call_response(("lookup", {"order": 42})), "Order 42 has shipped.")
    return anyio.run(lambda: agent.run("Where is order 42?"))


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_with_tool_calls_becomes_one_training_line(tmp_path: Path) -> None:
    run = tool_run()
    assert export_jsonl([run], tmp_path / "t.jsonl", tools=[lookup]) == 1
    [line] = read(tmp_path / "t.jsonl")
    assert set(line) == {"messages", "tools", "parallel_tool_calls"}
    roles = [(m["role"], m.get("weight")) for m in line["messages"]]
    assert roles == [("system", None), ("user", None), ("assistant", 0), ("tool", None),
                     ("assistant", 1)]
    call = line["messages"][2]["tool_calls"][0]
    assert line["messages"][3]["tool_call_id"] == call["id"]
    assert call["function"] == {"name": "lookup", "arguments": '{"order": 42}'}
    assert line["tools"] == [lookup.to_openai()]
    assert validate_jsonl(tmp_path / "t.jsonl") == [
        ValidationIssue(None, "1 example(s): OpenAI needs at least 10 (50 to 100 usually help)")
    ]


def test_train_on_all_weights_every_assistant_message(tmp_path: Path) -> None:
    export_jsonl([tool_run()], tmp_path / "all.jsonl", train_on="all")
    [line] = read(tmp_path / "all.jsonl")
    assert [m.get("weight") for m in line["messages"] if m["role"] == "assistant"] == [1, 1]
    assert "tools" not in line  # no tools given, none written
    with pytest.raises(ConfigurationError, match="train_on must be"):
        export_jsonl([], tmp_path / "x.jsonl", train_on="last")  # type: ignore[arg-type]


def test_passing_eval_runs_export_with_the_agents_tools(tmp_path: Path) -> None:
    agent = order_agent(
        tool_call_response(("lookup", {"order": 1})), "Order 1 has shipped.",
        tool_call_response(("lookup", {"order": 2})), "No idea.",
    )
    dataset = Dataset([Case("one", "Order 1?", checks=[checks.contains("shipped")]),
                       Case("two", "Order 2?", checks=[checks.contains("shipped")])])
    report = anyio.run(lambda: dataset.run(agent, concurrency=1))
    assert export_jsonl([report], tmp_path / "good.jsonl", only=lambda r: r.passed) == 1
    [line] = read(tmp_path / "good.jsonl")
    assert line["messages"][-1] == {"role": "assistant", "content": "Order 1 has shipped.",
                                    "weight": 1}
    assert line["tools"][0]["function"]["name"] == "lookup"
    assert line["parallel_tool_calls"] is True
    # A saved report exports the same (the runs are recorded in it).
    report.save(tmp_path / "report.json")
    from agentkit.evals import EvalReport

    export_jsonl(EvalReport.load(tmp_path / "report.json").runs(lambda r: r.passed),
                 tmp_path / "again.jsonl", tools=report.tools)
    assert read(tmp_path / "again.jsonl") == [line]


def test_stored_threads_export_and_conversations_are_cut_after_the_last_answer(
    tmp_path: Path,
) -> None:
    async def main() -> list[Message]:
        store = SQLiteStore(tmp_path / "a.db")
        thread = await store.create_thread()
        agent = order_agent("Hello!", "Bye!")
        await agent.run("Hi", thread=thread.id, store=store)
        await agent.run("Bye", thread=thread.id, store=store)
        return await store.messages(thread.id)

    messages = anyio.run(main)
    unanswered = [Message.user("only a question")]
    # Stopped while waiting for a tool: the unanswered call is cut off with what follows.
    waiting = Message.assistant(tool_calls=[ToolCall("call_9", "lookup", '{"order": 9}')])
    trailing = [*messages, Message.user("one more?"), waiting]
    document = {"thread": {"id": "t"}, "messages": [m.to_openai() for m in messages]}
    count = export_jsonl([messages, unanswered, trailing, document], tmp_path / "th.jsonl")
    assert count == 3
    lines = read(tmp_path / "th.jsonl")
    assert lines[0] == lines[1] == lines[2]
    # A thread stores the conversation, not the agent's instructions.
    assert [m["content"] for m in lines[0]["messages"]] == ["Hi", "Hello!", "Bye", "Bye!"]
    with pytest.raises(ConfigurationError, match="cannot export a int"):
        export_jsonl([3], tmp_path / "bad.jsonl")


def write(path: Path, *lines: Any) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


GOOD = {"messages": [{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "hello", "weight": 1}]}


def test_validation_names_the_line_and_the_problem(tmp_path: Path) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    path = write(
        tmp_path / "bad.jsonl",
        *[GOOD] * 9,
        {"messages": [{"role": "user", "content": "x"}], "extra": 1},
        {"messages": [{"role": "robot", "content": "x"}, {"role": "user"}]},
        {"messages": [{"role": "user", "content": "x"},
                      {"role": "assistant", "tool_calls": [call], "weight": 0},
                      {"role": "user", "content": "skip the result"},
                      {"role": "tool", "tool_call_id": "c9", "content": "?"},
                      {"role": "assistant", "content": "done", "weight": 0.5}]},
        {"messages": [{"role": "user", "content": "x"},
                      {"role": "assistant", "content": "no", "weight": 0}]},
        "not json",
        {"messages": [{"role": "system", "content": "s", "weight": 1},
                      {"role": "assistant", "content": "a"}],
         "tools": [{"type": "function"}]},
    )
    found = [(i.line, i.message) for i in validate_jsonl(path)]
    assert (10, "unknown top-level key 'extra': a line has only messages, tools and "
                "parallel_tool_calls") in found
    assert (10, "no assistant message: there is nothing to train on") in found
    assert (11, "messages[0]: role 'robot' is not one of system, user, assistant, tool") in found
    assert (11, "messages[1]: missing content (user messages need text)") in found
    assert (12, "messages[2]: a user message before the result of tool call(s) c1") in found
    assert (12, "messages[3]: tool result for 'c9', which no earlier assistant message "
                "called") in found
    assert (12, "messages[4]: weight must be 0 or 1, got 0.5") in found
    assert (13, "every assistant message has weight 0: give the one to train on weight 1 "
                "(or no weight)") in found
    assert (14, "not valid JSON: Expecting value: line 1 column 1 (char 0)") in found
    assert (15, "messages[0]: weight is only for assistant messages") in found
    assert (15, "'tools' must be a list of {type: function, function: {name, ...}}") in found
    assert all(line != 9 for line, _ in found)  # the good lines are fine
    assert str(validate_jsonl(path)[0]).startswith("line 10: ")


def test_token_limit_and_training_estimates(tmp_path: Path) -> None:
    long = {"messages": [{"role": "user", "content": "word " * 400},
                         {"role": "assistant", "content": "ok"}]}
    path = write(tmp_path / "d.jsonl", *[GOOD] * 20, long)
    assert validate_jsonl(path, max_tokens=1000) == []
    issues = validate_jsonl(path, max_tokens=100)
    assert [i.line for i in issues] == [21]
    assert "is over the limit of 100" in issues[0].message
    stats = training_stats(path)
    assert stats.examples == 21 and stats.epochs == 4  # 100 // 21: OpenAI's default rule
    assert stats.billed_tokens == sum(stats.tokens) * 4
    if stats.exact:
        # o200k_base: "hi" and "hello" are one token each; 3 per message and 3 to prime.
        assert stats.tokens[0] == 3 + (3 + 1 + 1) + (3 + 1 + 1)
        assert "exact (o200k_base)" in str(stats)
    else:
        assert "an estimate" in str(stats)
    big = write(tmp_path / "big.jsonl", *[GOOD] * 10_000)
    assert training_stats(big).epochs == 2  # 25,000 // 10,000
