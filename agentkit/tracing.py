"""OpenTelemetry spans for agent runs, following the GenAI semantic conventions.

``instrument()`` (extra ``otel``) makes every run emit a span tree::

    invoke_agent triage                  the run
      chat gpt-4o-mini                   each model request
      execute_tool transfer_to_billing   each tool call
      invoke_agent billing               the agent a handoff switched to
        chat gpt-4o-mini
        ...

with ``gen_ai.*`` attributes (operation, provider, request and response model, finish
reasons, token usage, tool name and call id, agent name, conversation id = the thread's
id). Message content is recorded only with ``capture_content=True``.

Tracing is off until ``instrument()`` is called, costs nothing while off (opentelemetry
is not even imported), and never exports on its own: spans go to the tracer provider you
configure (or pass), with the exporters you chose.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from agentkit.errors import ConfigurationError
from agentkit.hooks import HookContext, RunHooks, add_global_hooks, remove_global_hooks
from agentkit.messages import Message

if TYPE_CHECKING:
    from agentkit.agent import Agent
    from agentkit.messages import ToolCall
    from agentkit.models.base import Model, ModelRequest, ModelResponse
    from agentkit.tools import ToolResult

__all__ = ["instrument", "is_instrumented", "uninstrument"]

# The GenAI semantic-convention names, kept here: the semconv package marks its GenAI
# constants as incubating and deprecates them between releases.
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
AGENT_DESCRIPTION = "gen_ai.agent.description"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_SEED = "gen_ai.request.seed"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_DESCRIPTION = "gen_ai.tool.description"
# Content: recorded only with capture_content=True.
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
ERROR_TYPE = "error.type"

_PROVIDERS = {
    "OpenAIChatModel": "openai",
    "OpenAIResponsesModel": "openai",
    "LocalModel": "llama.cpp",
}

_lock = threading.Lock()
_installed: _Tracer | None = None


def instrument(tracer_provider: Any = None, capture_content: bool = False) -> None:
    """Emit OpenTelemetry spans for every run in this process from now on.

    Args:
        tracer_provider: The ``TracerProvider`` to get the tracer from (default: the
            global one, ``opentelemetry.trace.get_tracer_provider()``). agentkit never
            sets up exporters: without a configured provider the spans go nowhere.
        capture_content: Also record messages, instructions, tool arguments and tool
            results as span attributes (they may hold personal data; off by default).

    Calling it again replaces the earlier setup; :func:`uninstrument` turns it off.

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed.
    """
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigurationError(
            "tracing needs the OpenTelemetry API: pip install 'agentkit[otel]'"
        ) from None
    from agentkit._version import __version__

    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    tracer = _Tracer(provider.get_tracer("agentkit", __version__), capture_content)
    global _installed
    with _lock:
        if _installed is not None:
            remove_global_hooks(_installed)
        _installed = tracer
        add_global_hooks(tracer)


def uninstrument() -> None:
    """Stop emitting spans (runs already going keep theirs until they end)."""
    global _installed
    with _lock:
        if _installed is not None:
            remove_global_hooks(_installed)
            _installed = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _installed is not None


class _Spans:
    """The open spans of one run."""

    __slots__ = ("agent", "chat", "parent", "root", "tools")

    def __init__(self, root: Any, parent: Any) -> None:
        self.root = root
        self.agent = root  # the active agent's span: the root, or a handoff's
        self.parent = parent  # a context with the active agent's span in it
        self.chat: Any = None
        self.tools: dict[str, tuple[Any, Any]] = {}


class _Tracer(RunHooks):
    """Run hooks that turn a run's life into spans."""

    def __init__(self, tracer: Any, capture_content: bool) -> None:
        from opentelemetry import context, trace

        self.tracer = tracer
        self.capture = capture_content
        self._trace = trace
        self._context = context
        self._kind = trace.SpanKind
        self._error = trace.Status(trace.StatusCode.ERROR)
        self._runs: dict[int, _Spans] = {}

    def _agent_span(self, ctx: HookContext, agent: Agent[Any] | None, parent: Any) -> Any:
        name = agent.name if agent is not None else ctx.agent_name
        attributes: dict[str, Any] = {OPERATION_NAME: "invoke_agent", AGENT_NAME: name}
        description = getattr(agent, "description", None)
        if description:
            attributes[AGENT_DESCRIPTION] = description
        if ctx.model is not None:
            attributes[PROVIDER_NAME] = _provider(ctx.model)
            attributes[REQUEST_MODEL] = ctx.model.name
        if ctx.thread_id is not None:
            attributes[CONVERSATION_ID] = ctx.thread_id
        context = None if parent is None else self._trace.set_span_in_context(parent)
        return self.tracer.start_span(
            f"invoke_agent {name}", context=context, kind=self._kind.INTERNAL,
            attributes=attributes,
        )  # fmt: skip

    def on_run_start(self, ctx: HookContext) -> None:
        """Open the run's span, under the caller's current span (e.g. a tool's)."""
        span = self._agent_span(ctx, ctx.agent, None)
        self._runs[id(ctx)] = _Spans(span, self._trace.set_span_in_context(span))

    def on_model_start(self, ctx: HookContext, request: ModelRequest) -> None:
        """Open a ``chat`` span."""
        spans = self._runs.get(id(ctx))
        if spans is None:
            return
        model = ctx.model
        name = model.name if model is not None else "model"
        settings = request.settings
        attributes: dict[str, Any] = {
            OPERATION_NAME: "chat",
            PROVIDER_NAME: _provider(model),
            REQUEST_MODEL: name,
        }
        if settings.temperature is not None:
            attributes[REQUEST_TEMPERATURE] = settings.temperature
        if settings.top_p is not None:
            attributes[REQUEST_TOP_P] = settings.top_p
        if settings.max_tokens is not None:
            attributes[REQUEST_MAX_TOKENS] = settings.max_tokens
        if settings.seed is not None:
            attributes[REQUEST_SEED] = settings.seed
        if ctx.thread_id is not None:
            attributes[CONVERSATION_ID] = ctx.thread_id
        if self.capture:
            system = [m for m in request.messages if m.role in ("system", "developer")]
            rest = [m for m in request.messages if m.role not in ("system", "developer")]
            if system:
                attributes[SYSTEM_INSTRUCTIONS] = json.dumps(
                    [{"type": "text", "content": m.text} for m in system], ensure_ascii=False
                )
            attributes[INPUT_MESSAGES] = _messages_json(rest)
        spans.chat = self.tracer.start_span(
            f"chat {name}", context=spans.parent,
            kind=self._kind.CLIENT, attributes=attributes,
        )  # fmt: skip

    def on_model_end(self, ctx: HookContext, response: ModelResponse) -> None:
        """Close the ``chat`` span with the response's model, finish reason and usage."""
        spans = self._runs.get(id(ctx))
        if spans is None or spans.chat is None:
            return
        span, spans.chat = spans.chat, None
        attributes: dict[str, Any] = {
            RESPONSE_FINISH_REASONS: [response.finish_reason],
            USAGE_INPUT_TOKENS: response.usage.input_tokens,
            USAGE_OUTPUT_TOKENS: response.usage.output_tokens,
        }
        if response.model_name:
            attributes[RESPONSE_MODEL] = response.model_name
        response_id = getattr(response, "id", None)
        if response_id:
            attributes[RESPONSE_ID] = response_id
        if self.capture:
            attributes[OUTPUT_MESSAGES] = _messages_json(
                [response.message], finish_reason=response.finish_reason
            )
        span.set_attributes(attributes)
        span.end()

    def on_tool_start(self, ctx: HookContext, call: ToolCall) -> None:
        """Open an ``execute_tool`` span, current while the tool runs (an agent used as a
        tool nests its run under it)."""
        spans = self._runs.get(id(ctx))
        if spans is None:
            return
        attributes: dict[str, Any] = {
            OPERATION_NAME: "execute_tool",
            TOOL_NAME: call.name,
            TOOL_CALL_ID: call.id,
            TOOL_TYPE: "function",
        }
        if self.capture:
            attributes[TOOL_CALL_ARGUMENTS] = call.arguments
        span = self.tracer.start_span(
            f"execute_tool {call.name}", context=spans.parent,
            kind=self._kind.INTERNAL, attributes=attributes,
        )  # fmt: skip
        token = self._context.attach(self._trace.set_span_in_context(span))
        spans.tools[call.id] = (span, token)

    def on_tool_end(self, ctx: HookContext, call: ToolCall, result: ToolResult) -> None:
        """Close the ``execute_tool`` span (an error status when the call failed)."""
        spans = self._runs.get(id(ctx))
        opened = spans.tools.pop(call.id, None) if spans is not None else None
        if opened is None:
            return
        span, token = opened
        self._context.detach(token)
        if self.capture:
            span.set_attribute(TOOL_CALL_RESULT, result.content)
        if result.is_error:
            error = result.error
            span.set_attribute(ERROR_TYPE, type(error).__name__ if error else "tool_error")
            span.set_status(self._error)
        span.end()

    def on_handoff(self, ctx: HookContext, from_agent: Any, to_agent: Any) -> None:
        """Open an ``invoke_agent`` span for the agent taking over, under the run's."""
        spans = self._runs.get(id(ctx))
        if spans is None:
            return
        if spans.agent is not spans.root:
            spans.agent.end()
        spans.agent = self._agent_span(ctx, to_agent, spans.root)
        spans.parent = self._trace.set_span_in_context(spans.agent)

    def on_run_end(self, ctx: HookContext, result_or_error: Any) -> None:
        """Close the run's spans; a failed run's carry an error status."""
        spans = self._runs.pop(id(ctx), None)
        if spans is None:
            return
        failed = isinstance(result_or_error, BaseException)
        open_spans = [s for s, _ in spans.tools.values()]
        if spans.chat is not None:
            open_spans.append(spans.chat)
        if spans.agent is not spans.root:
            open_spans.append(spans.agent)
        open_spans.append(spans.root)
        for span in open_spans:
            if failed:
                span.set_attribute(ERROR_TYPE, type(result_or_error).__name__)
                span.set_status(self._error)
            span.end()


def _provider(model: Model | None) -> str:
    if model is None:
        return "unknown"
    given = getattr(model, "provider", None)
    if isinstance(given, str):
        return given
    return _PROVIDERS.get(type(model).__name__, type(model).__name__.lower())


def _messages_json(messages: list[Message], finish_reason: str | None = None) -> str:
    """Messages in the GenAI conventions' JSON shape: role and typed parts."""
    out = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        if message.role == "tool":
            parts.append({"type": "tool_call_response", "id": message.tool_call_id,
                          "response": message.text})
        elif message.text:
            parts.append({"type": "text", "content": message.text})
        for call in message.tool_calls:
            parts.append({"type": "tool_call", "id": call.id, "name": call.name,
                          "arguments": call.arguments})
        item: dict[str, Any] = {"role": message.role, "parts": parts}
        if finish_reason is not None:
            item["finish_reason"] = finish_reason
        out.append(item)
    return json.dumps(out, ensure_ascii=False)
