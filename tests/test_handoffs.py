"""Handoffs and agents as tools (agentkit/handoffs.py, the handoff step of agentkit/run.py),
over real HTTP with the FakeOpenAIServer where the wire matters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentkit import (
    Agent,
    ConfigurationError,
    HandoffOccurred,
    MaxTurnsExceeded,
    RunFinished,
    RunState,
    ToolCallStarted,
    ToolResultReceived,
    Usage,
    tool,
)
from agentkit.handoffs import drop_tool_calls, handoff
from agentkit.models import ModelRequest, ModelResponse
from agentkit.testing import FakeOpenAIServer, ScriptedModel, text_response, tool_call_response
from agentkit.testing.fake_openai import text_reply, tool_call_reply
from agentkit.threads import SQLiteStore

pytestmark = pytest.mark.anyio


@tool
def invoice_total(invoice: str) -> str:
    """The total of an invoice."""
    return f"{invoice}: 42 EUR"


@tool
def lookup_customer(email: str) -> str:
    """Find a customer."""
    return f"customer {email}: Ada"


@tool(needs_approval=True)
def refund(invoice: str) -> str:
    """Refund an invoice."""
    return f"refunded {invoice}"


def agents(model: Any = "gpt-4o-mini", **billing_options: Any) -> tuple[Agent[str], Agent[str]]:
    billing = Agent(
        name="billing", instructions="You handle invoices.", model=model,
        tools=[invoice_total, refund], description="Invoices, payments and refunds.",
        **billing_options,
    )  # fmt: skip
    triage = Agent(
        name="triage", instructions="Route the user.", model=model,
        tools=[lookup_customer], handoffs=[billing],
    )  # fmt: skip
    return triage, billing


def system_and_tools(body: dict[str, Any]) -> tuple[str, list[str]]:
    system = body["messages"][0]
    assert system["role"] == "system"
    return system["content"], sorted(t["function"]["name"] for t in body.get("tools", []))


async def test_triage_hands_off_to_billing_which_answers_over_http(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.enqueue(
        tool_call_reply(("transfer_to_billing", {"reason": "an invoice question"})),
        tool_call_reply(("invoice_total", {"invoice": "INV-7"})),
        text_reply("Invoice INV-7 comes to 42 EUR."),
    )
    triage, billing = agents()
    events = [e async for e in triage.stream("How much is invoice INV-7?")]
    result = events[-1].result  # type: ignore[union-attr]

    assert result.output == "Invoice INV-7 comes to 42 EUR."
    assert result.last_agent is billing
    assert result.turns == 3 and result.usage.requests == 3
    switches = [e for e in events if isinstance(e, HandoffOccurred)]
    assert switches == [HandoffOccurred("triage", "billing")]
    # The switch comes after the handoff call's result, before billing's first answer.
    kinds = [type(e).__name__ for e in events if type(e).__name__ != "TextDelta"]
    assert kinds[:4] == ["ModelResponseFinished", "ToolCallStarted", "ToolResultReceived",
                         "HandoffOccurred"]

    first, second, third = (r.body for r in fake_openai.requests)
    assert system_and_tools(first) == ("Route the user.", ["lookup_customer",
                                                           "transfer_to_billing"])
    assert system_and_tools(second) == ("You handle invoices.", ["invoice_total", "refund"])
    assert system_and_tools(third)[0] == "You handle invoices."
    # Billing sees the whole conversation, the handoff included.
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assert second["messages"][3]["content"] == "Transferred to billing."
    description = next(t["function"]["description"] for t in first["tools"]
                       if t["function"]["name"] == "transfer_to_billing")
    assert "billing" in description and "Invoices, payments and refunds." in description
    # The record keeps every message once, under the first agent's instructions.
    assert [m.role for m in result.messages] == [
        "system", "user", "assistant", "tool", "assistant", "tool", "assistant"]


async def test_other_calls_of_the_handoff_turn_run_first() -> None:
    model = ScriptedModel([
        tool_call_response(("lookup_customer", {"email": "ada@example.com"}),
                           ("transfer_to_billing", {})),
        "Done.",
    ])  # fmt: skip
    triage, _ = agents(model)
    events = [e async for e in triage.stream("refund me")]
    names = [
        (type(e).__name__, getattr(e, "call", None) and e.call.name)  # type: ignore[union-attr]
        for e in events
        if isinstance(e, (ToolCallStarted, ToolResultReceived, HandoffOccurred))
    ]
    assert names[-1] == ("HandoffOccurred", None)
    assert ("ToolResultReceived", "lookup_customer") in names
    billing_request = model.requests[1]
    assert billing_request.messages[0].text == "You handle invoices."
    results = [m.text for m in billing_request.messages if m.role == "tool"]
    assert results == ["customer ada@example.com: Ada", "Transferred to billing."]


async def test_max_turns_counts_across_agents_and_bounds_a_handoff_cycle() -> None:
    ping = Agent(name="ping", model=ScriptedModel([tool_call_response("transfer_to_pong")] * 9))
    pong = Agent(name="pong", model=ScriptedModel([tool_call_response("transfer_to_ping")] * 9),
                 handoffs=[ping])
    ping.handoffs.append(pong)  # a cycle: ping -> pong -> ping ...
    with pytest.raises(MaxTurnsExceeded) as caught:
        await ping.run("go", max_turns=5)
    assert caught.value.state is not None and caught.value.state.turn == 5
    assert caught.value.state.agent == "pong"  # the fifth turn was ping's: it handed off


async def test_input_filter_hands_over_the_conversation_without_tool_calls() -> None:
    model = ScriptedModel([
        tool_call_response(("lookup_customer", {"email": "ada@example.com"})),
        tool_call_response("transfer_to_billing"),
        "Billing here.",
    ])  # fmt: skip
    billing = Agent(name="billing", instructions="Billing.", model=model)
    triage = Agent(name="triage", instructions="Triage.", model=model,
                   tools=[lookup_customer],
                   handoffs=[handoff(billing, input_filter=drop_tool_calls)])
    result = await triage.run("Who am I?")
    sent = model.requests[2].messages
    assert [(m.role, m.text) for m in sent] == [("system", "Billing."), ("user", "Who am I?")]
    assert result.output == "Billing here." and result.last_agent is billing
    # The run's record is complete: filters change what is sent, not what happened.
    assert len(result.tool_results()) == 2


async def test_a_switched_run_saved_as_json_resumes_with_its_agent() -> None:
    model = ScriptedModel([tool_call_response("transfer_to_billing"),
                           tool_call_response(("refund", {"invoice": "INV-7"})), "Refunded."])
    triage, billing = agents(model)
    paused = await triage.run("refund INV-7")
    assert paused.status == "requires_action" and paused.last_agent is billing
    assert paused.pending[0].name == "refund"
    state = RunState.from_json(paused.state.to_json())  # type: ignore[union-attr]
    assert state.agent == "billing"
    done = await triage.resume(state, approve=[paused.pending[0].id])
    assert done.output == "Refunded." and done.last_agent is billing
    assert done.tool_results("refund")[0].text == "refunded INV-7"
    assert model.requests[2].messages[0].text == "You handle invoices."


async def test_a_thread_run_paused_after_a_handoff_resumes_with_the_right_agent(
    tmp_path: Path, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.enqueue(
        tool_call_reply(("transfer_to_billing", {})),
        tool_call_reply(("refund", {"invoice": "INV-7"})),
        text_reply("INV-7 is refunded."),
    )
    store = SQLiteStore(tmp_path / "threads.db")
    triage, _billing = agents()
    thread = await store.create_thread()
    paused = await triage.run("Refund INV-7 please", thread=thread.id, store=store)
    assert paused.status == "requires_action" and paused.run_id is not None

    # Another process: fresh agents, the run found by its id.
    triage2, billing2 = agents()
    done = await triage2.resume(paused.run_id, store=store, approve=[paused.pending[0].id])
    assert done.status == "completed" and done.output == "INV-7 is refunded."
    assert done.last_agent is billing2
    last = fake_openai.requests[-1].body
    assert system_and_tools(last) == ("You handle invoices.", ["invoice_total", "refund"])
    stored = await store.messages(thread.id)
    assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant", "tool",
                                        "assistant"]
    assert (await store.get_run(paused.run_id)).status == "completed"


async def test_resuming_with_an_agent_that_cannot_reach_the_active_one_is_refused() -> None:
    model = ScriptedModel([tool_call_response("transfer_to_billing"),
                           tool_call_response(("refund", {"invoice": "INV-7"}))])
    triage, _billing = agents(model)
    paused = await triage.run("refund")
    with pytest.raises(ConfigurationError, match="billing"):
        await Agent(name="other", model=model).resume(paused.state,  # type: ignore[arg-type]
                                                       approve=[paused.pending[0].id])


def test_handoff_tool_names_must_not_clash() -> None:
    billing = Agent(name="billing")
    with pytest.raises(ConfigurationError, match="transfer_to_billing"):
        Agent(name="triage", handoffs=[billing, handoff(billing)])


async def test_two_agents_with_one_name_in_a_run_are_refused() -> None:
    first = Agent(name="support", model=ScriptedModel([tool_call_response("to_b")]))
    second = Agent(name="support", model=ScriptedModel(["hi"]))
    triage = Agent(name="triage", model=ScriptedModel([tool_call_response("to_b")]),
                   handoffs=[handoff(first, tool_name="to_a"), handoff(second, tool_name="to_b")])
    with pytest.raises(ConfigurationError, match="two different agents named 'support'"):
        await triage.run("hi")


# --- agents as tools ------------------------------------------------------------------------


async def test_an_agent_as_a_tool_adds_its_usage_and_keeps_its_messages_apart() -> None:
    inner_model = ScriptedModel([
        tool_call_response(("invoice_total", {"invoice": "INV-7"}),
                           usage=Usage(requests=1, input_tokens=10, output_tokens=5,
                                       total_tokens=15)),
        text_response("42 EUR", usage=Usage(requests=1, input_tokens=20, output_tokens=2,
                                            total_tokens=22)),
    ])  # fmt: skip
    billing = Agent(name="billing", model=inner_model, tools=[invoice_total])
    ask = billing.as_tool(name="ask_billing", description="Ask billing.")
    assert ask.parameters["required"] == ["input"] and list(ask.parameters["properties"]) == [
        "input"]
    outer_model = ScriptedModel([
        tool_call_response(("ask_billing", {"input": "Total of INV-7?"}),
                           usage=Usage(requests=1, input_tokens=100, output_tokens=10,
                                       total_tokens=110)),
        text_response("It is 42 EUR.", usage=Usage(requests=1, input_tokens=1, output_tokens=1,
                                                   total_tokens=2)),
    ])  # fmt: skip
    front = Agent(name="front", model=outer_model, tools=[ask])
    events = [e async for e in front.stream("How much is INV-7?")]
    result = events[-1].result  # type: ignore[union-attr]
    assert isinstance(events[-1], RunFinished)

    assert result.output == "It is 42 EUR."
    assert result.usage.requests == 4
    assert result.usage.total_tokens == 110 + 2 + 15 + 22
    assert result.tool_results("ask_billing")[0].text == "42 EUR"
    # Not merged: the outer conversation has no trace of the inner tool call...
    assert result.tool_calls("invoice_total") == []
    # ...which is there to inspect, as the tool result's value.
    (received,) = [e for e in events if isinstance(e, ToolResultReceived)]
    inner = received.result.value
    assert inner.tool_calls("invoice_total")[0].arguments == '{"invoice": "INV-7"}'
    assert inner.messages[-1].text == "42 EUR"


async def test_as_tool_output_extractor_and_inner_failures() -> None:
    def shout(result: Any) -> str:
        return str(result.output).upper()

    billing = Agent(name="billing", model=ScriptedModel(["forty-two"]))
    front = Agent(name="front", tools=[billing.as_tool(output_extractor=shout)],
                  model=ScriptedModel([tool_call_response(("billing", {"input": "total?"})),
                                       "ok"]))
    result = await front.run("?")
    assert result.tool_results("billing")[0].text == "FORTY-TWO"

    def broken(request: ModelRequest) -> ModelResponse:
        raise ValueError("backend down")

    from agentkit.testing import FunctionModel

    failing = Agent(name="failing", model=FunctionModel(broken))
    front = Agent(name="front", tools=[failing.as_tool()],
                  model=ScriptedModel([tool_call_response(("failing", {"input": "x"})), "ok"]))
    result = await front.run("?")
    (message,) = result.tool_results("failing")
    assert message.is_error and "backend down" in message.text


async def test_the_agent_handed_to_decides_the_output_type() -> None:
    from pydantic import BaseModel

    class Refund(BaseModel):
        invoice: str
        amount_eur: int

    model = ScriptedModel([tool_call_response("transfer_to_refunds"),
                           '{"invoice": "INV-7", "amount_eur": 42}'])
    refunds: Agent[Refund] = Agent(name="refunds", model=model, output_type=Refund)
    triage = Agent(name="triage", model=model, handoffs=[refunds])
    result = await triage.run("refund INV-7")
    assert result.output == Refund(invoice="INV-7", amount_eur=42)
    assert model.requests[0].response_format is None
    assert model.requests[1].response_format is not None


async def test_a_filtered_handoff_on_a_thread_sends_the_same_after_a_pause(
    tmp_path: Path,
) -> None:
    model = ScriptedModel([tool_call_response("transfer_to_billing"),
                           tool_call_response(("refund", {"invoice": "INV-7"})), "Refunded."])
    billing = Agent(name="billing", instructions="Billing.", model=model, tools=[refund])
    triage = Agent(name="triage", instructions="Triage.", model=model,
                   handoffs=[handoff(billing, input_filter=drop_tool_calls)])
    store = SQLiteStore(tmp_path / "t.db")
    thread = await store.create_thread()
    paused = await triage.run("refund INV-7", thread=thread.id, store=store)
    assert paused.run_id is not None
    done = await triage.resume(paused.run_id, store=store, approve=[paused.pending[0].id])
    assert done.output == "Refunded."
    before, after = model.requests[1].messages, model.requests[2].messages
    assert [(m.role, m.text) for m in before] == [("system", "Billing."),
                                                 ("user", "refund INV-7")]
    assert [m.role for m in after] == ["system", "user", "assistant", "tool"]
    assert after[:2] == before and after[3].text == "refunded INV-7"
