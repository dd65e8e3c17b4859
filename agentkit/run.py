"""The agent loop: send the conversation, run the tools the model calls, repeat until it stops.

This module knows nothing of :class:`~agentkit.Agent`; it takes the parts (a model, tools,
instructions, settings, limits) as a :class:`RunSpec`. :func:`iterate_run` is the loop
itself, an async generator of :data:`RunEvent` values whose last event is
:class:`RunFinished`; ``Agent.run`` drains it and ``Agent.stream`` forwards it.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import anyio

from agentkit.errors import (
    AgentkitError,
    ContentFiltered,
    MaxTurnsExceeded,
    ModelError,
    OutputTruncated,
    OutputValidationError,
    RunError,
    ToolArgumentsError,
    ToolCallError,
    ToolRetriesExceeded,
    UnknownToolError,
    UsageLimitExceeded,
)
from agentkit.messages import Message, ToolCall, normalize_arguments, to_openai
from agentkit.models.base import Model, ModelRequest, ModelResponse, TextDelta, closing_stream
from agentkit.observers import RunObserver, active_observers, wrap_model
from agentkit.output import FINAL_RESULT_TOOL, OutputSpec
from agentkit.settings import ModelSettings
from agentkit.tools import RunContext, Tool, ToolResult
from agentkit.usage import Usage, UsageLimits

__all__ = [
    "ModelResponseFinished",
    "RunEvent",
    "RunFinished",
    "RunResult",
    "RunSpec",
    "TextDelta",
    "ToolCallStarted",
    "ToolResultReceived",
    "iterate_run",
]

logger = logging.getLogger("agentkit")

OutputT = TypeVar("OutputT")
Instructions = str | Callable[[RunContext[Any]], str | Awaitable[str]] | None
OnToolError = Literal["feed", "raise"]

# Tool failures of unknown tool names share one retry budget under this key.
_UNKNOWN_TOOL_KEY = "\x00unknown"


@dataclass(slots=True)
class RunResult(Generic[OutputT]):
    """The outcome of a successful run.

    Attributes:
        output: The final answer: ``str``, or an instance of the agent's ``output_type``.
        messages: Every message of the conversation, instructions and history included.
        usage: Requests, tokens and tool calls, summed over the whole run.
        turns: How many model requests the run made.
    """

    output: OutputT
    messages: list[Message]
    usage: Usage
    turns: int
    new_message_index: int = 0

    @property
    def new_messages(self) -> list[Message]:
        """Only the messages this run added (the input and everything after it)."""
        return self.messages[self.new_message_index :]

    def to_openai(self) -> list[dict[str, Any]]:
        """The whole conversation as chat-completions wire dicts (JSON-serialisable)."""
        return to_openai(self.messages)

    def tool_calls(self, name: str | None = None) -> list[ToolCall]:
        """The tool calls the model made during this run, optionally only those of ``name``."""
        return [
            call
            for message in self.new_messages
            for call in message.tool_calls
            if name is None or call.name == name
        ]

    def tool_results(self, name: str | None = None) -> list[Message]:
        """The tool-result messages of this run, optionally only those of tool ``name``."""
        return [
            m for m in self.new_messages if m.role == "tool" and (name is None or m.name == name)
        ]


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The loop is about to run a tool call."""

    call: ToolCall

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.call.name

    @property
    def arguments(self) -> str:
        """The arguments as JSON text, as the model sent them."""
        return self.call.arguments


@dataclass(frozen=True, slots=True)
class ToolResultReceived:
    """A tool call finished (successfully or not); ``duration`` is in seconds."""

    call: ToolCall
    result: ToolResult
    duration: float


@dataclass(frozen=True, slots=True)
class ModelResponseFinished:
    """The model finished one response (one turn)."""

    response: ModelResponse
    turn: int


@dataclass(frozen=True, slots=True)
class RunFinished(Generic[OutputT]):
    """The run is complete; ``result`` is what ``Agent.run`` returns."""

    result: RunResult[OutputT]


RunEvent = (
    TextDelta | ToolCallStarted | ToolResultReceived | ModelResponseFinished | RunFinished[Any]
)
"""Everything ``Agent.stream`` yields, in the order it happens."""


# --- the spec of one run ---------------------------------------------------------------


@dataclass(slots=True)
class RunSpec:
    """The parts of one run. Built by ``Agent``; usable directly without one."""

    model: Model
    tools: Sequence[Tool[Any, Any]] = ()
    instructions: Instructions = None
    output: OutputSpec | None = None
    settings: ModelSettings = field(default_factory=ModelSettings)
    max_turns: int = 10
    limits: UsageLimits | None = None
    output_retries: int = 2
    on_tool_error: OnToolError = "feed"
    deps: Any = None


@dataclass(slots=True)
class _RunState:
    messages: list[Message]
    usage: Usage
    new_message_index: int
    turn: int = 0
    seen_call_ids: set[str] = field(default_factory=set)
    tool_failures: dict[str, int] = field(default_factory=dict)
    output_failures: int = 0


async def iterate_run(
    spec: RunSpec,
    input: str | Message | Sequence[Message],
    history: Sequence[Message] = (),
    *,
    stream: bool = False,
) -> AsyncGenerator[RunEvent, None]:
    """Run the loop, yielding events; the last one is :class:`RunFinished`.

    With ``stream=True`` the model is called through ``Model.stream`` and text deltas are
    yielded as they arrive; otherwise ``Model.request`` is used and no deltas are yielded.
    Any exception escaping carries ``.messages`` and ``.usage`` of the run so far.
    """
    state = _RunState(messages=[], usage=Usage(), new_message_index=0)
    observers = active_observers()
    finished = False
    try:
        await _start(spec, state, input, history)
        # aclosing: a consumer that stops early must close the model's stream now, not
        # whenever the garbage collector gets to it.
        async with aclosing(_loop(spec, state, stream, observers)) as events:
            async for event in events:
                if isinstance(event, RunFinished):
                    # Report success before handing over the result: the consumer may
                    # close this generator right after the final event.
                    finished = True
                    _notify_end(observers, state, None)
                yield event
    except AgentkitError as exc:
        if not exc.messages:
            if isinstance(exc, ModelError):
                # Attempts the server answered before failing may be billed: count them.
                state.usage.requests += exc.requests_answered
            exc.attach_run(state.messages, state.usage)
        _notify_end(observers, state, exc)
        raise
    except Exception as exc:
        # Keep the promise that nothing is lost: wrap foreign exceptions with the run.
        error = RunError(f"the run failed: {type(exc).__name__}: {exc}")
        error.attach_run(state.messages, state.usage)
        _notify_end(observers, state, error)
        raise error from exc
    except BaseException as exc:  # cancelled, or abandoned by its consumer
        if not finished:
            _notify_end(observers, state, exc)
        raise


def _notify_end(
    observers: tuple[RunObserver, ...], state: _RunState, error: BaseException | None
) -> None:
    for observer in observers:
        observer.on_run_end(state.messages, state.usage, error)


async def _start(
    spec: RunSpec,
    state: _RunState,
    input: str | Message | Sequence[Message],
    history: Sequence[Message],
) -> None:
    messages = list(history)
    # Set first, so that an instructions function that raises still leaves the history.
    state.messages = messages
    instructions = await _render_instructions(spec, state)
    if instructions is not None:
        if messages and messages[0].role in ("system", "developer"):
            messages[0] = Message.system(instructions)
        else:
            messages.insert(0, Message.system(instructions))
    for message in messages:
        for call in message.tool_calls:
            state.seen_call_ids.add(call.id)
    state.new_message_index = len(messages)
    if isinstance(input, str):
        messages.append(Message.user(input))
    elif isinstance(input, Message):
        messages.append(input)
    else:
        messages.extend(input)
    state.messages = messages


async def _render_instructions(spec: RunSpec, state: _RunState) -> str | None:
    instructions = spec.instructions
    if instructions is None or isinstance(instructions, str):
        return instructions
    ctx: RunContext[Any] = RunContext(deps=spec.deps, usage=state.usage, messages=state.messages)
    text = instructions(ctx)
    if inspect.isawaitable(text):
        text = await text
    if not isinstance(text, str):
        raise RunError(
            f"the instructions function {getattr(instructions, '__name__', instructions)!r} "
            f"returned {type(text).__name__}, expected str"
        )
    return text


async def _loop(
    spec: RunSpec, state: _RunState, stream: bool, observers: tuple[RunObserver, ...]
) -> AsyncGenerator[RunEvent, None]:
    # Test doubles and helpers stand in front of the model, once per run.
    model = wrap_model(spec.model, observers)
    tools_by_name = {t.name: t for t in spec.tools}
    definitions = [t.definition for t in spec.tools]
    response_format: dict[str, Any] | None = None
    use_output_tool = False
    if spec.output is not None:
        if spec.model.supports_json_schema:
            response_format = spec.output.response_format()
        else:
            use_output_tool = True
            definitions = [*definitions, spec.output.tool_definition()]
    settings = spec.settings
    if use_output_tool and settings.tool_choice in (None, "auto") and not spec.tools:
        settings = _replace_tool_choice(settings, "required")

    while True:
        if state.turn >= spec.max_turns:
            raise MaxTurnsExceeded(
                f"the model did not finish within max_turns={spec.max_turns} turns; "
                "raise max_turns, or check the last messages for a tool-call loop"
            )
        if spec.limits is not None:
            reason = spec.limits.check_before_request(state.usage)
            if reason is not None:
                raise UsageLimitExceeded(f"usage limit reached: {reason}")
        state.turn += 1
        request = ModelRequest(
            # A snapshot: the request must not change when the run appends to the history.
            messages=list(state.messages),
            tools=definitions,
            settings=settings,
            response_format=response_format,
        )
        response = None
        if stream:
            async with closing_stream(model.stream(request)) as items:
                async for item in items:
                    if isinstance(item, TextDelta):
                        yield item
                    else:
                        response = item
            if response is None:
                raise RunError(
                    f"model {spec.model.name!r} ended its stream without a final response"
                )
        else:
            response = await model.request(request)
        state.usage.add(response.usage)
        message = _normalise(response.message, state.seen_call_ids, state.turn)
        if message is not response.message:
            response = dataclasses.replace(response, message=message)
        # Observers see the response as the run uses it (ids already normalised).
        for observer in observers:
            observer.on_response(spec.model, request, response)
        finish = response.finish_reason
        yield ModelResponseFinished(response, state.turn)

        if finish == "length":
            state.messages.append(
                Message.assistant(
                    message.content if isinstance(message.content, str) else message.text
                )
            )
            raise OutputTruncated(
                f"the model ran out of tokens (finish reason 'length') on turn {state.turn}"
                + (" in the middle of a tool call, which was not run" if message.tool_calls else "")
                + "; raise ModelSettings(max_tokens=...) or ask for a shorter answer"
            )
        state.messages.append(message)
        if finish == "content_filter":
            raise ContentFiltered(
                f"the server's content filter stopped the model on turn {state.turn}; "
                "rephrase the request or check the server's moderation settings"
            )

        if message.tool_calls:
            calls = message.tool_calls
            if spec.limits is not None:
                reason = spec.limits.check_tool_calls(state.usage, len(calls))
                if reason is not None:
                    # Answer every call, so the history in the error can be continued.
                    for call in calls:
                        state.messages.append(
                            Message.tool(
                                call.id,
                                "Not run: the run's tool-call limit was reached.",
                                name=call.name,
                                is_error=True,
                            )
                        )
                    raise UsageLimitExceeded(f"usage limit reached: {reason}")
            for call in calls:
                yield ToolCallStarted(call)
            outcomes = await _run_tools(spec, state, calls, tools_by_name, use_output_tool)
            final: Any = _NO_OUTPUT
            for call, result, duration in outcomes:
                state.messages.append(
                    Message.tool(call.id, result.content, name=call.name, is_error=result.is_error)
                )
                yield ToolResultReceived(call, result, duration)
                if call.name == FINAL_RESULT_TOOL and use_output_tool and not result.is_error:
                    final = result.value
            state.usage.tool_calls += len(calls)
            _check_tool_failures(spec, state, outcomes, tools_by_name)
            if final is not _NO_OUTPUT:
                yield RunFinished(_result(state, final))
                return
            if settings.reset_tool_choice and settings.tool_choice not in (None, "auto", "none"):
                settings = _replace_tool_choice(settings, None)
            continue

        # No tool calls: the model stopped.
        if spec.output is None:
            yield RunFinished(_result(state, message.text))
            return
        if use_output_tool:
            problem = f"you must call the {FINAL_RESULT_TOOL!r} tool to give the final answer"
            _fail_output(spec, state, problem)
            state.messages.append(Message.user(f"Error: {problem}. Try again."))
            settings = _replace_tool_choice(settings, FINAL_RESULT_TOOL)
            continue
        try:
            output = spec.output.validate_json(message.text)
        except ValueError as exc:
            _fail_output(spec, state, str(exc))
            state.messages.append(
                Message.user(
                    f"Your answer did not match the required JSON schema: {exc}. "
                    "Answer again with JSON only, matching the schema exactly."
                )
            )
            continue
        yield RunFinished(_result(state, output))
        return


_NO_OUTPUT: Any = object()

def _result(state: _RunState, output: Any) -> RunResult[Any]:
    return RunResult(
        output=output,
        messages=state.messages,
        usage=state.usage,
        turns=state.turn,
        new_message_index=state.new_message_index,
    )


def _replace_tool_choice(settings: ModelSettings, choice: str | None) -> ModelSettings:
    return dataclasses.replace(settings, tool_choice=choice)


def _fail_output(spec: RunSpec, state: _RunState, problem: str) -> None:
    state.output_failures += 1
    if state.output_failures > spec.output_retries:
        raise OutputValidationError(
            f"the model's answer did not validate after {state.output_failures} attempts "
            f"(output_retries={spec.output_retries}): {problem}"
        )


def _normalise(message: Message, seen: set[str], turn: int) -> Message:
    """Make a model's tool calls safe to run: unique non-empty ids, JSON-text arguments.

    Replacement ids are derived from the turn and position, not random, so a recorded
    conversation replays with the same ids (cassettes compare requests exactly).
    """
    if not message.tool_calls:
        return message
    calls = []
    changed = False
    for index, call in enumerate(message.tool_calls):
        call_id = call.id
        if not call_id or call_id in seen:
            call_id = f"call_t{turn}_{index}"
            suffix = 0
            while call_id in seen:
                suffix += 1
                call_id = f"call_t{turn}_{index}_{suffix}"
            changed = True
        seen.add(call_id)
        arguments = call.arguments
        if arguments[:1] == '"':
            # Some servers double-encode: the arguments are a JSON string of JSON text.
            arguments = normalize_arguments(arguments)
            changed = changed or arguments != call.arguments
        if changed:
            call = ToolCall(call_id, call.name, arguments)
        calls.append(call)
    if not changed:
        return message
    return Message(
        role=message.role,
        content=message.content,
        tool_calls=tuple(calls),
        name=message.name,
        refusal=message.refusal,
    )


Outcome = tuple[ToolCall, ToolResult, float]


async def _run_tools(
    spec: RunSpec,
    state: _RunState,
    calls: Sequence[ToolCall],
    tools_by_name: dict[str, Tool[Any, Any]],
    use_output_tool: bool,
) -> list[Outcome]:
    if len(calls) == 1:
        return [await _run_one(spec, state, calls[0], tools_by_name, use_output_tool)]
    outcomes: list[Outcome | None] = [None] * len(calls)
    limiter = anyio.CapacityLimiter(spec.settings.max_parallel_tools)

    async def run_at(index: int, call: ToolCall) -> None:
        async with limiter:
            outcomes[index] = await _run_one(spec, state, call, tools_by_name, use_output_tool)

    try:
        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(run_at, index, call)
    except Exception as exc:
        # The task group wraps failures in an exception group; surface the (first) error
        # itself, so callers see the same exception as with a single tool call.
        inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())
        if inner and all(isinstance(e, Exception) for e in inner):
            raise inner[0] from None
        raise
    return [o for o in outcomes if o is not None]


async def _run_one(
    spec: RunSpec,
    state: _RunState,
    call: ToolCall,
    tools_by_name: dict[str, Tool[Any, Any]],
    use_output_tool: bool,
) -> Outcome:
    started = time.perf_counter()
    if use_output_tool and call.name == FINAL_RESULT_TOOL and spec.output is not None:
        result = _final_result(spec.output, call)
        return call, result, time.perf_counter() - started
    tool = tools_by_name.get(call.name)
    if tool is None:
        known = ", ".join(sorted(tools_by_name)) or "(none)"
        error = UnknownToolError(
            f"Unknown tool {call.name!r}. Available tools: {known}.", tool_name=call.name
        )
        result = ToolResult(content=str(error), is_error=True, error=error)
        return call, result, time.perf_counter() - started
    ctx: RunContext[Any] | None = None
    if tool.takes_context:
        ctx = RunContext(
            deps=spec.deps,
            usage=state.usage,
            messages=state.messages,
            tool_name=call.name,
            tool_call_id=call.id,
            turn=state.turn,
        )
    result = await tool.invoke(call.arguments, ctx)
    return call, result, time.perf_counter() - started


def _final_result(output: OutputSpec, call: ToolCall) -> ToolResult:
    try:
        value = output.validate_json(call.arguments or "{}")
    except ValueError as exc:
        error = ToolArgumentsError(
            f"The final answer is invalid: {exc}. Call {FINAL_RESULT_TOOL} again with "
            "arguments matching its schema.",
            tool_name=FINAL_RESULT_TOOL,
        )
        return ToolResult(content=str(error), is_error=True, error=error)
    return ToolResult(content="Final answer received.", value=value)


def _check_tool_failures(
    spec: RunSpec,
    state: _RunState,
    outcomes: list[Outcome],
    tools_by_name: dict[str, Tool[Any, Any]],
) -> None:
    for call, result, _ in outcomes:
        if call.name == FINAL_RESULT_TOOL and call.name not in tools_by_name:
            if result.is_error:
                _fail_output(spec, state, result.content)
            continue
        tool = tools_by_name.get(call.name)
        key = call.name if tool is not None else _UNKNOWN_TOOL_KEY
        if not result.is_error:
            state.tool_failures.pop(key, None)
            continue
        error = result.error
        if (
            spec.on_tool_error == "raise"
            and error is not None
            and not isinstance(error, (ToolArgumentsError, UnknownToolError))
        ):
            raise error
        failures = state.tool_failures.get(key, 0) + 1
        state.tool_failures[key] = failures
        budget = tool.max_retries if tool is not None else 2
        if failures > budget:
            what = f"tool {call.name!r}" if tool is not None else "calls to unknown tools"
            exc = ToolRetriesExceeded(
                f"{what} failed {failures} times in a row (retry budget {budget}); "
                f"last error: {result.content}"
            )
            if isinstance(error, ToolCallError):
                raise exc from error
            raise exc
