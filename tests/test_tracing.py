"""OpenTelemetry spans (agentkit/tracing.py), checked with the SDK's in-memory exporter."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentkit import Agent, MaxTurnsExceeded, tool
from agentkit.testing import FakeOpenAIServer, ScriptedModel, tool_call_response
from agentkit.testing.fake_openai import text_reply, tool_call_reply
from agentkit.threads import SQLiteStore
from agentkit.tracing import instrument, is_instrumented, uninstrument

pytestmark = pytest.mark.anyio

CONTENT_KEYS = {"gen_ai.input.messages", "gen_ai.output.messages",
                "gen_ai.system_instructions", "gen_ai.tool.call.arguments",
                "gen_ai.tool.call.result"}


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        uninstrument()


@tool
def invoice_total(invoice: str) -> str:
    """The total of an invoice."""
    return f"{invoice}: 42 EUR"


def tree(spans: tuple[ReadableSpan, ...]) -> list[tuple[int, str]]:
    """(depth, name) in start order, depth-first."""
    by_id = {s.context.span_id: s for s in spans}

    def depth(span: ReadableSpan) -> int:
        parent = span.parent
        return 0 if parent is None or parent.span_id not in by_id else 1 + depth(
            by_id[parent.span_id])

    ordered = sorted(spans, key=lambda s: s.start_time or 0)
    return [(depth(s), s.name) for s in ordered]


async def test_a_handoff_run_on_a_thread_gives_a_genai_span_tree(
    exporter: InMemorySpanExporter, fake_openai: FakeOpenAIServer, tmp_path: Path
) -> None:
    fake_openai.enqueue(
        tool_call_reply(("transfer_to_billing", {})),
        tool_call_reply(("invoice_total", {"invoice": "INV-7"})),
        text_reply("42 EUR.", model="gpt-4o-mini-2024-07-18"),
    )
    billing = Agent(name="billing", instructions="Billing.", model="gpt-4o-mini",
                    tools=[invoice_total])
    triage = Agent(name="triage", instructions="Triage.", model="gpt-4o-mini",
                   handoffs=[billing])
    store = SQLiteStore(tmp_path / "t.db")
    thread = await store.create_thread()
    result = await triage.run("Total of INV-7?", thread=thread.id, store=store)
    assert result.output == "42 EUR."

    spans = exporter.get_finished_spans()
    assert tree(spans) == [
        (0, "invoke_agent triage"),
        (1, "chat gpt-4o-mini"),
        (1, "execute_tool transfer_to_billing"),
        (1, "invoke_agent billing"),
        (2, "chat gpt-4o-mini"),
        (2, "execute_tool invoice_total"),
        (2, "chat gpt-4o-mini"),
    ]
    assert len({s.context.trace_id for s in spans}) == 1
    named = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    root = named["invoke_agent triage"][0]
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.agent.name"] == "triage"
    assert root.attributes["gen_ai.conversation.id"] == thread.id
    last_chat = named["chat gpt-4o-mini"][-1].attributes
    assert last_chat is not None
    assert last_chat["gen_ai.operation.name"] == "chat"
    assert last_chat["gen_ai.provider.name"] == "openai"
    assert last_chat["gen_ai.request.model"] == "gpt-4o-mini"
    assert last_chat["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert last_chat["gen_ai.response.finish_reasons"] == ("stop",)
    assert last_chat["gen_ai.usage.input_tokens"] > 0
    assert last_chat["gen_ai.usage.output_tokens"] > 0
    assert last_chat["gen_ai.conversation.id"] == thread.id
    tool_span = named["execute_tool invoice_total"][0].attributes
    assert tool_span is not None
    assert tool_span["gen_ai.tool.name"] == "invoice_total"
    assert tool_span["gen_ai.tool.call.id"] == result.tool_calls("invoice_total")[0].id
    for span in spans:
        assert not CONTENT_KEYS & set(span.attributes or {}), span.name


async def test_content_only_when_asked(fake_openai: FakeOpenAIServer) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(tracer_provider=provider, capture_content=True)
    try:
        fake_openai.enqueue(tool_call_reply(("invoice_total", {"invoice": "INV-7"})),
                            text_reply("42 EUR."))
        agent = Agent(name="billing", instructions="Billing.", model="gpt-4o-mini",
                      tools=[invoice_total])
        await agent.run("Total of INV-7?")
    finally:
        uninstrument()
    chats = [s.attributes for s in exporter.get_finished_spans() if s.name.startswith("chat")]
    first, second = chats
    assert first is not None and second is not None
    assert json.loads(str(first["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "Billing."}]
    assert json.loads(str(first["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Total of INV-7?"}]}]
    output = json.loads(str(first["gen_ai.output.messages"]))
    assert output[0]["parts"][0]["name"] == "invoice_total"
    assert json.loads(str(second["gen_ai.output.messages"]))[0]["parts"] == [
        {"type": "text", "content": "42 EUR."}]
    (tool_span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute")]
    assert tool_span.attributes is not None
    assert tool_span.attributes["gen_ai.tool.call.result"] == "INV-7: 42 EUR"


async def test_an_agent_used_as_a_tool_nests_under_the_tool_span(
    exporter: InMemorySpanExporter,
) -> None:
    inner = Agent(name="billing", model=ScriptedModel(["42"]))
    outer = Agent(name="front", tools=[inner.as_tool(name="ask_billing")],
                  model=ScriptedModel([tool_call_response(("ask_billing", {"input": "?"})),
                                       "It is 42."]))
    await outer.run("?")
    assert tree(exporter.get_finished_spans()) == [
        (0, "invoke_agent front"),
        (1, "chat scripted"),
        (1, "execute_tool ask_billing"),
        (2, "invoke_agent billing"),
        (3, "chat scripted"),
        (1, "chat scripted"),
    ]


async def test_a_failed_run_ends_its_spans_with_an_error(
    exporter: InMemorySpanExporter,
) -> None:
    agent = Agent(name="loop", model=ScriptedModel([tool_call_response("invoice_total")] * 3),
                  tools=[invoice_total], max_turns=1)
    with pytest.raises(MaxTurnsExceeded):
        await agent.run("?")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["invoke_agent loop"]
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes is not None
    assert root.attributes["error.type"] == "MaxTurnsExceeded"
    failed_tool = spans["execute_tool invoice_total"]  # called without its argument
    assert failed_tool.status.status_code is StatusCode.ERROR


async def test_off_by_default_and_after_uninstrument() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert not is_instrumented()
    instrument(tracer_provider=provider)
    uninstrument()
    await Agent(model=ScriptedModel(["hi"])).run("?")
    assert exporter.get_finished_spans() == ()


def test_opentelemetry_is_not_imported_unless_instrument_is_called() -> None:
    code = (
        "import sys, agentkit\n"
        "from agentkit.testing import ScriptedModel\n"
        "agentkit.Agent(model=ScriptedModel(['hi'])).run_sync('?')\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "from agentkit.tracing import instrument\n"
        "assert 'opentelemetry' not in sys.modules\n"
        "instrument()\n"
        "assert 'opentelemetry' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_tracing_benchmark_measures_real_spans() -> None:
    import anyio

    bench = Path(__file__).resolve().parents[1] / "tools" / "bench"
    sys.path.insert(0, str(bench))
    try:
        import tracing_bench
    finally:
        sys.path.remove(str(bench))
    figures = anyio.run(tracing_bench.measure, 20)  # asserts 20 spans per traced run
    assert figures["turns"] == 20
    assert figures["on_cpu_ms"] > 0 and figures["off_cpu_ms"] > 0
    assert figures["sdk_floor_ms"] > 0
    assert not is_instrumented()
