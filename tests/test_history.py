"""History policies (agentkit/history.py): what of a long conversation is sent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit import Agent, ConfigurationError, Message, ToolCall
from agentkit.history import estimate_tokens, keep_last, keep_tokens, summarize
from agentkit.messages import to_openai
from agentkit.models import ModelRequest
from agentkit.testing import FunctionModel

pytestmark = pytest.mark.anyio


def conversation(turns: int) -> list[Message]:
    messages = [Message.system("Be brief.")]
    for i in range(turns):
        messages.append(Message.user(f"question {i}"))
        calls = [ToolCall(f"c{i}a", "t", "{}"), ToolCall(f"c{i}b", "t", "{}")]
        messages.append(Message.assistant(None, calls))
        messages.append(Message.tool(f"c{i}a", "x" * 40, name="t"))
        messages.append(Message.tool(f"c{i}b", "y" * 40, name="t"))
        messages.append(Message.assistant(f"answer {i}"))
    return messages


def assert_valid(sent: list[Message]) -> None:
    """A history servers accept: every tool result follows the call it answers."""
    open_ids: set[str] = set()
    for message in sent:
        if message.role == "tool":
            assert message.tool_call_id in open_ids, to_openai(sent)
            open_ids.discard(message.tool_call_id)
        else:
            open_ids = {c.id for c in message.tool_calls}


def test_keep_last_keeps_the_instructions_and_the_tail() -> None:
    messages = conversation(3)
    sent = keep_last(5)(messages)
    assert sent[0] == messages[0]
    assert sent[1:] == messages[-5:]


def test_a_cut_inside_tool_results_moves_back_to_the_call() -> None:
    messages = conversation(3)
    sent = keep_last(2)(messages)  # would start at the second tool result
    assert sent[1].tool_calls and sent[1:] == messages[-4:]
    assert_valid(sent)


@given(turns=st.integers(0, 6), n=st.integers(1, 40), tokens=st.integers(1, 400))
def test_any_policy_output_is_a_valid_suffix(turns: int, n: int, tokens: int) -> None:
    messages = conversation(turns)
    for policy in (keep_last(n), keep_tokens(tokens)):
        sent = policy(messages)
        assert_valid(sent)
        assert sent[0] == messages[0]
        tail = sent[1:]
        assert tail == messages[len(messages) - len(tail):]
        assert policy(messages) == sent  # reproducible


def test_keep_tokens_fits_the_budget_and_always_sends_the_last_message() -> None:
    messages = conversation(10)
    sent = keep_tokens(60)(messages)
    assert sum(estimate_tokens(m) for m in sent) <= 60 or len(sent) <= 3
    assert sent[-1] == messages[-1]
    assert len(keep_tokens(1)(messages)) >= 2


def test_the_model_gets_the_trimmed_history_and_the_result_keeps_everything() -> None:
    model = FunctionModel(lambda request: "ok")
    agent = Agent(instructions="Be brief.", model=model, history_policy=keep_last(3))
    history = conversation(4)[1:]
    result = agent.run_sync("and now?", history=history)
    sent = model.requests[0].messages
    # The last 3 would start at a tool result: the call it answers is sent too.
    assert [m.role for m in sent] == ["system", "assistant", "tool", "tool", "assistant",
                                      "user"]
    assert len(result.messages) == len(history) + 3


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="keep_last"):
        keep_last(0)
    with pytest.raises(ConfigurationError, match="keep_tokens"):
        keep_tokens(0)


# --- summarize ----------------------------------------------------------------------------------


seen: list[str] = []  # what the summarizer was asked to summarize


def summarizer() -> FunctionModel:
    def write(request: ModelRequest) -> str:
        seen.append(request.messages[-1].text)
        return f"summary #{len(seen)}"

    return FunctionModel(write)


async def test_summarize_replaces_the_older_messages_and_reuses_its_summary() -> None:
    seen.clear()
    policy = summarize(summarizer(), keep_last=10, every=20)
    messages = conversation(12)  # 60 messages after the instructions
    sent = await policy(messages)
    assert sent[0] == messages[0]
    assert sent[1].role == "system" and sent[1].text.endswith("summary #1")
    assert_valid(sent)
    assert sent[2:] == messages[len(messages) - len(sent) + 2:]
    assert len(sent) - 2 <= 20
    # Two more turns: the same prefix is covered, and its summary is reused.
    assert (await policy(conversation(13)))[1] == sent[1]
    assert len(seen) == 1
    # Past the next step, a new summary extends the last one with the new messages only.
    longer = await policy(conversation(16))
    assert longer[1].text.endswith("summary #2") and len(seen) == 2
    assert seen[1].startswith("Earlier summary:\nsummary #1")
    assert "question 0" not in seen[1]
    assert_valid(longer)


async def test_summarize_sends_a_short_conversation_as_it_is() -> None:
    messages = conversation(3)
    assert await summarize(summarizer(), keep_last=10, every=20)(messages) == messages


def test_summarize_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="summarize"):
        summarize(summarizer(), keep_last=0)
